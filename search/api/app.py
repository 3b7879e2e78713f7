"""``create_app``: assemble the API. The lifespan warms the model, store and catalog up once,
so the first search is not the one that pays for loading them."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from search import __version__
from search.api import errors
from search.api.deps import AppState, require_read_access, url_signer
from search.api.limits import BodyLimitMiddleware, UrlFetchGate, body_limit
from search.api.metrics import Metrics, MetricsMiddleware
from search.api.routers import clips, duplicates, ingest, media, ops, saliency, sources
from search.api.routers import search as search_router
from search.errors import FetchTimeout, MMSearchError, Overloaded
from search.services import IngestLauncher, Services, WatchControl
from search.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Semantic search over photos, video moments and products (CLIP embeddings in Qdrant).

* **Search** by text, an image (upload, base64 or URL), the id of an indexed item, weighted
  arithmetic of those (`"beach" + id:… - 0.5*"people"`), or positive/negative examples.
  Composition: each term's embedding is normalised, weighted, summed, and the sum renormalised;
  `explain` splits each score into the terms' contributions.
* **Targets**: `images` (points), `moments` (stretches of videos, top-k or mean pooling),
  `videos` (whole videos).
* **Filters** run inside the vector store: kind, source, folder, date taken, size, category,
  brand, price, any manifest field.
* **Keys**: writes need `X-API-Key` when a key is set; with protected reads, every endpoint but
  `/healthz` and `/readyz` does. The media URLs in answers (thumbnails, files, clips) are then
  signed (`exp`, `sig`) for that one item, endpoint and span, so a browser loads them without
  the key until they expire (`api.media_url_ttl`).
* Errors are JSON `{"detail", "error", "position"?}` with 4xx statuses for anything a client sent.
  An image URL that does not arrive within the query deadline is 422 `fetch_timeout`; more
  searches with image URLs at once than the server admits get 429 with `Retry-After`.
"""


def create_app(
    settings: Settings,
    services: Services | None = None,
    launcher: IngestLauncher | None = None,
    watcher: WatchControl | None = None,
) -> FastAPI:
    """The API over ``services`` (built here when not given; then also closed at shutdown).

    ``launcher`` starts ingest jobs (embedded mode: in this process; distributed: Celery);
    without one, ``POST /ingest`` answers 503. ``watcher`` keeps the folders registered through
    ``/sources/watch`` indexed; without one, watching answers 503.
    """
    state = AppState(
        settings=settings,
        services=services or Services(settings),
        launcher=launcher,
        metrics=Metrics(),
        owns_services=services is None,
        watcher=watcher,
        signer=url_signer(settings),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.startup_error = await run_in_threadpool(_warm_up, state.services)
        try:
            yield
        finally:
            if state.owns_services:
                await run_in_threadpool(state.services.close)

    app = FastAPI(
        title="mmsearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(require_read_access)],
        openapi_tags=[
            {"name": "search", "description": "text, image, arithmetic and example queries"},
            {"name": "media", "description": "metadata, thumbnails and original files"},
            {"name": "ingest", "description": "start ingestion and watch jobs"},
            {"name": "sources", "description": "sources and watched folders"},
            {"name": "duplicates", "description": "exact and near-duplicate groups across the archive"},
            {"name": "operations", "description": "health, readiness, stats and metrics"},
        ],
    )
    app.state.mm = state
    app.state.url_fetch_gate = UrlFetchGate(settings)
    errors.install(app)
    app.add_exception_handler(FetchTimeout, _fetch_timeout)  # type: ignore[arg-type]
    app.add_exception_handler(Overloaded, _overloaded)  # type: ignore[arg-type]
    routers = [search_router.router, saliency.router, media.router, clips.router, ingest.router, sources.router]
    routers += [duplicates.router, ops.router]
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, limit=body_limit(settings.api.max_upload_bytes))
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


async def _fetch_timeout(request: Request, exc: FetchTimeout) -> JSONResponse:
    """422, not 504: the server is healthy and the client chose a source too slow to use within
    the documented limit (like 413 for one too large); a 5xx would invite clients and proxies to
    retry the same slow URL, which is what a slow-drip attack wants."""
    _count(request, "fetch_timeout")
    return JSONResponse(errors.error_body(str(exc), "fetch_timeout"), status_code=422)


async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
    _count(request, "too_many_requests")
    headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return JSONResponse(errors.error_body(str(exc), "too_many_requests"), status_code=429, headers=headers)


def _count(request: Request, name: str) -> None:
    request.app.state.mm.metrics.query_errors.labels(name).inc()


def _warm_up(services: Services) -> str | None:
    """Load the model and open the store and catalog; a failure is reported by /readyz, and
    each request that needs the broken part answers 503 with the reason."""
    try:
        _ = services.embedder, services.store, services.catalog  # opened here, once
    except MMSearchError as exc:
        log.error("mmsearch API starting without a working %s", exc)
        return str(exc)
    return None
