"""Admission: turn a request's sources into the items that need work, counting as it goes.

For each item found, discovery decides *whether* it needs work, cheaply: a local file whose size
and mtime (and, for a product, manifest row) match what was indexed with this model is skipped
without being opened. Anything else is registered as ``pending`` for this job and passed on.
Local items are judged ``ADMIT_CHUNK`` at a time: one query reads their rows, one statement
registers those that need work, and no row is read twice, so rescanning an unchanged folder
costs a stat per file and a query per 500 files. Remote media cannot be judged before it is
downloaded, so the fetch stage decides for it.

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

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import cast

from ingest.items import MediaItem, Problem
from ingest.sources import SourceContext, SourceSpec, discover, sources_of
from ingest.sources.folder import Skipped, Unreadable
from ingest.tracker import JobTracker
from search.catalog import Catalog, MediaWrite, record_is_unchanged
from search.catalog.types import MEDIA_KINDS, MediaKind, MediaRecord, SourceKind
from search.fetch import Fetcher
from search.services import IngestRequest
from search.settings import IngestSettings

_TERMINAL = ("indexed", "partial", "failed")  # this job is finished with the item
ADMIT_CHUNK = 500  # local items judged with one catalog read (and registered with one write)


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
    waiting: list[MediaItem] = []  # local items, judged ADMIT_CHUNK at a time
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
        waiting.append(found)
        if found.is_remote or len(waiting) >= ADMIT_CHUNK:  # a remote item is not looked up: no need to wait
            yield from admit_many(ctx, waiting)
            waiting = []
    yield from admit_many(ctx, waiting)
    ctx.catalog.mark_source_scanned(source.id)
    if spec.complete_listing:
        vanished = _sweep(ctx.catalog, source.id, seen, unreadable)
        if vanished.media_ids:
            yield vanished


def admit_many(ctx: DiscoveryContext, items: Sequence[MediaItem]) -> list[MediaItem]:
    """Count ``items`` and return, in their order, those that need work (the unchanged are
    skipped), with one catalog read and one write for up to 500 of them.

    The rows read here decide everything (unchanged, already this job's, had points), so
    nothing reads them again; an unchanged folder costs a stat per file and one query per 500.
    """
    job_id = ctx.tracker.job_id
    local = [item.uri for item in items if not item.is_remote]
    records = ctx.catalog.media_by_uris(local) if local else {}
    decided: list[MediaItem | None] = []
    register: list[int] = []  # positions in ``decided`` of the items to register as pending
    for item in items:
        record = records.get(item.uri)
        if item.is_remote:
            ctx.tracker.discovered()
            decided.append(item)  # the fetch stage downloads it, then decides
        elif record is not None and record.job_id == job_id and record.status != "deleted":
            decided.append(_readmit(item, record))  # a redelivered discovery: already counted for this job
        else:
            ctx.tracker.discovered()
            if record_is_unchanged(record, item.size, item.mtime, item.fingerprint, model=ctx.model):
                ctx.tracker.skipped()
                decided.append(None)
            else:
                register.append(len(decided))
                decided.append(item)
    if register:
        _register(ctx, decided, register)
    return [item for item in decided if item is not None]


def _register(ctx: DiscoveryContext, decided: list[MediaItem | None], positions: list[int]) -> None:
    """Register the items at ``positions`` as pending for this job, noting which had points."""
    if ctx.redeliverable:
        ctx.tracker.flush()  # counted in the catalog before registered: a rerun will not count them again
    pending = [cast(MediaItem, decided[i]) for i in positions]
    counts = ctx.catalog.write_media(
        [
            MediaWrite(
                item.uri,
                kind=catalog_kind(item.kind),
                source_id=item.source_id,
                status="pending",
                size_bytes=item.size,
                mtime=item.mtime,
                job_id=ctx.tracker.job_id,
            )
            for item in pending
        ]
    )
    for position, item in zip(positions, pending):
        decided[position] = replace(item, had_points=counts.get(item.media_id, 0) > 0)


def catalog_kind(hint: str) -> MediaKind:
    """The catalog's kind for a hint; ``auto`` is recorded as image until the bytes say otherwise."""
    return cast(MediaKind, hint) if hint in MEDIA_KINDS else "image"


def _readmit(item: MediaItem, record: MediaRecord) -> MediaItem | None:
    if record.status in _TERMINAL:
        return None
    return replace(item, had_points=record.point_count > 0)


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
    if record is not None and record_is_unchanged(record, item.size, None, item.content_hash, model=ctx.model):
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


def not_done_yet(catalog: Catalog, job_id: str, entries: Iterable[MediaItem | Vanished]) -> Iterator[MediaItem | Vanished]:
    """``entries`` without the items this job already finished, judged ``ADMIT_CHUNK`` at a time
    with one catalog query (a redelivered task must not redo or recount them)."""
    chunk: list[MediaItem | Vanished] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= ADMIT_CHUNK:
            yield from _not_done(catalog, job_id, chunk)
            chunk = []
    yield from _not_done(catalog, job_id, chunk)


def _not_done(catalog: Catalog, job_id: str, chunk: list[MediaItem | Vanished]) -> list[MediaItem | Vanished]:
    uris = [e.uri for e in chunk if isinstance(e, MediaItem)]
    records = catalog.media_by_uris(uris) if uris else {}

    def done(entry: MediaItem | Vanished) -> bool:
        record = records.get(entry.uri) if isinstance(entry, MediaItem) else None
        return record is not None and record.job_id == job_id and record.status in _TERMINAL

    return [e for e in chunk if not done(e)]


def already_done(catalog: Catalog, job_id: str, item: MediaItem) -> bool:
    """True when this job already finished ``item`` (a redelivered task must not redo or recount it)."""
    record = catalog.get_media_by_uri(item.uri)
    return record is not None and record.job_id == job_id and record.status in _TERMINAL
