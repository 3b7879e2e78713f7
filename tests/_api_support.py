"""Shared fixtures data for the API tests: one procedural corpus, indexed once per store backend.

Generating the corpus and running the real in-process ingest pipeline is the expensive part
of the API tests, so it happens once per test process and is shared by every ``test_api*``
module (a module-scoped pytest fixture would redo it per module). The embedded store locks its
folder to one ``Services``, so the ``Services`` object itself is shared too, and closed at exit.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from search.services import IngestRequest, Services
from search.settings import Settings, load_settings

SEED = 7
N_IMAGES, N_VIDEOS, N_PRODUCTS = 40, 2, 12
BACKENDS = ("edge", "local")  # Qdrant Edge (embedded) and qdrant-client local mode (the server's double)

_lock = threading.RLock()
_root: Path | None = None
_corpus: Corpus | None = None
_indexed: dict[str, Indexed] = {}


@dataclass(frozen=True)
class Corpus:
    """The generated files and their truth.json, read as plain JSON."""

    folder: Path
    truth: dict[str, Any]

    @property
    def images(self) -> Path:
        return self.folder / "images"

    @property
    def videos(self) -> Path:
        return self.folder / "videos"

    @property
    def products_csv(self) -> Path:
        return self.folder / "products" / "products.csv"

    @cached_property
    def colours(self) -> dict[str, set[str]]:
        """Absolute image path -> colours of the objects drawn in it."""
        return {str(self.folder / i["path"]): {o["colour"] for o in i["scene"]["objects"]} for i in self.truth["images"]}

    def video(self, name: str) -> dict[str, Any]:
        return next(v for v in self.truth["videos"] if Path(v["path"]).name == name)


@dataclass
class Indexed:
    """A backend's settings and open services over the ingested corpus."""

    backend: str
    settings: Settings
    services: Services
    job: Any


def scratch() -> Path:
    """A temporary folder for this test process, removed at exit."""
    global _root
    with _lock:
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix="mmsearch-api-tests-"))
            atexit.register(shutil.rmtree, _root, True)
        return _root


def corpus() -> Corpus:
    """The procedural world (images, videos, products), generated once."""
    global _corpus
    from synthetic import generate_corpus

    root = scratch()
    with _lock:
        if _corpus is None:
            folder = root / "corpus"
            generate_corpus(folder, seed=SEED, n_images=N_IMAGES, n_videos=N_VIDEOS, n_products=N_PRODUCTS)
            _corpus = Corpus(folder, json.loads((folder / "truth.json").read_text()))
        return _corpus


def settings_for(backend: str, data_dir: Path, **overrides: Any) -> Settings:
    """Test settings: the bundled model, one torch thread, the chosen store backend."""
    store_url = f"local://{data_dir / 'qdrant-local'}" if backend == "local" else None
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "model": "mmsearch-synthetic",
        "store_url": store_url,
        "embedder": {"threads": 1},
    }
    values.update(overrides)
    return load_settings(**values)


def indexed(backend: str) -> Indexed:
    """The corpus ingested through the real pipeline into ``backend``, once per process."""
    from ingest.jobs import run_ingest

    world = corpus()
    with _lock:
        if backend not in _indexed:
            # 127.0.0.1 is allowed so URL queries can be served by a local test server; the corpus, so the API may ingest it
            ingest = {"allow_hosts": ["127.0.0.1"], "allowed_roots": [str(world.folder)]}
            settings = settings_for(backend, scratch() / f"data-{backend}", ingest=ingest)
            services = Services(settings)
            request = IngestRequest(paths=(str(world.images), str(world.videos)), manifests=(str(world.products_csv),))
            job = run_ingest(services, request)
            atexit.register(services.close)
            _indexed[backend] = Indexed(backend, settings, services, job)
        return _indexed[backend]


def close_all() -> None:
    """Close every shared ``Services`` (tests that need a store folder for another process)."""
    with _lock:
        for item in _indexed.values():
            item.services.close()
        _indexed.clear()
