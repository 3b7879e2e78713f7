"""The long-lived things a process needs, opened once and shared: embedder, store, catalog.

The API's lifespan, the CLI's ingest run and a Celery worker process each hold one
``Services``. In embedded mode the Qdrant Edge folder admits one process, so whoever holds
the ``Services`` is the store's owner and runs ingestion in-process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from search.settings import Settings

if TYPE_CHECKING:
    from search.catalog import Catalog
    from search.embedder import Embedder
    from search.store import VectorStore


class Services:
    """Lazily opened embedder, store and catalog; each built once, on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._embedder: Embedder | None = None
        self._store: VectorStore | None = None
        self._catalog: Catalog | None = None

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from search.embedder import load_embedder

                self._embedder = load_embedder(self.settings)
            return self._embedder

    @property
    def store(self) -> VectorStore:
        with self._lock:
            if self._store is None:
                from search.store import open_store

                embedder = self.embedder
                self._store = open_store(self.settings, dim=embedder.dim, model=embedder.model_name)
            return self._store

    @property
    def catalog(self) -> Catalog:
        with self._lock:
            if self._catalog is None:
                from search.catalog import Catalog

                self._catalog = Catalog.open(self.settings.resolved_catalog_url)
            return self._catalog

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._catalog is not None:
                self._catalog.close()
                self._catalog = None


@dataclass(frozen=True)
class IngestRequest:
    """What a user asked to index; every field may hold several entries."""

    paths: Sequence[str] = ()  # local files or folders, or single http(s) URLs
    url_lists: Sequence[str] = ()  # text files with one URL per line
    crawl: Sequence[str] = ()  # start pages of a web crawl
    manifests: Sequence[str] = ()  # CSV or JSONL product manifests (paths or URLs)
    include: Sequence[str] = ()  # glob patterns a local file must match (any of)
    exclude: Sequence[str] = ()  # glob patterns that drop a local file
    options: dict[str, Any] = field(default_factory=dict)  # per-job overrides (crawl depth, …)

    def is_empty(self) -> bool:
        return not (self.paths or self.url_lists or self.crawl or self.manifests)


class IngestLauncher(Protocol):
    """Starts an ingest job and returns its id at once; progress is read from the catalog.

    The API receives one from the composition root (``mmsearch.cli``), so ``search`` never
    imports ``ingest``.
    """

    def __call__(self, request: IngestRequest) -> str: ...


@dataclass(frozen=True)
class WatchedFolder:
    """A folder kept indexed by the watcher, and how it is doing (what ``GET /sources`` shows)."""

    id: str  # the catalog's source id of the folder
    path: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    state: str = "starting"  # starting | watching | scanning | missing | empty
    detail: str = ""  # why a folder is missing or empty, or what the last rescan did
    last_job: str | None = None


class WatchControl(Protocol):
    """Adds, lists and removes watched folders of the process that owns the store.

    The API receives one from the composition root, as it does an ``IngestLauncher``.
    """

    def watched(self) -> list[WatchedFolder]: ...

    def watch(self, path: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> WatchedFolder: ...

    def unwatch(self, source_id: str) -> bool: ...
