"""Shared dependencies: the app's state (built once in ``create_app``), auth, common parameters.

Auth has two levels, both with the one key ``api.api_key`` sent as ``X-API-Key``: writes
(``require_api_key``) need it whenever a key is configured; reads (``require_read_access``,
applied to every endpoint) need it too when ``api.protect_reads`` is on, except the probes in
``OPEN_PATHS`` that orchestrators call without credentials.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError

from search import bounds
from search.api.metrics import Metrics
from search.api.schemas import FiltersIn, Kind, PoolingName, QueryOptions, TargetName
from search.services import IngestLauncher, Services, WatchControl
from search.settings import Settings


@dataclass
class AppState:
    """Everything a request handler may need, owned by one app (no module globals)."""

    settings: Settings
    services: Services
    launcher: IngestLauncher | None
    metrics: Metrics
    owns_services: bool  # closed at shutdown only when the app created them
    startup_error: str | None = None
    watcher: WatchControl | None = None  # watched folders (mmsearch serve in embedded mode), else None


async def get_state(request: Request) -> AppState:
    return request.app.state.mm


State = Annotated[AppState, Depends(get_state)]


async def base_url(request: Request) -> str:
    """Prefix for links in responses, so they work behind a proxy that mounts the API on a path."""
    return str(request.scope.get("root_path", "")).rstrip("/")


BaseUrl = Annotated[str, Depends(base_url)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="required on write endpoints when configured, on reads too with protect_reads"
)
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # liveness and readiness probes answer anyone


async def require_api_key(state: State, key: Annotated[str | None, Security(_api_key_header)] = None) -> None:
    """401 without a key, 403 with a wrong one; open when no key is configured."""
    expected = state.settings.api.api_key
    if expected is None:
        return
    if not key:
        raise HTTPException(401, "This endpoint needs an API key in the X-API-Key header.")
    if not secrets.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise HTTPException(403, "The API key is not valid.")


async def require_read_access(
    request: Request, state: State, key: Annotated[str | None, Security(_api_key_header)] = None
) -> None:
    """Every endpoint's guard: the key is needed for reads too when ``api.protect_reads`` is on."""
    if not state.settings.api.protect_reads:
        return
    route = request.scope.get("route")
    if getattr(route, "path", None) in OPEN_PATHS:
        return
    await require_api_key(state, key)


async def filter_query(
    kind: Annotated[list[Kind], Query(description="point kinds to keep")] = [],  # noqa: B006 (FastAPI copies defaults)
    source: Annotated[list[str], Query(max_length=200)] = [],  # noqa: B006
    path_prefix: Annotated[str | None, Query(max_length=4096, description="absolute folder")] = None,
    taken_after: Annotated[datetime | float | None, Query(description="ISO 8601 or unix seconds")] = None,
    taken_before: Annotated[datetime | float | None, Query()] = None,
    category: Annotated[list[str], Query(max_length=1000)] = [],  # noqa: B006
    brand: Annotated[list[str], Query(max_length=1000)] = [],  # noqa: B006
    min_price: float | None = None,
    max_price: float | None = None,
    near: Annotated[str | None, Query(max_length=100, description="taken near a place: lat,lon,km")] = None,
    area: Annotated[str | None, Query(max_length=100, description="taken inside a box: north,west,south,east")] = None,
) -> FiltersIn:
    """The common filters as query parameters (GET endpoints and multipart uploads)."""
    places = {"near": _numbers(near, ("lat", "lon", "km")), "area": _numbers(area, ("north", "west", "south", "east"))}
    return _validated(
        FiltersIn,
        "query",
        kinds=kind,
        sources=source,
        path_prefix=path_prefix,
        taken_after=taken_after,
        taken_before=taken_before,
        categories=category,
        brands=brand,
        min_price=min_price,
        max_price=max_price,
        **{key: value for key, value in places.items() if value is not None},
    )


def _numbers(text: str | None, names: tuple[str, ...]) -> dict[str, str] | str | None:
    """``"35.6,139.7,5"`` as ``{"lat": "35.6", ...}`` for the schema to check; anything else is
    passed on as it is, so the schema's error names the parameter."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    return dict(zip(names, parts)) if len(parts) == len(names) else text


async def options_query(
    filters: Annotated[FiltersIn, Depends(filter_query)],
    target: TargetName = "images",
    pooling: PoolingName = "topk",
    k: Annotated[int | None, Query(ge=1, le=bounds.MAX_K)] = None,
    per_video: Annotated[int, Query(ge=1, le=bounds.MAX_PER_VIDEO)] = bounds.DEFAULT_PER_VIDEO,
    limit: Annotated[int | None, Query(ge=1, le=bounds.MAX_LIMIT)] = None,
    offset: Annotated[int, Query(ge=0, le=bounds.MAX_OFFSET)] = 0,
    score_threshold: Annotated[float | None, Query(ge=-1, le=1)] = None,
    dedup: bool | None = None,
    dedup_threshold: Annotated[float | None, Query(gt=0, le=1)] = None,
    explain: bool = False,
    group: bool | None = None,
    sort: Annotated[str | None, Query(max_length=40)] = None,
    diverse: bool = False,
) -> QueryOptions:
    """Search options as query parameters, for endpoints whose body is an upload."""
    return _validated(
        QueryOptions,
        "query",
        target=target,
        pooling=pooling,
        k=k,
        per_video=per_video,
        limit=limit,
        offset=offset,
        score_threshold=score_threshold,
        dedup=dedup,
        dedup_threshold=dedup_threshold,
        explain=explain,
        group=group,
        sort=sort,
        diverse=diverse,
        filters=filters,
    )


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], where: str, **values: Any) -> M:
    """Build a schema in a dependency; its problems are the client's (422), not a 500."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": (where, *e.get("loc", ()))} for e in exc.errors(include_url=False)]) from exc
