"""Thin Celery tasks: unpack ids and item addresses, call ``ingest.work``, hand work on.

Tasks take job ids, item addresses (``MediaItem.to_json()``) and media ids, never pixels; each
worker process opens its own embedder, store, catalog and HTTP client once, on first use
(``_Resources``), and closes them when the process shuts down. Transient failures (store or
catalog unreachable, a transient download error) retry the task with exponential backoff;
permanent ones (a corrupt file) were already recorded against their item and never reach here.
While a task runs it beats for its job (``ingest.heartbeat``), so the job is shown running and a
job no worker touches any more is found interrupted.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from celery import Celery, Task, signals

from ingest import enrich, work
from ingest.heartbeat import Heartbeat, job_heartbeat
from ingest.items import MediaItem
from ingest.requests import JOB_KIND
from search.errors import FetchError, StoreUnavailable
from search.fetch import Fetcher
from search.services import Services
from search.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

DISCOVER = "mmsearch.ingest.cpu.discover"
FETCH = "mmsearch.ingest.cpu.fetch"
FINALIZE = "mmsearch.ingest.cpu.finalize"
INDEX = "mmsearch.ingest.gpu.index"
PURGE = "mmsearch.ingest.gpu.purge"
OCR = "mmsearch.ingest.enrich.ocr"
FINALIZE_POLL_S = 1.0


class TransientError(Exception):
    """A failure worth retrying the whole task for (wraps a transient FetchError)."""


RETRY_ON = (StoreUnavailable, TransientError)


class _Resources:
    """The services of one worker process, opened lazily and re-opened after a fork."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._services: Services | None = None
        self._fetcher: Fetcher | None = None

    def get(self) -> tuple[Services, Fetcher]:
        with self._lock:
            if self._pid != os.getpid() or self._services is None or self._fetcher is None:
                self._services = Services(self.settings)
                self._fetcher = Fetcher(self.settings.ingest)
                self._pid = os.getpid()
                from ingest.jobs import sweep_crash_debris

                sweep_crash_debris(self.settings)  # a worker killed mid-write left temporary files
            return self._services, self._fetcher

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                if self._services is not None:
                    self._services.close()
                if self._fetcher is not None:
                    self._fetcher.close()
            self._services, self._fetcher, self._pid = None, None, None


