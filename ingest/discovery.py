"""Admission: turn a request's sources into the items that need work, counting as it goes.

For each item found, discovery decides *whether* it needs work, cheaply: a local file whose size
and mtime (and, for a product, manifest row) match what was indexed with this model is skipped
without being opened. Anything else is registered as ``pending`` for this job and passed on.
Remote media cannot be judged before it is downloaded, so the fetch stage decides for it.

After a source that lists everything it holds (a folder, a manifest) has been walked, the items
it no longer holds are reported as ``Vanished``; ``search.deletion`` then removes their points and
thumbnails and marks them deleted, in that order, so a crash in between is finished by the next
scan. Entries that could not be read (``Unreadable``: a folder that cannot be listed, a link that
cannot be followed) are excluded from that sweep with everything below them: unreadable is not
deleted. What a source skips on purpose (``Skipped``: a link leaving the folder, a FIFO named
``.jpg``) is counted as skipped and its reason is listed with the job's failures.

The counting rules keep a job's counters from ever falling short of its discovered count, even
when a Celery task is redelivered after a crash, because a job finishes when they meet: an item
already registered for this job is not counted again, and an item's outcome is counted before
its status is written (see ``ingest.pipeline``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import cast

from ingest.items import MediaItem, Problem
from ingest.sources import SourceContext, SourceSpec, discover, sources_of
from ingest.sources.folder import Skipped, Unreadable
from ingest.tracker import JobTracker
from search.catalog import Catalog
from search.catalog.types import MEDIA_KINDS, MediaKind, MediaRecord, SourceKind
from search.fetch import Fetcher
from search.services import IngestRequest
from search.settings import IngestSettings

_TERMINAL = ("indexed", "partial", "failed")  # this job is finished with the item


@dataclass(frozen=True)
class Vanished:
    """Items a rescan no longer found: their points and thumbnails must be removed."""

    source_id: str
    media_ids: tuple[str, ...]


@dataclass(frozen=True)
class DiscoveryContext:
    catalog: Catalog
    settings: IngestSettings
    fetcher: Fetcher
    tracker: JobTracker
    model: str  # items indexed with another model are not "unchanged"
    redeliverable: bool = False  # a Celery discovery task: it may run again after a crash


def discover_request(ctx: DiscoveryContext, request: IngestRequest) -> Iterator[MediaItem | Vanished]:
    """Every item of ``request`` that needs work, and the vanished items of rescanned sources.

    An item reached twice in one job (the same folder named twice, one photo in two manifest
    rows) is admitted once.
    """
    admitted: set[str] = set()
    for spec in sources_of(request):
        if isinstance(spec, Problem):
            ctx.tracker.failed(spec.uri, spec.reason, discovered=True)
            continue
        yield from _discover_source(ctx, spec, admitted)


def _discover_source(ctx: DiscoveryContext, spec: SourceSpec, admitted: set[str]) -> Iterator[MediaItem | Vanished]:
    source = ctx.catalog.upsert_source(cast(SourceKind, spec.kind), spec.uri, spec.options)
    source_ctx = SourceContext(ctx.settings, ctx.fetcher, source.id, spec.options)
    seen: list[str] = []
    unreadable: list[str] = []
    for found in discover(spec, source_ctx):
        if isinstance(found, Skipped):
            _skipped(ctx, found)
            continue
        if isinstance(found, Problem):
            ctx.tracker.failed(found.uri, found.reason, discovered=True)
            if isinstance(found, Unreadable):
                unreadable.append(found.uri)
            continue
        seen.append(found.uri)
        if found.uri in admitted:
            continue
        admitted.add(found.uri)
        item = admit(ctx, found)
        if item is not None:
            yield item
    ctx.catalog.mark_source_scanned(source.id)
    if spec.complete_listing:
        vanished = _sweep(ctx.catalog, source.id, seen, unreadable)
        if vanished.media_ids:
            yield vanished


def admit(ctx: DiscoveryContext, item: MediaItem) -> MediaItem | None:
    """Count ``item`` and return it when it needs work; None when it is unchanged (skipped)."""
    job_id = ctx.tracker.job_id
    if item.is_remote:
        ctx.tracker.discovered()
        return item  # the fetch stage downloads it, then decides
    record = ctx.catalog.get_media_by_uri(item.uri)
    if record is not None and record.job_id == job_id and record.status != "deleted":
        return _readmit(item, record)  # a redelivered discovery: already counted for this job
    ctx.tracker.discovered()
    if _unchanged(ctx, item, record):
        ctx.tracker.skipped()
        return None
    if ctx.redeliverable:
        ctx.tracker.flush()  # counted in the catalog before registered: a rerun will not count it again
    registered = ctx.catalog.upsert_media(
        item.uri,
        kind=catalog_kind(item.kind),
        source_id=item.source_id,
        status="pending",
        size_bytes=item.size,
        mtime=item.mtime,
        job_id=job_id,
    )
    return replace(item, had_points=registered.point_count > 0)


def catalog_kind(hint: str) -> MediaKind:
    """The catalog's kind for a hint; ``auto`` is recorded as image until the bytes say otherwise."""
    return cast(MediaKind, hint) if hint in MEDIA_KINDS else "image"


