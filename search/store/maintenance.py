"""Keeping an embedded (Qdrant Edge) shard indexed, as the Qdrant server's optimizer does.

Edge builds its HNSW index only when ``optimize()`` is called, and that call holds the GIL
for its whole run (measured here: a Python thread ticking every 10 ms advanced once during a
46 s optimize), so running it on a thread of the serving process would freeze every request.
The maintainer therefore builds the index out of process:

1. writes pause while the shard is flushed and its folder copied (seconds);
2. a child process (``search.store.optimize_child``) optimizes the copy, while the live
   shard goes on answering queries and taking writes, which are journaled in order;
3. writes and queries pause briefly while the live shard is closed, the copy swapped in, and
   the journal replayed on it.

Every step leaves one valid shard on disk: the live folder stays the truth until the swap
has replayed the journal and renamed the previous folder away (see ``recover_folder``), so a
crash or a shutdown at any moment loses nothing; an interrupted build is simply discarded.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import qdrant_edge as qe

from search.settings import IndexSettings
from search.store.base import IndexRun, IndexState
from search.store.edge_config import shard_config
from search.store.optimize_child import COMPLETE_MARKER

if TYPE_CHECKING:
    from search.store.edge import EdgeStore

log = logging.getLogger(__name__)

_CHECK_INTERVAL_S = 5.0  # how often, at most, writes make the maintainer look at the counts
_CHILD_POLL_S = 0.2


class BuildStopped(Exception):
    """The store is closing: the running build was abandoned (nothing is lost)."""


def sibling(path: Path, role: str) -> Path:
    return path.with_name(f"{path.name}.{role}")


def recover_folder(path: Path) -> None:
    """Make ``path`` the one valid shard after a crash at any step of a build or swap.

    ``.previous`` exists only between the swap's first rename and the end of its journal
    replay: it then holds every write, so it wins. ``.building`` and ``.discard`` are
    leftovers to delete.
    """
    previous = sibling(path, "previous")
    if previous.exists():
        log.warning("an index swap of %s was interrupted; restoring the shard as it was before it", path)
        if path.exists():
            shutil.rmtree(path)
        previous.rename(path)
    for leftover in (sibling(path, "building"), sibling(path, "discard")):
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)


class IndexMaintainer:
    """Runs index builds for one EdgeStore: in the background past a threshold, or on demand."""

    def __init__(self, store: EdgeStore, index: IndexSettings) -> None:
        self.store = store
        self.index = index
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._requested = False
        self._writes_seen = False
        self._last_check = 0.0
        self._running = threading.Lock()  # one build at a time
        self._child: subprocess.Popen[bytes] | None = None
        self._last_run: IndexRun | None = None
        self._thread: threading.Thread | None = None
        if index.auto_optimize:
            self._thread = threading.Thread(target=self._loop, name="mmsearch-index", daemon=True)
            self._thread.start()

    # -- what the store and its callers use -------------------------------------------------

    def note_write(self) -> None:
        """Called after each write: cheap; the counts are looked at every few seconds at most."""
        self._writes_seen = True
        if time.monotonic() - self._last_check >= _CHECK_INTERVAL_S:
            self._wake.set()

    def request(self) -> None:
        """An ingest job ended: build the index now if enough points await it."""
        self._requested = True
        self._wake.set()

    def state(self) -> IndexState:
        points, indexed = self.store.index_counts()
        return IndexState(points, indexed, self._running.locked(), self.index.auto_optimize, self._last_run)

    def needed(self) -> bool:
        """True when the unindexed part has reached the threshold a build would index."""
        points, indexed = self.store.index_counts()
        return points - indexed >= self.index.threshold_points

    def run(self, progress: Callable[[float], None] | None = None, force: bool = False) -> IndexRun | None:
        """Build the index now (blocking); None when another build runs or nothing needs it."""
        if not force and not self.needed():
            return None
        if not self._running.acquire(blocking=False):
            return None
        try:
            run = self._build(progress)
        finally:
            self._running.release()
        self._last_run = run
        return run

    def close(self, wait_s: float = 0.0) -> None:
        """Stop the background thread; a running build is waited for up to ``wait_s``, then
        abandoned (its child is stopped and its copy deleted; the live shard is untouched)."""
        deadline = time.monotonic() + wait_s
        while self._running.locked() and time.monotonic() < deadline:
            time.sleep(_CHILD_POLL_S)
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # -- the background loop ----------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(timeout=_CHECK_INTERVAL_S)
            self._wake.clear()
            if self._closing.is_set():
                return
            if not (self._requested or self._writes_seen):
                continue
            self._requested = self._writes_seen = False
            self._last_check = time.monotonic()
            try:
                self.run()
            except Exception:  # the loop must survive anything; the failure is in last_run
                log.exception("background index build failed")

    # -- one build --------------------------------------------------------------------------

    def _build(self, progress: Callable[[float], None] | None) -> IndexRun:
        started, clock = time.time(), time.monotonic()
        building = sibling(self.store.path, "building")
        points = self.store.index_counts()[0]
        try:
            self.store.begin_journal(lambda: self._copy(building))
            self._run_child(building, progress)
            self.store.swap_in(building, self._replace)
            detail, ok = f"indexed {self.store.index_counts()[1]} of {points} points", True
        except BuildStopped as exc:
            detail, ok = str(exc), False
        except Exception as exc:  # a failed build leaves the live shard as it was
            detail, ok = f"index build failed: {exc}", False
            log.warning("%s", detail)
        finally:
            self.store.end_journal()
            shutil.rmtree(building, ignore_errors=True)
        return IndexRun(started, time.monotonic() - clock, ok, points, detail)

    def _copy(self, building: Path) -> None:
        shutil.rmtree(building, ignore_errors=True)
        shutil.copytree(self.store.path, building)

    def _run_child(self, building: Path, progress: Callable[[float], None] | None) -> None:
        command = [
            sys.executable,
            "-m",
            "search.store.optimize_child",
            str(building),
            "--dim",
            str(self.store.dim),
            "--index",
            self.index.model_dump_json(),
            "--parent",
            str(os.getpid()),
        ]
        started = time.monotonic()
        self._child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while self._child.poll() is None:
                if self._closing.is_set():
                    raise BuildStopped("index build abandoned: the store is closing")
                if progress is not None:
                    progress(time.monotonic() - started)
                time.sleep(_CHILD_POLL_S)
            if self._child.returncode != 0 or not (building / COMPLETE_MARKER).exists():
                stderr = (self._child.stderr.read() if self._child.stderr else b"").decode(errors="replace")
                raise RuntimeError(stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {self._child.returncode}")
        finally:
            self._stop_child()

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)
        if child.stderr:
            child.stderr.close()

    def _replace(self, live: qe.EdgeShard, building: Path, journal: list[qe.UpdateOperation]) -> qe.EdgeShard:
        """Swap ``building`` in for the live shard; called with writes and queries paused."""
        path = self.store.path
        previous, discard = sibling(path, "previous"), sibling(path, "discard")
        (building / COMPLETE_MARKER).unlink()
        live.flush()
        live.close()
        path.rename(previous)
        building.rename(path)
        try:
            shard = qe.EdgeShard.load(str(path), shard_config(self.store.dim, self.index))
            for operation in journal:
                shard.update(operation)
            shard.flush()
        except BaseException:
            recover_folder(path)  # back to the previous folder, which holds every write
            raise
        previous.rename(discard)
        shutil.rmtree(discard, ignore_errors=True)
        return shard
