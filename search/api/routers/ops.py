"""Operations: liveness, readiness, what is indexed, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from search import __version__
from search.api.deps import State
from search.api.metrics import CONTENT_TYPE
from search.api.schemas import CheckOut, ErrorOut, HealthOut, ReadyOut, StatsOut
from search.engine import status

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
def healthz() -> HealthOut:
    return HealthOut(version=__version__)


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "a part is not working; see checks"}},
    summary="Readiness: model loaded, store and catalog answer",
)
def readyz(state: State) -> JSONResponse:
    checks = status.readiness(state.services)
    body = ReadyOut(ready=all(c.ok for c in checks), checks=[CheckOut(**c.__dict__) for c in checks])
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/stats", response_model=StatsOut, responses={503: {"model": ErrorOut}}, summary="What is indexed")
def stats(state: State) -> StatsOut:
    s = status.stats(state.services)
    return StatsOut(
        model=s.model,
        dim=s.dim,
        store_backend=s.backend,
        collection=s.collection,
        points=s.points,
        total_points=s.total_points,
        catalog=s.catalog,
        running_jobs=s.running_jobs,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}}, summary="Prometheus metrics")
def metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)
