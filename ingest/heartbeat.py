"""A background thread that keeps telling the catalog a job's runner is alive.

Readers (``mmsearch jobs``, ``/stats``, the next run) call a job interrupted once its owner
process is gone or its heartbeat is older than ``ingest.heartbeat_timeout``, so every runner
beats while it works: the embedded runner for every job its process owns, a Celery task for
its job, the CLI for the distributed job it follows. A failed beat is logged, never raised: a
catalog hiccup must not stop the work it reports on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from search.catalog import Catalog

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat`` at once and then every ``interval`` seconds until stopped (a context manager)."""

    def __init__(self, beat: Callable[[], None], interval: float, name: str = "job-heartbeat") -> None:
        self._beat = beat
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating; waits for a beat in progress (bounded: the catalog has its own timeouts)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 30)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        while True:
            try:
                self._beat()
            except Exception as exc:  # reported, and tried again next time
                log.warning("heartbeat failed: %s", exc)
            if self._stop.wait(self.interval):
                return


def owner_heartbeat(catalog: Catalog, owner: str, interval: float) -> Heartbeat:
    """The heartbeat of every job process ``owner`` runs or has queued (embedded mode)."""
    return Heartbeat(lambda: catalog.beat_owner(owner), interval, name="owner-heartbeat")


def job_heartbeat(catalog: Catalog, job_id: str, interval: float) -> Heartbeat:
    """The heartbeat of one distributed job, sent while a task of it (or its follower) runs."""
    return Heartbeat(lambda: catalog.beat_job(job_id), interval)
