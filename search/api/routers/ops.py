"""Operations: liveness, readiness, what is indexed, Prometheus metrics.

These must answer when the search threads are all busy (slow image URLs, a long ingest), so
none of them runs in the sync handlers' shared threadpool: they are async, and the two that do
blocking work (store counts, catalog queries, probes) run it on a small limiter of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from search import __version__
from search.api.deps import State
from search.api.metrics import CONTENT_TYPE
from search.api.schemas import CheckOut, ErrorOut, HealthOut, IndexOut, ReadyOut, StatsOut
from search.engine import status
from search.store import IndexState

router = APIRouter(tags=["operations"])

OPS_THREADS = 4  # concurrent /readyz and /stats computations; more wait for each other, not for searches
T = TypeVar("T")


async def _off_loop(request: Request, work: Callable[[], T]) -> T:
    """Run blocking ``work`` in a thread counted against the ops limiter, not the shared one."""
    limiter = getattr(request.app.state, "ops_limiter", None)
    if limiter is None:  # made here, inside the event loop it belongs to
        limiter = request.app.state.ops_limiter = anyio.CapacityLimiter(OPS_THREADS)
    return await anyio.to_thread.run_sync(work, limiter=limiter)


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
async def healthz() -> HealthOut:
    return HealthOut(version=__version__)


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "a part is not working; see checks"}},
    summary="Readiness: model loaded, store and catalog answer",
)
async def readyz(state: State, request: Request) -> JSONResponse:
    checks = await _off_loop(request, lambda: status.readiness(state.services))
    body = ReadyOut(ready=all(c.ok for c in checks), checks=[CheckOut(**c.__dict__) for c in checks])
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/stats", response_model=StatsOut, responses={503: {"model": ErrorOut}}, summary="What is indexed")
async def stats(state: State, request: Request) -> StatsOut:
    s = await _off_loop(request, lambda: status.stats(state.services))
    return StatsOut(
        model=s.model,
        dim=s.dim,
        store_backend=s.backend,
        collection=s.collection,
        points=s.points,
        total_points=s.total_points,
        catalog=s.catalog,
        running_jobs=s.running_jobs,
        interrupted_jobs=s.interrupted_jobs,
        index=None if s.index is None else _index_out(s.index),
    )


def _index_out(index: IndexState) -> IndexOut:
    run = index.last_run
    return IndexOut(
        points=index.points,
        indexed=index.indexed,
        unindexed=index.unindexed,
        optimizing=index.optimizing,
        auto=index.auto,
        last_run_seconds=None if run is None else round(run.seconds, 1),
        last_run_ok=None if run is None else run.ok,
        last_run_detail=None if run is None else run.detail,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}}, summary="Prometheus metrics")
async def metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)
