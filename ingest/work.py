"""What each Celery task does, as plain functions of (services, ids): testable without Celery.

The tasks in ``ingest.tasks`` only unpack their arguments and call these. Work is handed on
through a ``Dispatch`` (Celery in production), so discovery never waits for embedding: it
sends batches of item addresses to the ``gpu`` queue (remote ones via a ``cpu`` fetch step) and
ends by scheduling ``finalize``, which closes the job once every discovered item is accounted for.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Protocol

from ingest.discovery import DiscoveryContext, Vanished, admit_fetched, already_done, discover_request
from ingest.items import MediaItem
from ingest.pipeline import Pipeline, PipelineParts
from ingest.requests import request_from_params
from ingest.stages.fetch import fetch_remote
from ingest.stages.record import Failed, record_fetch_failures
from ingest.tracker import JobTracker
from search.catalog.types import JobRecord
from search.deletion import delete_media_items
from search.errors import FetchError, MediaError
from search.fetch import Fetcher
from search.services import Services


class Dispatch(Protocol):
    """Hands work to the next stage (Celery's ``apply_async`` in distributed mode)."""

    def fetch(self, job_id: str, items: Sequence[MediaItem], attempt: int = 0, countdown: float = 0.0) -> None: ...

    def index(self, job_id: str, items: Sequence[MediaItem]) -> None: ...

    def purge(self, job_id: str, media_ids: Sequence[str]) -> None: ...

    def finalize(self, job_id: str) -> None: ...


def model_name(services: Services) -> str:
    """The model spec items are indexed with, without loading the model (cpu workers need it)."""
    from search.embedder.spec import parse_model_spec

    return parse_model_spec(services.settings.model).text


def discover_job(services: Services, fetcher: Fetcher, dispatch: Dispatch, job_id: str) -> None:
    """Walk the job's sources and dispatch its items in batches; then schedule ``finalize``.

    A redelivered discovery (the worker died) walks again; admission does not count items this
    job already registered, so the counters stay consistent.
    """
    catalog = services.catalog
    job = catalog.start_job(job_id)
    if job.finished:
        return
    tracker = JobTracker(catalog, job_id)
    ctx = DiscoveryContext(catalog, services.settings.ingest, fetcher, tracker, model_name(services), redeliverable=True)
    batcher = _Batcher(dispatch, tracker, services.settings.ingest.task_batch_items)
    for entry in discover_request(ctx, request_from_params(job.params)):
        if tracker.cancelled:
            break
        batcher.add(entry)
    batcher.flush()
    dispatch.finalize(job_id)


def fetch_items(
    services: Services, fetcher: Fetcher, dispatch: Dispatch, job_id: str, items: Sequence[MediaItem], attempt: int
) -> None:
    """Download remote items; pass changed ones to the ``gpu`` queue, retry transient failures later."""
    catalog = services.catalog
    tracker = JobTracker(catalog, job_id)
    if tracker.job.finished:
        return
    ctx = DiscoveryContext(catalog, services.settings.ingest, fetcher, tracker, model_name(services))
    retries = services.settings.ingest.task_max_retries
    ready: list[MediaItem] = []
    again: list[MediaItem] = []
    failures: list[Failed] = []
    for item in items:
        if already_done(catalog, job_id, item):
            continue
        try:
            admitted = admit_fetched(ctx, fetch_remote(item, services.settings, fetcher))
        except FetchError as exc:
            if exc.transient and attempt < retries:
                again.append(item)
            else:
                failures.append(Failed(item, str(exc)))
            continue
        except MediaError as exc:
            failures.append(Failed(item, str(exc)))
            continue
        if admitted is not None:
            ready.append(admitted)
    record_fetch_failures(tracker, failures)
    tracker.flush()
    if ready:
        dispatch.index(job_id, ready)
    if again:
        dispatch.fetch(job_id, again, attempt + 1, countdown=retry_delay(attempt))


def index_items(services: Services, fetcher: Fetcher, job_id: str, items: Sequence[MediaItem]) -> None:
    """Decode, embed and store a batch of items in this process (the ``gpu`` task's body)."""
    catalog = services.catalog
    tracker = JobTracker(catalog, job_id)
    if tracker.job.finished:
        return
    parts = PipelineParts(services.settings, catalog, services.store, services.embedder, fetcher, tracker)
    try:
        Pipeline(parts).run(items)
    finally:
        tracker.flush()


def abandon_items(services: Services, job_id: str, items: Sequence[MediaItem], reason: str) -> None:
    """Record as failed the items of a task that ran out of retries, so the job can finish.

    Items this job already finished are left alone; the rest keep their reason in the job's
    failure list, and a later run retries them (failed items are never "unchanged").
    """
    catalog = services.catalog
    tracker = JobTracker(catalog, job_id)
    lost = [Failed(item, reason) for item in items if not already_done(catalog, job_id, item)]
    record_fetch_failures(tracker, lost)
    tracker.flush()


def purge_items(services: Services, media_ids: Sequence[str]) -> None:
    """Delete the items that vanished from their source (points, thumbnails, catalog state)."""
    delete_media_items(services.store, services.catalog, services.settings.thumbnails_dir, media_ids)


def finalize_job(services: Services, job_id: str) -> JobRecord | None:
    """Finish the job when every discovered item is accounted for; None means 'not yet'.

    Polled every second while the job runs, so it also keeps the job's heartbeat fresh
    between its tasks: a job waiting for a free gpu worker is not an interrupted one.
    """
    catalog = services.catalog
    job = catalog.get_job(job_id)
    if job.finished:
        return job
    if beat_due(job, services.settings.ingest.heartbeat_interval):
        catalog.beat_job(job_id)
    if job.processed < job.discovered:
        return None
    return catalog.finish_job(job_id, "done")


def beat_due(job: JobRecord, interval: float) -> bool:
    """True when the job's last heartbeat is at least ``interval`` seconds old (or missing)."""
    if job.heartbeat_at is None:
        return True
    return (datetime.now(timezone.utc) - job.heartbeat_at).total_seconds() >= interval


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter for re-queued work: 2, 4, 8 … seconds, at most 5 minutes."""
    return min(300.0, 2.0 * 2**attempt) * (0.5 + random.random() / 2)


class _Batcher:
    """Groups discovered items into task-sized batches; counters are flushed before each send
    so progress shows discovery moving."""

    def __init__(self, dispatch: Dispatch, tracker: JobTracker, size: int) -> None:
        self.dispatch = dispatch
        self.tracker = tracker
        self.size = size
        self.local: list[MediaItem] = []
        self.remote: list[MediaItem] = []

    def add(self, entry: MediaItem | Vanished) -> None:
        if isinstance(entry, Vanished):
            self.tracker.flush()
            self.dispatch.purge(self.tracker.job_id, list(entry.media_ids))
            return
        bucket = self.remote if entry.is_remote else self.local
        bucket.append(entry)
        if len(bucket) >= self.size:
            self._send(bucket)

    def flush(self) -> None:
        self._send(self.local)
        self._send(self.remote)
        self.tracker.flush()

    def _send(self, bucket: list[MediaItem]) -> None:
        if not bucket:
            return
        self.tracker.flush()
        if bucket is self.remote:
            self.dispatch.fetch(self.tracker.job_id, list(bucket))
        else:
            self.dispatch.index(self.tracker.job_id, list(bucket))
        bucket.clear()
