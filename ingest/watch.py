"""Keep folders indexed as files come and go: filesystem events, debounced into rescans.

A change under a watched folder (a file created, written, moved or deleted, reported by
``watchdog``) marks the folder dirty; once it has been quiet for ``watch_debounce`` seconds the
folder is rescanned as an ordinary ingest job. The rescan is what does the work, so a watched
folder behaves exactly like ``mmsearch ingest`` run again: unchanged files are skipped by size
and mtime, new and changed ones are indexed, and the files that vanished are removed through
``search.deletion`` (points, thumbnails, then the catalog row). Excludes, ``.mmsearchignore``
files and hidden/system folders apply as they do to any scan. A full rescan every
``watch_rescan_interval`` seconds catches whatever events were missed.

Folders go away: a disk is unmounted, a share drops, a folder is deleted and made again. The
watcher checks each folder's identity (device, inode) on every tick: a missing folder is
reported (``missing``) and waited for, never an error; one that comes back, or is replaced by
another folder of that name, is watched anew and rescanned. A folder that turns up empty while
the catalog holds live items under it looks like an unmounted mount point, so it is not
rescanned (that would delete the whole index of it) and is reported as ``empty`` until files
appear again.

Which folders are watched is kept in ``<data_dir>/watched.json`` (``WatchRegistry``), so
``mmsearch serve`` picks up again what was registered through the API.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from watchdog.events import DirModifiedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from ingest.sources.folder import IGNORE_FILE, kind_for_extension
from search.catalog import Catalog
from search.catalog.catalog import source_id
from search.errors import ConfigError
from search.services import IngestRequest, WatchedFolder
from search.settings import Settings

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25  # how often folders are checked and debounced changes acted on
REGISTRY_FILE = "watched.json"

StartRescan = Callable[[IngestRequest], str]  # starts (or runs) an ingest job, returns its id
JobDone = Callable[[str], bool]


class WatchRegistry:
    """The watched folders of a data dir, in a small JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[WatchedFolder]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the watched folders in {self.path}: {exc}") from exc
        return [
            WatchedFolder(str(e["id"]), str(e["path"]), tuple(e.get("include", ())), tuple(e.get("exclude", ())))
            for e in document.get("folders", [])
        ]

    def save(self, folders: Iterable[WatchedFolder]) -> None:
        document = {
            "folders": [{"id": f.id, "path": f.path, "include": list(f.include), "exclude": list(f.exclude)} for f in folders]
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(document, indent=2), encoding="utf-8")
        os.replace(scratch, self.path)


def watched_folder(path: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> WatchedFolder:
    """A folder to watch, named by its absolute path; its id is the catalog's id of that folder."""
    absolute = str(Path(path).expanduser().absolute())
    return WatchedFolder(source_id("folder", absolute), absolute, tuple(include), tuple(exclude))


@dataclass
class _Source:
    folder: WatchedFolder
    watch: ObservedWatch | None = None
    identity: tuple[int, int] | None = None  # of the folder being watched now
    dirty: bool = True  # a first scan on start catches what changed while nobody watched
    last_event: float = 0.0
    last_scan: float = 0.0
    job: str | None = None
    state: str = "starting"
    detail: str = ""


class _Changes(FileSystemEventHandler):
    """watchdog's callback: note that something relevant changed under a source."""

    def __init__(self, source: _Source, lock: threading.Lock) -> None:
        self.source = source
        self.lock = lock

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirModifiedEvent) or event.event_type in ("opened", "closed_no_write"):
            return  # a folder's mtime follows its files' events; reads change nothing
        if not (event.is_directory or _relevant(str(event.src_path)) or _relevant(str(getattr(event, "dest_path", "")))):
            return  # thumbnails, editor swap files, notes: not media, no rescan
        with self.lock:
            self.source.dirty = True
            self.source.last_event = time.monotonic()


def _relevant(path: str) -> bool:
    return bool(path) and (kind_for_extension(Path(path)) is not None or Path(path).name == IGNORE_FILE)


