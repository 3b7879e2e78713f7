"""Core errors to HTTP answers. Every refusal has a status that says whose fault it is and a
``detail`` a person can act on; nothing a client sends should produce a 500.

| error                      | status | why                                             |
|----------------------------|--------|-------------------------------------------------|
| BadFilter                  | 422    | the filter is well-formed JSON but means nothing |
| BadQuery                   | 400    | with ``position`` for syntax errors              |
| NotFound                   | 404    |                                                 |
| MediaChanged               | 409    | the file on disk changed since it was indexed    |
| TooLarge                   | 413    | upload or image pixels over the limit            |
| UnsupportedImage           | 415    | the bytes are not an image at all                |
| MediaError                 | 400    | a broken image                                   |
| BlockedAddress             | 400    | a query URL pointing into a private network     |
| FetchError                 | 502/400| transient (the remote server failed) or not      |
| ModelUnavailable, StoreUnavailable, ConfigError | 503 | the service is not able to answer now |
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from search.engine.terms import UnsupportedImage
from search.errors import (
    BadQuery,
    BlockedAddress,
    ConfigError,
    FetchError,
    MediaChanged,
    MediaError,
    MMSearchError,
    ModelUnavailable,
    NotFound,
    StoreUnavailable,
    TooLarge,
)
from search.filters import BadFilter

log = logging.getLogger(__name__)

# (error type, status, machine-readable kind); the first match wins, so subclasses come first
_TABLE: tuple[tuple[type[MMSearchError], int, str], ...] = (
    (BadFilter, 422, "bad_filter"),
    (BadQuery, 400, "bad_query"),
    (NotFound, 404, "not_found"),
    (MediaChanged, 409, "changed"),
    (TooLarge, 413, "too_large"),
    (UnsupportedImage, 415, "unsupported_media"),
    (MediaError, 400, "bad_image"),
    (BlockedAddress, 400, "blocked_address"),
    (ModelUnavailable, 503, "model_unavailable"),
    (StoreUnavailable, 503, "store_unavailable"),
    (ConfigError, 503, "config_error"),
)
_HTTP_KINDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    503: "unavailable",
}


def status_for(exc: MMSearchError) -> tuple[int, str]:
    """The HTTP status and error kind of a core error (FetchError depends on ``transient``)."""
    for kind, status, name in _TABLE:
        if isinstance(exc, kind):
            return status, name
    if isinstance(exc, FetchError):
        return (502, "fetch_failed") if exc.transient else (400, "fetch_failed")
    return 500, "internal"


def error_body(detail: str, error: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "error": error, **{k: v for k, v in extra.items() if v is not None}}


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(MMSearchError, _core_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not the client's fault: logged with its traceback, answered in the usual shape."""
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    _count(request, "internal")
    return JSONResponse(error_body("Internal error; the server log has the details.", "internal"), status_code=500)


async def _core_error(request: Request, exc: MMSearchError) -> JSONResponse:
    status, name = status_for(exc)
    if status >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    _count(request, name)
    position = exc.position if isinstance(exc, BadQuery) else None
    return JSONResponse(error_body(str(exc), name, position=position), status_code=status)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with a one-line ``detail`` (first problem, field path first) plus every problem."""
    problems = jsonable_encoder(exc.errors(), custom_encoder={BaseException: str})
    for problem in problems:
        problem.pop("input", None)  # never echo uploads or long inputs back
        problem.pop("url", None)
    first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body",))
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    detail = f"{where}: {message}" if where else message
    _count(request, "validation")
    return JSONResponse(error_body(detail, "validation", errors=problems), status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    name = _HTTP_KINDS.get(exc.status_code, "http_error")
    _count(request, name)
    return JSONResponse(error_body(str(exc.detail), name), status_code=exc.status_code, headers=exc.headers)


def _count(request: Request, name: str) -> None:
    state = getattr(request.app.state, "mm", None)
    if state is not None:
        state.metrics.query_errors.labels(name).inc()
