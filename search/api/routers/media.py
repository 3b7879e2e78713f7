"""Media items: metadata, thumbnails, the original file (with range requests), deletion."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import FileResponse, RedirectResponse, Response

from search.api import convert
from search.api.deps import SIGNED, AppState, MediaLinks, State, require_api_key
from search.api.ranges import file_response
from search.api.schemas import DeletedOut, ErrorOut, MediaOut
from search.engine import media as core

router = APIRouter(tags=["media"])

MediaId = Annotated[str, Path(min_length=1, max_length=200, description="media id (see results' media_id)")]
PointId = Annotated[str, Path(min_length=1, max_length=200, description="point id (see results' id)")]
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "unknown or deleted id, or nothing to serve"}}
UNSIGNED: Responses = {
    401: {
        "model": ErrorOut,
        "description": "protected reads: neither the X-API-Key header nor a valid signature (tampered, expired, "
        "or signed for another item, endpoint or span)",
    }
}
SIGNED_NOTE = (
    "\n\nWith protected reads this URL opens with the X-API-Key header or, for a browser that cannot "
    "send one, with the `exp` and `sig` the API put in the URL it returned (valid for `api.media_url_ttl` seconds)."
)


def thumb_cache(state: AppState) -> str:
    """Thumbnails are cached a day; privately (never by a shared proxy) when reads are protected."""
    return f"{'private' if state.settings.api.protect_reads else 'public'}, max-age=86400"


@router.get("/media/{media_id}", response_model=MediaOut, responses=NOT_FOUND, summary="Metadata of a media item")
def get_media(media_id: MediaId, state: State, links: MediaLinks) -> MediaOut:
    """Store payload and catalog record of one image, video or product photo, with its media URLs
    (signed when reads are protected, so a browser can load them without the key)."""
    return convert.media_out(core.media_info(state.services, media_id), links)


@router.get(
    "/media/{media_id}/thumbnail",
    response_class=FileResponse,
    dependencies=[SIGNED],
    responses={200: {"content": {"image/webp": {}}}, **UNSIGNED, **NOT_FOUND},
    summary="Thumbnail of a media item",
    description="A WebP thumbnail; a video's is its catalog thumbnail or a middle frame." + SIGNED_NOTE,
)
def media_thumbnail(media_id: MediaId, state: State) -> FileResponse:
    """A WebP thumbnail; a video's is its catalog thumbnail or a middle frame."""
    path = core.media_thumbnail(state.services, media_id)
    return FileResponse(path, media_type="image/webp", headers={"Cache-Control": thumb_cache(state)})


@router.get(
    "/points/{point_id}/thumbnail",
    response_class=FileResponse,
    dependencies=[SIGNED],
    responses={200: {"content": {"image/webp": {}}}, **UNSIGNED, **NOT_FOUND},
    summary="Thumbnail of one point (a video frame's own picture)",
    description="The frame's WebP thumbnail." + SIGNED_NOTE,
)
def point_thumbnail(point_id: PointId, state: State) -> FileResponse:
    path = core.point_thumbnail(state.services, point_id)
    return FileResponse(path, media_type="image/webp", headers={"Cache-Control": thumb_cache(state)})


@router.get(
    "/media/{media_id}/file",
    response_class=Response,
    responses={
        200: {"description": "the whole file", "content": {"application/octet-stream": {}}},
        206: {"description": "the requested byte range (Content-Range)"},
        307: {"description": "remote media: redirect to its URL"},
        409: {"model": ErrorOut, "description": "the file changed since it was indexed (re-ingest it)"},
        416: {"description": "the range cannot be satisfied (Content-Range: bytes */SIZE)"},
        **UNSIGNED,
        **NOT_FOUND,
    },
    dependencies=[SIGNED],
    summary="The original file, with HTTP range requests (seekable video)",
)
def media_file(media_id: MediaId, state: State, range: Annotated[str | None, Header(max_length=200)] = None) -> Response:
    """Local files are streamed (``Range: bytes=start-end`` supported); remote ones redirect.

    A local file is served only while it is the file that was indexed, inside the folder it was
    indexed from: 404 when it is gone or now lies outside (a link swapped in), 409 when it
    changed since indexing.

    With protected reads this URL opens with the X-API-Key header or, for a browser that cannot
    send one, with the ``exp`` and ``sig`` the API put in the URL it returned (valid for
    ``api.media_url_ttl`` seconds); a Range request on a signed URL is answered alike.
    """
    found = core.media_file(state.services, media_id)
    if found.handle is None:
        return RedirectResponse(str(found.url), status_code=307)
    return file_response(found.handle, found.size, found.mtime, found.mime or "application/octet-stream", range)


@router.delete(
    "/media/{media_id}",
    response_model=DeletedOut,
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, **NOT_FOUND},
    summary="Remove an item from the index",
)
def delete_media(media_id: MediaId, state: State) -> DeletedOut:
    """Deletes the item's points (all frames and segments of a video) and thumbnails and marks it
    deleted; afterwards its metadata, file and thumbnail answer 404."""
    return DeletedOut(id=media_id, points_deleted=core.delete_media(state.services, media_id))
