"""Serving a file with HTTP range requests, so a browser can seek in a video.

One ``bytes=`` range gets 206 with ``Content-Range``; a range that cannot be satisfied or is
malformed gets 416 with ``Content-Range: bytes */SIZE`` (what the client needs to retry);
several ranges, or units other than bytes, are answered with the whole file (RFC 9110 lets a
server ignore a Range header), which is what media players expect.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.utils import formatdate
from typing import BinaryIO

from fastapi.responses import Response, StreamingResponse

CHUNK = 256 * 1024
_SINGLE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class Unsatisfiable(Exception):
    """The requested range lies outside the file or is malformed."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) a Range header asks for; None to send the whole file."""
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    match = _SINGLE.match(spec)
    if not match or (not match.group(1) and not match.group(2)):
        raise Unsatisfiable(header)
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise Unsatisfiable(header)
    return start, end


def file_response(handle: BinaryIO, size: int, mtime: float | None, media_type: str | None, range_header: str | None) -> Response:
    """200, 206 or 416 for an open file; ``Accept-Ranges: bytes`` always.

    The bytes come from ``handle`` (never by re-opening a path: the caller checked this open
    file, and a path can be swapped in between); the response closes it when done.
    """
    common = {"Accept-Ranges": "bytes"}
    if mtime is not None:
        common["Last-Modified"] = formatdate(mtime, usegmt=True)
    try:
        wanted = parse_range(range_header, size)
    except Unsatisfiable:
        handle.close()
        return Response(status_code=416, headers={**common, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        headers = {**common, "Content-Length": str(size)}
        return StreamingResponse(_read(handle, 0, size - 1), media_type=media_type, headers=headers)
    start, end = wanted
    headers = {**common, "Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)}
    return StreamingResponse(_read(handle, start, end), status_code=206, media_type=media_type, headers=headers)


def _read(handle: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    """At most ``end - start + 1`` bytes from ``start``; closes ``handle`` however it ends."""
    with handle:
        remaining = end - start + 1
        handle.seek(start)
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


__all__ = ["Unsatisfiable", "file_response", "parse_range"]
