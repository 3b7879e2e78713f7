"""A job's counters and failure list, written to the catalog as work proceeds.

Counter updates are buffered and flushed at most every ``interval`` seconds (and on demand), so
a run over thousands of small images costs a few catalog writes per second rather than one per
image, while a progress bar still moves smoothly. Failures are written at once with their
reason: they are rare and must never be lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from search.catalog import Catalog, MediaWrite
from search.catalog.types import JobRecord

Progress = Callable[[JobRecord], None]


@dataclass
class Deltas:
    discovered: int = 0
    indexed: int = 0
    skipped: int = 0
    failed: int = 0

    def __bool__(self) -> bool:
        return bool(self.discovered or self.indexed or self.skipped or self.failed)


class JobTracker:
    """Thread-safe; ``job`` is the latest record the catalog returned (it shows a cancel)."""

    def __init__(self, catalog: Catalog, job_id: str, progress: Progress | None = None, interval: float = 0.25) -> None:
        self.catalog = catalog
        self.job_id = job_id
        self.progress = progress
        self.interval = interval
        self._pending = Deltas()
        self._lock = threading.Lock()
        self._last_flush = 0.0
        self.job: JobRecord = catalog.get_job(job_id)

    @property
    def cancelled(self) -> bool:
        """Stop working: the job was cancelled, or a later run took it over (``JobRecord.stopped``)."""
        return self.job.stopped

    def discovered(self, n: int = 1) -> None:
        self._add(discovered=n)

    def indexed(self, n: int = 1) -> None:
        self._add(indexed=n)

    def skipped(self, n: int = 1) -> None:
        self._add(skipped=n)

    def failed(self, uri: str, reason: str, *, discovered: bool = False) -> None:
        """Record why ``uri`` was lost; ``discovered`` also counts it as found (discovery problems)."""
        self.catalog.record_failure(self.job_id, uri, reason)
        self._add(failed=1, discovered=1 if discovered else 0)

    def flush(self) -> JobRecord:
        """Write buffered counts now and return the job as it stands."""
        with self._lock:
            pending, self._pending = self._pending, Deltas()
            self._last_flush = time.monotonic()
        if pending:
            self.job = self.catalog.add_to_job(self.job_id, **vars(pending))
        else:
            self.job = self.catalog.get_job(self.job_id)
        if self.progress is not None:
            self.progress(self.job)
        return self.job

    def commit(
        self,
        *,
        indexed: int = 0,
        failures: Sequence[tuple[str, str]] = (),
        notes: Sequence[tuple[str, str]] = (),
        writes: Sequence[MediaWrite] = (),
    ) -> JobRecord:
        """Count a group of outcomes and write them with the buffered counts in one transaction.

        ``failures`` are counted as failed and listed with their reason; ``notes`` are listed
        only (a partial video counts as indexed); ``writes`` are the items' catalog rows.
        """
        with self._lock:
            pending, self._pending = self._pending, Deltas()
            self._last_flush = time.monotonic()
        pending.indexed += indexed
        pending.failed += len(failures)
        self.job = self.catalog.commit_outcomes(self.job_id, vars(pending), [*failures, *notes], writes)
        if self.progress is not None:
            self.progress(self.job)
        return self.job

    def _add(self, **deltas: int) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self._pending, name, getattr(self._pending, name) + value)
            due = time.monotonic() - self._last_flush >= self.interval
        if due:
            self.flush()
