"""Request body size limit, enforced before a large upload is buffered.

A declared ``Content-Length`` over the limit is refused at once; a chunked body is counted as
it streams in and cut off with 413 the moment it passes the limit. The limit leaves room for
base64 (4/3 of the bytes) plus the rest of a JSON body, so the per-image limit
(``api.max_upload_bytes``) is then checked on the decoded bytes themselves.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

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
