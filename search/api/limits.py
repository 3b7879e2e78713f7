"""Limits that protect the server from its clients: request body size, and image-URL fetches.

Body size: a declared ``Content-Length`` over the limit is refused at once; a chunked body is
counted as it streams in and cut off with 413 the moment it passes the limit. The limit leaves
room for base64 (4/3 of the bytes) plus the rest of a JSON body, so the per-image limit
(``api.max_upload_bytes``) is then checked on the decoded bytes themselves.

Image URLs: a search that fetches one holds a worker thread until the remote answers, so such
searches are admitted only while fewer than ``api.max_url_fetches`` run (and fewer than
``api.max_url_fetches_per_client`` for the same client address); the others are answered 429
at once, and all the URLs of one search share one ``search.url_fetch_deadline``. Text, id and
upload searches never wait for these slots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from search.errors import Overloaded
from search.fetch import FetchSlots, fetch_deadline
from search.query import Term, UrlTerm
from search.settings import Settings

JSON_OVERHEAD = 1024 * 1024


def body_limit(max_upload_bytes: int) -> int:
    """The largest request body accepted: one base64 image plus a generous JSON envelope."""
    return max_upload_bytes * 4 // 3 + JSON_OVERHEAD


def too_large_message(limit: int) -> str:
    return f"The request body is larger than the {limit // 1024} KiB this server accepts."


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _reject(send, self.limit)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # an HTTPException passes through FastAPI's body parsing unchanged (others become 400)
                    raise HTTPException(413, too_large_message(self.limit))
            return message

        await self.app(scope, counted, send)


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Any, limit: int) -> None:
    body = json.dumps({"detail": too_large_message(limit), "error": "too_large"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class UrlFetchGate:
    """Admits searches that fetch image URLs, a bounded number at once, in all and per client."""

    def __init__(self, settings: Settings) -> None:
        self.slots = FetchSlots(settings.api.max_url_fetches, settings.api.max_url_fetches_per_client)
        self.deadline = settings.search.url_fetch_deadline

    @contextmanager
    def admit(self, client: str, terms: tuple[Term, ...]) -> Iterator[None]:
        """Run the block under the shared deadline if ``terms`` has URLs; Overloaded if no slot is free.

        Enter it in the thread that runs the search: the deadline belongs to that thread.
        """
        if not any(isinstance(term, UrlTerm) for term in terms):
            yield
            return
        if not self.slots.acquire(client):
            raise Overloaded(
                f"Too many searches with an image URL are running ({self.slots.total} at most, "
                f"{self.slots.per_key} per client); retry in a few seconds, or upload the image instead.",
                retry_after=math.ceil(self.deadline),
            )
        try:
            with fetch_deadline(self.deadline):
                yield
        finally:
            self.slots.release(client)


async def url_admission(request: Request) -> Callable[[tuple[Term, ...]], AbstractContextManager[None]]:
    """``admit(terms)`` for this request's client (its address: behind a proxy, the proxy's)."""
    gate: UrlFetchGate = request.app.state.url_fetch_gate
    return partial(gate.admit, request.client.host if request.client else "unknown")


UrlAdmission = Annotated[Callable[[tuple[Term, ...]], AbstractContextManager[None]], Depends(url_admission)]