def _readmit(item: MediaItem, record: MediaRecord) -> MediaItem | None:
    if record.status in _TERMINAL:
        return None
    return replace(item, had_points=record.point_count > 0)


def _unchanged(ctx: DiscoveryContext, item: MediaItem, record: MediaRecord | None) -> bool:
    if record is None:
        return False
    return ctx.catalog.is_unchanged(item.uri, item.size, item.mtime, item.fingerprint, model=ctx.model)


def _skipped(ctx: DiscoveryContext, found: Skipped) -> None:
    """Count a deliberate skip and keep its reason with the job's failures, so none is silent."""
    ctx.catalog.record_failure(ctx.tracker.job_id, found.uri, f"skipped: {found.reason}")
    ctx.tracker.discovered()
    ctx.tracker.skipped()


def _sweep(catalog: Catalog, source_id: str, seen: list[str], unreadable: list[str]) -> Vanished:
    """The source's live items this scan did not see, except those at or below an unreadable entry.

    Nothing is marked here: the deletion marks the rows after their points are gone.
    """
    keep = set(seen) | set(unreadable)
    below = tuple(uri.rstrip("/") + "/" for uri in unreadable)
    gone = [
        record.id
        for record in catalog.media_for_source(source_id)
        if record.status != "deleted" and record.uri not in keep and not (below and record.uri.startswith(below))
    ]
    return Vanished(source_id, tuple(gone))


def admit_fetched(ctx: DiscoveryContext, item: MediaItem) -> MediaItem | None:
    """After a remote item is downloaded: skip it when its bytes are what was indexed, else
    register it as pending for this job. The caller counted it as discovered already."""
    record = ctx.catalog.get_media_by_uri(item.uri)
    if record is not None and record.job_id == ctx.tracker.job_id and record.status in _TERMINAL:
        return None  # a redelivered task: this job already counted the item
    if record is not None and ctx.catalog.is_unchanged(item.uri, item.size, None, item.content_hash, model=ctx.model):
        ctx.tracker.skipped()
        return None
    registered = ctx.catalog.upsert_media(
        item.uri,
        kind=catalog_kind(item.kind),
        source_id=item.source_id,
        status="pending",
        size_bytes=item.size,
        content_hash=item.content_hash,
        job_id=ctx.tracker.job_id,
        metadata={"download": item.local_copy},
    )
    return replace(item, had_points=registered.point_count > 0)


def already_done(catalog: Catalog, job_id: str, item: MediaItem) -> bool:
    """True when this job already finished ``item`` (a redelivered task must not redo or recount it)."""
    record = catalog.get_media_by_uri(item.uri)
    return record is not None and record.job_id == job_id and record.status in _TERMINAL