class CeleryDispatch:
    """``work.Dispatch`` over Celery: each hand-off is a task message routed by its name."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def fetch(self, job_id: str, items: Sequence[MediaItem], attempt: int = 0, countdown: float = 0.0) -> None:
        self.app.send_task(FETCH, args=(job_id, _to_json(items), attempt), countdown=countdown or None)

    def index(self, job_id: str, items: Sequence[MediaItem]) -> None:
        self.app.send_task(INDEX, args=(job_id, _to_json(items)))

    def purge(self, job_id: str, media_ids: Sequence[str]) -> None:
        self.app.send_task(PURGE, args=(job_id, list(media_ids)))

    def finalize(self, job_id: str) -> None:
        self.app.send_task(FINALIZE, args=(job_id,), countdown=FINALIZE_POLL_S)

    def discover(self, job_id: str) -> None:
        self.app.send_task(DISCOVER, args=(job_id,))

    def ocr(self, job_id: str, media_ids: Sequence[str]) -> None:
        self.app.send_task(OCR, args=(job_id, list(media_ids)))


def register_tasks(app: Celery, settings: Settings) -> None:
    """Define the ingestion tasks on ``app``; their per-process resources come from ``settings``."""
    resources = _Resources(settings)
    readers = _Readers()
    dispatch = CeleryDispatch(app)
    retrying = {
        "bind": True,
        "autoretry_for": RETRY_ON,
        "retry_backoff": True,
        "retry_backoff_max": 120,
        "retry_jitter": True,
        "max_retries": settings.ingest.task_max_retries,
    }

    @app.task(name=DISCOVER, **retrying)
    def discover(self: Task, job_id: str) -> None:
        services, fetcher = resources.get()
        with _beating(services, job_id), _last_try_gives_up(self, lambda r: services.catalog.finish_job(job_id, "failed", r)):
            _transient(lambda: work.discover_job(services, fetcher, dispatch, job_id))

    @app.task(name=FETCH, **retrying)
    def fetch(self: Task, job_id: str, items: list[dict[str, Any]], attempt: int = 0) -> None:
        services, fetcher = resources.get()
        batch = _from_json(items)
        with _beating(services, job_id), _last_try_gives_up(self, lambda r: work.abandon_items(services, job_id, batch, r)):
            work.fetch_items(services, fetcher, dispatch, job_id, batch, attempt)

    @app.task(name=INDEX, **retrying)
    def index(self: Task, job_id: str, items: list[dict[str, Any]]) -> None:
        services, fetcher = resources.get()
        batch = _from_json(items)
        with _beating(services, job_id), _last_try_gives_up(self, lambda r: work.abandon_items(services, job_id, batch, r)):
            _transient(lambda: work.index_items(services, fetcher, job_id, batch))

    @app.task(name=PURGE, **retrying)
    def purge(self: Task, job_id: str, media_ids: list[str]) -> None:
        services, _ = resources.get()
        with _last_try_gives_up(
            self, lambda reason: log.error("job %s: %d vanished items keep their points: %s", job_id, len(media_ids), reason)
        ):
            work.purge_items(services, media_ids)

    @app.task(name=FINALIZE, bind=True, max_retries=None, autoretry_for=(StoreUnavailable,), retry_backoff=True)
    def finalize(self: Task, job_id: str) -> None:
        services, _ = resources.get()
        job = work.finalize_job(services, job_id)
        if job is None:
            raise self.retry(countdown=FINALIZE_POLL_S)
        if job.status == "done" and job.kind == JOB_KIND:
            enrich.dispatch_ocr(services, dispatch.ocr)  # off the embedding path: the enrich queue

    @app.task(name=OCR, **retrying)
    def ocr(self: Task, job_id: str, media_ids: list[str]) -> None:
        services, _ = resources.get()
        with _beating(services, job_id):
            enrich.ocr_batch(services, readers.get(services), job_id, media_ids)

    def close_resources(**_: object) -> None:
        readers.close()
        resources.close()

    signals.worker_process_shutdown.connect(close_resources, weak=False)
    signals.worker_shutdown.connect(close_resources, weak=False)
    app.mmsearch_resources = resources


class _Readers:
    """One OCR reader (engine loaded on first need) per worker process and thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, services: Services) -> enrich.ImageReader:
        reader = getattr(self._local, "reader", None)
        if reader is None or getattr(self._local, "pid", None) != os.getpid():
            reader = self._local.reader = enrich.ImageReader(services)
            self._local.pid = os.getpid()
        return reader

    def close(self) -> None:
        reader = getattr(self._local, "reader", None)
        if reader is not None and getattr(self._local, "pid", None) == os.getpid():
            reader.close()
        self._local.reader = None


def _beating(services: Services, job_id: str) -> Heartbeat:
    return job_heartbeat(services.catalog, job_id, services.settings.ingest.heartbeat_interval)


@contextmanager
def _last_try_gives_up(task: Task, give_up: Callable[[str], object]) -> Iterator[None]:
    """Let Celery retry a transient failure, but on the last try record it instead.

    Without this, a batch whose store stayed down past every retry would vanish with its
    message, its items pending forever and the job never finishing; recorded as failed, the
    items show up in the job's failure list and the next run retries them.
    """
    try:
        yield
    except RETRY_ON as exc:
        if task.request.retries < (task.max_retries or 0):
            raise
        log.error("%s gave up after %d retries: %s", task.name, task.request.retries, exc)
        give_up(f"gave up after {task.request.retries} retries: {exc}")


def _transient(action: Callable[[], T]) -> T:
    try:
        return action()
    except FetchError as exc:
        if exc.transient:
            raise TransientError(str(exc)) from exc
        raise


def _to_json(items: Sequence[MediaItem]) -> list[dict[str, Any]]:
    return [item.to_json() for item in items]


def _from_json(items: list[dict[str, Any]]) -> list[MediaItem]:
    return [MediaItem.from_json(item) for item in items]