class FolderWatcher:
    """Watches folders and starts a rescan of each after its changes settle (``WatchControl``).

    ``start_rescan`` runs or queues an ingest job (the CLI runs it in the foreground; the API's
    background launcher queues it); a folder is not rescanned again while its job is unfinished.
    """

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        start_rescan: StartRescan,
        *,
        registry: WatchRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.start_rescan = start_rescan
        self.registry = registry
        self._lock = threading.Lock()
        self._sources: dict[str, _Source] = {}
        self._observer = Observer(timeout=TICK_SECONDS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for folder in registry.load() if registry is not None else ():
            self._sources[folder.id] = _Source(folder)

    # -- WatchControl -----------------------------------------------------------------------------

    def watched(self) -> list[WatchedFolder]:
        with self._lock:
            return [replace(s.folder, state=s.state, detail=s.detail, last_job=s.job) for s in self._sources.values()]

    def watch(self, path: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> WatchedFolder:
        folder = watched_folder(path, include, exclude)
        with self._lock:
            old = self._sources.get(folder.id)
            if old is not None:
                self._disarm(old)
            self._sources[folder.id] = _Source(folder)
            self._save()
        return folder

    def unwatch(self, source_id: str) -> bool:
        with self._lock:
            source = self._sources.pop(source_id, None)
            if source is None:
                return False
            self._disarm(source)
            self._save()
        return True

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> FolderWatcher:
        """Watch in a background thread (``mmsearch serve``); ``close`` stops it."""
        self._observer.start()
        self._thread = threading.Thread(target=self._loop, name="folder-watcher", daemon=True)
        self._thread.start()
        return self

    def run(self, stop: threading.Event) -> None:
        """Watch in this thread until ``stop`` is set (``mmsearch watch``)."""
        self._observer.start()
        try:
            while not stop.is_set() and not self._stop.is_set():
                self.tick()
                stop.wait(TICK_SECONDS)
        finally:
            self._shutdown_observer()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            self._shutdown_observer()

    def _loop(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception:  # one bad tick (a catalog hiccup) must not end the watching
                log.exception("folder watcher tick failed")

    def _shutdown_observer(self) -> None:
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(timeout=10.0)

    def tick(self) -> None:
        """Check every folder once: re-arm what came back, rescan what settled or is due."""
        with self._lock:
            sources = list(self._sources.values())
        now = time.monotonic()
        for source in sources:
            if self._check_presence(source) and self._due(source, now):
                self._rescan(source, now)

    def _check_presence(self, source: _Source) -> bool:
        """True when the folder is there and watched; a missing one is reported and waited for."""
        identity = _identity(source.folder.path)
        with self._lock:
            if identity is None:
                if source.state != "missing":
                    self._disarm(source)
                    source.state, source.detail = "missing", "folder is missing (unmounted or removed): waiting for it to return"
                    log.warning("watched folder %s is missing; waiting for it to return", source.folder.path)
                return False
            if identity != source.identity:  # new, returned, remounted or replaced
                self._disarm(source)
                try:
                    handler = _Changes(source, self._lock)
                    source.watch = self._observer.schedule(handler, source.folder.path, recursive=True)
                except OSError as exc:
                    source.state, source.detail = "missing", f"cannot watch the folder: {exc.strerror or exc}"
                    return False
                source.identity, source.dirty = identity, True
                source.state, source.detail = "watching", ""
            return True

    def _due(self, source: _Source, now: float) -> bool:
        with self._lock:
            if source.job is not None and source.state == "scanning":
                if not self._job_finished(source.job):
                    return False  # one rescan at a time per folder; changes meanwhile wait for the next
                self._finished(source)
            settled = source.dirty and now - source.last_event >= self.settings.ingest.watch_debounce
            interval = self.settings.ingest.watch_rescan_interval
            return settled or (interval > 0 and now - source.last_scan >= interval)

    def _rescan(self, source: _Source, now: float) -> None:
        folder = source.folder
        if self._looks_unmounted(folder):
            with self._lock:
                source.dirty, source.last_scan = False, now
                source.state = "empty"
                source.detail = "folder is empty but its items are indexed: looks unmounted, nothing removed"
            return
        with self._lock:
            source.dirty, source.last_scan = False, now
            source.state = "scanning"
        request = IngestRequest(paths=(folder.path,), include=folder.include, exclude=folder.exclude)
        try:
            job_id = self.start_rescan(request)
        except Exception as exc:  # a rescan that cannot start is retried at the next change or interval
            log.exception("rescan of watched folder %s failed to start", folder.path)
            with self._lock:
                source.state, source.detail = "watching", f"rescan failed to start: {exc}"
            return
        with self._lock:
            source.job = job_id
            if source.state == "scanning" and self._job_finished(job_id):
                self._finished(source)

    def _job_finished(self, job_id: str) -> bool:
        status = self.catalog.get_job(job_id).status
        return status not in ("queued", "running")

    def _finished(self, source: _Source) -> None:
        assert source.job is not None
        job = self.catalog.get_job(source.job)
        source.state = "watching"
        source.detail = f"last rescan {job.status}: {job.indexed} indexed, {job.skipped} unchanged, {job.failed} failed"

    def _looks_unmounted(self, folder: WatchedFolder) -> bool:
        try:
            with os.scandir(folder.path) as entries:
                if next(entries, None) is not None:
                    return False
        except OSError:
            return False  # the scan reports why it cannot list the folder
        return any(r.status != "deleted" for r in self.catalog.media_for_source(folder.id))

    def _disarm(self, source: _Source) -> None:
        if source.watch is not None:
            try:
                self._observer.unschedule(source.watch)
            except (KeyError, OSError):
                pass  # its emitter already stopped: the folder went away under it
            source.watch = None
        source.identity = None

    def _save(self) -> None:
        if self.registry is not None:
            self.registry.save(s.folder for s in self._sources.values())


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def registry_for(settings: Settings) -> WatchRegistry:
    return WatchRegistry(settings.data_dir / REGISTRY_FILE)
