"""The public entry points: run an ingest job, or start one in the background.

- ``run_ingest``: blocking, for the CLI. Embedded mode (no broker) runs the job in this
  process, which owns the store; distributed mode dispatches it to Celery workers and follows
  its progress in the catalog.
- ``BackgroundLauncher``: the API's ``IngestLauncher``. Embedded mode runs jobs one after
  another on a background thread of the API process (the store's owner); distributed mode
  dispatches and returns at once.

Either way the job row in the catalog is the single record of progress and failures, and of
who works on the job: the embedded runner records its process as the job's owner and beats for
it (``ingest.heartbeat``); in distributed mode the tasks and the CLI following the job beat.
Before a job is created, jobs whose runner is gone are marked interrupted, and the new job
continues the previous run of the same request when that one was interrupted or cancelled
(``resumed_from``): what it finished is skipped as unchanged, the rest is done now.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from ingest.discovery import DiscoveryContext, discover_request
from ingest.enrich import OcrPass
from ingest.heartbeat import Heartbeat, job_heartbeat, owner_heartbeat
from ingest.pipeline import Pipeline, PipelineParts
from ingest.requests import JOB_KIND, request_from_params, request_to_params, validate_request
from ingest.tracker import JobTracker, Progress
from search.catalog import Catalog
from search.catalog.owners import JobOwner
from search.catalog.types import JobRecord
from search.fetch import Fetcher
from search.media.thumbnail import remove_stale_temporaries
from search.services import IngestRequest, Services
from search.settings import Settings

log = logging.getLogger(__name__)

_POLL_S = 0.5


def create_job(catalog: Catalog, request: IngestRequest, *, owner: str | None = None, resume: bool = False) -> JobRecord:
    """A queued job row holding the validated request (raises ConfigError for a bad request).

    ``owner``: the process that will run it in-process; ``resume``: continue the previous run of
    the same request if it was interrupted or cancelled (see ``Catalog.create_job``).
    """
    return catalog.create_job(JOB_KIND, request_to_params(validate_request(request)), owner=owner, resume=resume)


def interrupt_orphaned_jobs(catalog: Catalog, settings: Settings) -> list[JobRecord]:
    """Mark interrupted the jobs whose runner is gone (called before new work and by readers)."""
    return catalog.interrupt_orphaned_jobs(settings.ingest.heartbeat_timeout)


def run_ingest(services: Services, request: IngestRequest, progress: Progress | None = None) -> JobRecord:
    """Index everything ``request`` names and return the finished job (counters, status)."""
    catalog, ingest = services.catalog, services.settings.ingest
    validate_request(request)  # a bad request fails before anything is written
    interrupt_orphaned_jobs(catalog, services.settings)
    if services.settings.embedded:
        owner = JobOwner.current().encode()
        job = create_job(catalog, request, owner=owner, resume=True)
        with owner_heartbeat(catalog, owner, ingest.heartbeat_interval):
            finished = run_job_in_process(services, job.id, progress, owner=owner)
        run_enrichment(services, owner)
        return finished
    job = create_job(catalog, request, resume=True)
    dispatch_job(services, job.id)
    try:
        with job_heartbeat(catalog, job.id, ingest.heartbeat_interval):  # the follower shows life too
            return wait_for_job(catalog, job.id, progress)
    except KeyboardInterrupt:
        catalog.cancel_job(job.id)  # Ctrl-C stops the workers too, as in embedded mode
        raise


def run_job_in_process(services: Services, job_id: str, progress: Progress | None = None, owner: str | None = None) -> JobRecord:
    """Run a queued job here: discovery feeds the pipeline directly, no broker involved.

    The job ends ``done`` even when items failed (they are in its failure list); it ends
    ``failed`` only when the run itself broke (the store went away, a bug), and ``cancelled``
    on Ctrl-C or a cancel request. ``owner`` (this process) must be beating while it runs.
    """
    catalog = services.catalog
    job = catalog.start_job(job_id, owner=owner)
    if job.finished:
        return job
    sweep_crash_debris(services.settings)
    tracker = JobTracker(catalog, job_id, progress)
    request = request_from_params(job.params)
    settings = services.settings
    try:
        with Fetcher(settings.ingest) as fetcher:
            embedder, store = services.embedder, services.store
            parts = PipelineParts(settings, catalog, store, embedder, fetcher, tracker)
            ctx = DiscoveryContext(catalog, settings.ingest, fetcher, tracker, embedder.model_name)
            Pipeline(parts, redelivered=False).run(discover_request(ctx, request))
            store.request_index()  # the background maintainer indexes what this job added
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


def run_enrichment(services: Services, owner: str) -> None:
    """The CLI's embedded job ended: read the text in its new images before the process exits
    (the job is already done and searchable; Ctrl-C stops reading, the next run continues)."""
    if not services.settings.ocr.enabled:
        return
    ocr = OcrPass(services, owner)
    ocr.request()
    try:
        while not ocr.join(timeout=1.0):
            pass
    finally:
        ocr.close()


def sweep_crash_debris(settings: Settings) -> None:
    """Remove what a process killed mid-write left behind (temporary thumbnails)."""
    removed = remove_stale_temporaries(settings.thumbnails_dir, older_than=settings.ingest.heartbeat_timeout)
    if removed:
        log.info("removed %d temporary thumbnails left by an interrupted run", removed)


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
        self.owner = JobOwner.current().encode()  # embedded jobs run in this process
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._heartbeat: Heartbeat | None = None
        self._lock = threading.Lock()
        self.ocr = OcrPass(services, self.owner)  # reads text in images after each embedded job

    def __call__(self, request: IngestRequest) -> str:
        catalog = self.services.catalog
        validate_request(request)
        interrupt_orphaned_jobs(catalog, self.services.settings)
        if self.services.settings.embedded:
            job = create_job(catalog, request, owner=self.owner, resume=True)
            self._ensure_thread()
            self._jobs.put(job.id)
        else:
            job = create_job(catalog, request, resume=True)
            dispatch_job(self.services, job.id)
        return job.id

    def join(self, timeout: float | None = None) -> None:
        """Wait until every queued embedded job has run (tests, orderly shutdown)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._jobs.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def join_enrichment(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the OCR pass (tests); True when none runs."""
        return self.ocr.join(timeout)

    def close(self) -> None:
        """Stop the background thread after the jobs already queued (call at API shutdown)."""
        self.ocr.close()
        with self._lock:
            thread, self._thread = self._thread, None
            heartbeat, self._heartbeat = self._heartbeat, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()
        if heartbeat is not None:
            heartbeat.stop()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._heartbeat is None:  # beats for the queued jobs too, from the first one on
                interval = self.services.settings.ingest.heartbeat_interval
                self._heartbeat = owner_heartbeat(self.services.catalog, self.owner, interval).start()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ingest-jobs", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            job_id = self._jobs.get()
            try:
                if job_id is None:
                    return
                run_job_in_process(self.services, job_id, owner=self.owner)
                self.ocr.request()  # off the embedding path: after the job, on its own thread
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
