"""The public entry points: run an ingest job, or start one in the background.

- ``run_ingest``: blocking, for the CLI. Embedded mode (no broker) runs the job in this
  process, which owns the store; distributed mode dispatches it to Celery workers and follows
  its progress in the catalog.
- ``BackgroundLauncher``: the API's ``IngestLauncher``. Embedded mode runs jobs one after
  another on a background thread of the API process (the store's owner); distributed mode
  dispatches and returns at once.

Either way the job row in the catalog is the single record of progress and failures.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from ingest.discovery import DiscoveryContext, discover_request
from ingest.pipeline import Pipeline, PipelineParts
from ingest.requests import JOB_KIND, request_from_params, request_to_params, validate_request
from ingest.tracker import JobTracker, Progress
from search.catalog import Catalog
from search.catalog.types import JobRecord
from search.fetch import Fetcher
from search.services import IngestRequest, Services

log = logging.getLogger(__name__)

_POLL_S = 0.5


def create_job(catalog: Catalog, request: IngestRequest) -> JobRecord:
    """A queued job row holding the validated request (raises ConfigError for a bad request)."""
    return catalog.create_job(JOB_KIND, request_to_params(validate_request(request)))


def run_ingest(services: Services, request: IngestRequest, progress: Progress | None = None) -> JobRecord:
    """Index everything ``request`` names and return the finished job (counters, status)."""
    job = create_job(services.catalog, request)
    if services.settings.embedded:
        return run_job_in_process(services, job.id, progress)
    dispatch_job(services, job.id)
    try:
        return wait_for_job(services.catalog, job.id, progress)
    except KeyboardInterrupt:
        services.catalog.cancel_job(job.id)  # Ctrl-C stops the workers too, as in embedded mode
        raise


def run_job_in_process(services: Services, job_id: str, progress: Progress | None = None) -> JobRecord:
    """Run a queued job here: discovery feeds the pipeline directly, no broker involved.

    The job ends ``done`` even when items failed (they are in its failure list); it ends
    ``failed`` only when the run itself broke (the store went away, a bug), and ``cancelled``
    on Ctrl-C or a cancel request.
    """
    catalog = services.catalog
    job = catalog.start_job(job_id)
    if job.finished:
        return job
    tracker = JobTracker(catalog, job_id, progress)
    request = request_from_params(job.params)
    settings = services.settings
    try:
        with Fetcher(settings.ingest) as fetcher:
            embedder, store = services.embedder, services.store
            parts = PipelineParts(settings, catalog, store, embedder, fetcher, tracker)
            ctx = DiscoveryContext(catalog, settings.ingest, fetcher, tracker, embedder.model_name)
            Pipeline(parts, redelivered=False).run(discover_request(ctx, request))
    except KeyboardInterrupt:
        _flush_quietly(tracker)
        catalog.finish_job(job_id, "cancelled")
        raise
    except Exception as exc:
        log.exception("ingest job %s failed", job_id)
        _flush_quietly(tracker)
        return _report(catalog.finish_job(job_id, "failed", error=f"{type(exc).__name__}: {exc}"), progress)
    tracker.flush()
    return _report(catalog.finish_job(job_id, "done"), progress)


def dispatch_job(services: Services, job_id: str) -> None:
    """Send the job's discovery task to the workers (distributed mode)."""
    from ingest.celery_app import make_celery
    from ingest.tasks import CeleryDispatch

    CeleryDispatch(make_celery(services.settings)).discover(job_id)


def wait_for_job(catalog: Catalog, job_id: str, progress: Progress | None = None, timeout: float | None = None) -> JobRecord:
    """Follow a job in the catalog until it finishes (or ``timeout`` seconds pass)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = catalog.get_job(job_id)
        if progress is not None:
            progress(job)
        if job.finished or (deadline is not None and time.monotonic() > deadline):
            return job
        time.sleep(_POLL_S)


class BackgroundLauncher:
    """``search.services.IngestLauncher``: start a job and return its id at once."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, request: IngestRequest) -> str:
        job = create_job(self.services.catalog, request)
        if self.services.settings.embedded:
            self._ensure_thread()
            self._jobs.put(job.id)
        else:
            dispatch_job(self.services, job.id)
        return job.id

    def join(self, timeout: float | None = None) -> None:
        """Wait until every queued embedded job has run (tests, orderly shutdown)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._jobs.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the background thread after the jobs already queued (call at API shutdown)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ingest-jobs", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            job_id = self._jobs.get()
            try:
                if job_id is None:
                    return
                run_job_in_process(self.services, job_id)
            except Exception:
                log.exception("background ingest job %s failed", job_id)
            finally:
                self._jobs.task_done()


def _flush_quietly(tracker: JobTracker) -> None:
    try:
        tracker.flush()
    except Exception:
        log.warning("could not write the final counters of job %s", tracker.job_id)


def _report(job: JobRecord, progress: Progress | None) -> JobRecord:
    if progress is not None:
        progress(job)
    return job
