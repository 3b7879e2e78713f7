"""Fixtures several test modules share; a module that defines its own of the same name keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from search.embedder import Embedder, load_embedder
from search.services import Services
from tests._ingest_support import SharedModelServices, base_settings


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """The bundled model, loaded once per module (a load costs seconds)."""
    return load_embedder(base_settings(tmp_path_factory.mktemp("model")))


@pytest.fixture
def services(tmp_path: Path, embedder: Embedder) -> Iterator[Services]:
    """Embedded services in a fresh data dir, over the module's shared model."""
    svc = SharedModelServices(base_settings(tmp_path / "data"), embedder)
    yield svc
    svc.close()
