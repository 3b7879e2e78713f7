"""Shared dependencies: the app's state (built once in ``create_app``), auth, common parameters.

Auth has two levels, both with the one key ``api.api_key`` sent as ``X-API-Key``: writes
(``require_api_key``) need it whenever a key is configured; reads (``require_read_access``,
applied to every endpoint) need it too when ``api.protect_reads`` is on, except the probes in
``OPEN_PATHS`` that orchestrators call without credentials. The media endpoints a browser loads
by itself (``links.SIGNED_ROUTES``: thumbnails, files, clips) also accept, instead of the
header, the signature that the API's own responses put in those URLs (``search.api.signing``).
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
from search.api.links import SIGNED_ROUTES, Links
from search.api.metrics import Metrics
from search.api.schemas import FiltersIn, Kind, PoolingName, QueryOptions, TargetName
from search.api.signing import EXP, SIG, SignatureError, UrlSigner
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
    signer: UrlSigner | None = None  # signs media URLs when reads are protected, else None


def url_signer(settings: Settings) -> UrlSigner | None:
    """The media URL signer when reads are protected (so the browser needs signed URLs), else None."""
    key = settings.api.api_key
    if not settings.api.protect_reads or key is None:
        return None
    return UrlSigner(key.get_secret_value(), settings.api.media_url_ttl)


async def get_state(request: Request) -> AppState:
    return request.app.state.mm


State = Annotated[AppState, Depends(get_state)]


async def base_url(request: Request) -> str:
    """Prefix for links in responses, so they work behind a proxy that mounts the API on a path."""
    return str(request.scope.get("root_path", "")).rstrip("/")


BaseUrl = Annotated[str, Depends(base_url)]


async def media_links(state: State, base: BaseUrl) -> Links:
    """How this response's media URLs are built: under the mount path, signed when reads are private."""
    return Links(base, state.signer)


MediaLinks = Annotated[Links, Depends(media_links)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="required on write endpoints when configured, on reads too with protect_reads"
)
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # liveness and readiness probes answer anyone


async def require_api_key(state: State, key: Annotated[str | None, Security(_api_key_header)] = None) -> None:
    """401 without a key, 403 with a wrong one; open when no key is configured."""
    _check_key(state, key)


def _check_key(state: AppState, key: str | None, hint: str = "") -> None:
    expected = state.settings.api.api_key
    if expected is None:
        return
    if not key:
        raise HTTPException(401, f"This endpoint needs an API key in the X-API-Key header{hint}.")
    if not secrets.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise HTTPException(403, "The API key is not valid.")


async def require_read_access(
    request: Request, state: State, key: Annotated[str | None, Security(_api_key_header)] = None
) -> None:
    """Every endpoint's guard: the key is needed for reads too when ``api.protect_reads`` is on.

    On the media routes a browser loads by itself, a request without the header may instead
    carry a signature; a key sent alongside one is checked as a key (a wrong one is 403)."""
    if not state.settings.api.protect_reads:
        return
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if template in OPEN_PATHS:
        return
    if template in SIGNED_ROUTES and not key:
        if SIG in request.query_params or EXP in request.query_params:
            _check_signature(request, state.signer, template)
            return
        _check_key(state, key, hint=" (or the signed URL that search results and /media/{id} give)")
    _check_key(state, key)


async def signed_url_query(
    exp: Annotated[str | None, Query(max_length=20, description="signed URL: expiry, unix seconds")] = None,
    sig: Annotated[str | None, Query(max_length=100, description="signed URL: signature over the path, span and exp")] = None,
) -> None:
    """Declares ``exp`` and ``sig`` on the media routes, for the OpenAPI document; the check
    itself is in ``require_read_access``, which runs first."""


SIGNED: Any = Depends(signed_url_query)


def _check_signature(request: Request, signer: UrlSigner | None, template: str) -> None:
    """A signed media URL opens exactly the path, span and time it was signed for; else 401."""
    query = request.query_params
    others = [(name, value) for name, value in query.multi_items() if name not in (EXP, SIG)]
    try:
        if signer is None or len(query.getlist(EXP)) != 1 or len(query.getlist(SIG)) != 1:
            raise SignatureError("The URL's signature is not valid for this path.")
        signer.verify(template.format(**request.path_params), others, query.get(EXP), query.get(SIG))
    except SignatureError as exc:
        raise HTTPException(401, str(exc)) from None


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
