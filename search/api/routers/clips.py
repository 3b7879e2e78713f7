"""Clip export: a moment of a video as its own MP4, with range requests."""

from __future__ import annotations

import hashlib
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query
from fastapi.responses import Response

from search.api.deps import SIGNED, State
from search.api.ranges import file_response
from search.api.routers.media import NOT_FOUND, UNSIGNED
from search.engine import media as core
from search.media.clip import ClipError, ClipPlan, check_span, export_clip
from search.settings import Settings

router = APIRouter(tags=["media"])

MediaId = Annotated[str, Path(min_length=1, max_length=200, description="media id of a video")]


@router.get(
    "/media/{media_id}/clip",
    response_class=Response,
    responses={
        200: {"description": "the clip", "content": {"video/mp4": {}}},
        206: {"description": "the requested byte range (Content-Range)"},
        409: {"description": "the file changed since it was indexed (re-ingest it)"},
        416: {"description": "the range cannot be satisfied"},
        422: {"description": "a bad span (start, end), or a video that cannot be cut"},
        **UNSIGNED,
        **NOT_FOUND,
    },
    dependencies=[SIGNED],
    summary="A span of a video as MP4 (stream copy from a nearby keyframe, else re-encoded)",
)
def media_clip(
    media_id: MediaId,
    state: State,
    start: Annotated[float, Query(ge=0, le=1e7, description="seconds from the start of the video")],
    end: Annotated[float, Query(gt=0, le=1e7, description="seconds; end - start at most the clip cap")],
    range: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Cut [start, end) of a local video. A clip is copied without re-encoding from the keyframe
    before ``start`` when that lies within ``api.clip_keyframe_tolerance`` seconds (so it may
    start that much early), else re-encoded from ``start`` exactly (video only). Clips are kept
    in the data dir's ``tmp/clips`` (the last ``api.clip_cache``), so seeking in one, which
    asks for ranges, does not cut it again.

    Moments in search results carry this URL as ``clip_url``; with protected reads it is signed
    for that span (``exp``, ``sig``), so a browser can download it without the key, and the
    signature opens no other span or video."""
    settings = state.services.settings
    plan = ClipPlan(settings.api.clip_max_seconds, settings.api.clip_keyframe_tolerance, settings.api.clip_deadline)
    try:
        check_span(start, end, plan)
    except ClipError as exc:
        raise HTTPException(422, f"end: {exc}") from None
    found = core.media_file(state.services, media_id)  # checks the file is still the one indexed
    if found.handle is None:
        raise HTTPException(404, f"Clips are cut from local files only; {media_id!r} is remote.")
    name = hashlib.sha256(f"{media_id}|{start:.3f}|{end:.3f}".encode()).hexdigest()[:32]  # never a path from the URL
    out = clip_dir(settings) / f"{name}.mp4"
    with found.handle as handle:
        if not out.is_file():
            try:
                export_clip(handle, start, end, out, plan)
            except ClipError as exc:
                raise HTTPException(422, f"The clip cannot be cut: {exc}") from None
            _trim_cache(out.parent, settings.api.clip_cache)
    clip = open(out, "rb")  # noqa: SIM115 - the response closes it
    stat = out.stat()
    return file_response(clip, stat.st_size, stat.st_mtime, "video/mp4", range)


def clip_dir(settings: Settings) -> FsPath:
    """Where clips are written: inside the data dir's temporary area, nowhere else."""
    return settings.data_dir / "tmp" / "clips"


def _trim_cache(folder: FsPath, keep: int) -> None:
    clips = sorted(folder.glob("*.mp4"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in clips[keep:]:
        old.unlink(missing_ok=True)
