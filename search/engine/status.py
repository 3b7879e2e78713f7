"""Operational views: what is indexed (stats) and whether each part works (readiness)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from search.broker import broker_status
from search.errors import MMSearchError
from search.payload import KIND, KINDS
from search.services import Services
from search.store.base import Filter, IndexState, Match

POINT_KINDS = KINDS  # every kind of point the payload contract defines


@dataclass(frozen=True)
class Stats:
    """Counts per point kind in the store and per kind/status in the catalog."""

    model: str
    dim: int
    backend: str
    collection: str
    points: dict[str, int]
    total_points: int
    catalog: dict[str, dict[str, int]] = field(default_factory=dict)
    running_jobs: int = 0  # with a live runner; jobs whose runner is gone are interrupted_jobs
    interrupted_jobs: int = 0  # not yet resumed by a later run of the same request
    index: IndexState | None = None  # points in the HNSW graph, and whether a build runs


@dataclass(frozen=True)
class Check:
    """One readiness probe: did it work, and if not, the reason a human can act on."""

    name: str
    ok: bool
    detail: str
    ms: float


def stats(services: Services) -> Stats:
    """What is indexed now; raises StoreUnavailable/ModelUnavailable when parts are down.

    Jobs whose runner is gone (a killed process, no heartbeat for ``ingest.heartbeat_timeout``)
    are marked interrupted first, so a crashed ingest is never counted as running.
    """
    store, embedder = services.store, services.embedder
    points = {kind: store.count(Filter((Match(KIND, (kind,)),))) for kind in POINT_KINDS}
    catalog = services.catalog
    catalog.interrupt_orphaned_jobs(services.settings.ingest.heartbeat_timeout)
    interrupted = catalog.list_jobs(limit=1000, status="interrupted")
    return Stats(
        model=embedder.model_name,
        dim=embedder.dim,
        backend=store.backend,
        collection=store.collection,
        points=points,
        total_points=store.count(),
        catalog=catalog.counts_by_kind_and_status(),
        running_jobs=len(catalog.list_jobs(limit=1000, status="running")),
        interrupted_jobs=sum(1 for job in interrupted if not job.superseded),
        index=store.index_state(),
    )


def readiness(services: Services) -> list[Check]:
    """Probe the model, the store, the catalog and the broker; never raises."""
    return [
        _probe("model", lambda: f"{services.embedder.model_name} ({services.embedder.dim} dims)"),
        _probe("store", lambda: f"{services.store.backend}: {services.store.collection}, {services.store.count()} points"),
        _probe("catalog", lambda: _ping(services)),
        _probe("broker", lambda: broker_status(services.settings)),
    ]


def _ping(services: Services) -> str:
    catalog = services.catalog
    if not catalog.ping():
        raise MMSearchError(f"catalog database {catalog.url} does not answer")
    return catalog.url


def _probe(name: str, action: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail, ok = action(), True
    except MMSearchError as exc:
        detail, ok = str(exc), False
    except Exception as exc:  # a probe reports every failure instead of failing the endpoint
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Check(name, ok, detail, round((time.perf_counter() - started) * 1000, 2))
