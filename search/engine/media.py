"""Media items behind results: their metadata, thumbnail, original file, and deletion.

The store's payloads say where things are (``path``, ``thumb``, ``uri``); the catalog adds
ingestion state. An item known to either is found. Paths from payloads are trusted only after
checking they resolve inside the folders they belong to, so a crafted payload or id cannot
make the API serve arbitrary files.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import NotFound
from search.media.sniff import SNIFF_BYTES, sniff
from search.services import Services
from search.store.base import Filter, Match

if TYPE_CHECKING:
    from search.catalog import MediaRecord

VIDEO_POINT_KINDS = ("frame", "segment")


@dataclass(frozen=True)
class MediaInfo:
    """What is known about one media item (an image, a video, a product photo)."""

    media_id: str
    kind: str  # image | video | product
    uri: str | None
    name: str | None
    payload: Mapping[str, Any]  # a representative point's payload ({} if only the catalog knows it)
    record: MediaRecord | None
    points: int  # vectors this item has in the store


@dataclass(frozen=True)
class MediaFile:
    """Where the original bytes are: a local file to stream, or a remote URL to redirect to."""

    path: Path | None
    url: str | None
    mime: str | None


def media_info(services: Services, media_id: str) -> MediaInfo:
    """Metadata of one item from the store and the catalog; NotFound when neither knows it."""
    flt = Filter((Match("media_id", (media_id,)),))
    page = services.store.scroll(flt, limit=1)
    payload = page.hits[0].payload if page.hits else {}
    record = _record(services, media_id)
    if not payload and record is None:
        raise NotFound(f"No media item with id {media_id!r}.")
    kind = _media_kind(payload, record)
    uri = payload.get("uri") or (record.uri if record else None)
    name = payload.get("name") or (Path(str(uri)).name if uri else None)
    points = services.store.count(flt) if payload else 0
    return MediaInfo(media_id, kind, uri, name, payload, record, points)


def _record(services: Services, media_id: str) -> MediaRecord | None:
    try:
        return services.catalog.get_media(media_id)
    except NotFound:
        return None


def _media_kind(payload: Mapping[str, Any], record: MediaRecord | None) -> str:
    kind = str(payload.get("kind") or (record.kind if record else "image"))
    return "video" if kind in VIDEO_POINT_KINDS else kind


def media_thumbnail(services: Services, media_id: str) -> Path:
    """The item's thumbnail file: the catalog's, its point's, or (videos) a middle frame's."""
    info = media_info(services, media_id)
    thumbs = services.settings.thumbnails_dir
    for rel in (info.record.thumbnail if info.record else None, _own_thumb(info)):
        path = inside(thumbs, rel) if rel else None
        if path is not None and path.is_file():
            return path
    if info.kind == "video" and _is_uuid(media_id):
        frames = sorted((thumbs / media_id).glob("*.webp"), key=lambda p: _stem_number(p))
        if frames:
            return frames[len(frames) // 2]
    raise NotFound(f"Media item {media_id!r} has no thumbnail.")


def _own_thumb(info: MediaInfo) -> str | None:
    """An image's or product's point thumbnail is the item's; a frame's is not the video's."""
    thumb = info.payload.get("thumb")
    return str(thumb) if thumb and info.kind != "video" else None


def point_thumbnail(services: Services, point: str) -> Path:
    """The thumbnail of one stored point (frames have their own)."""
    hits = services.store.retrieve([point])
    if not hits:
        raise NotFound(f"No point with id {point!r}.")
    rel = hits[0].payload.get("thumb")
    path = inside(services.settings.thumbnails_dir, str(rel)) if rel else None
    if path is None or not path.is_file():
        raise NotFound(f"Point {point!r} has no thumbnail.")
    return path


def media_file(services: Services, media_id: str) -> MediaFile:
    """The original file of an item: local bytes when we have them, else its remote URL."""
    info = media_info(services, media_id)
    for candidate in _local_candidates(services, info):
        if candidate.is_file():
            return MediaFile(candidate, None, _sniff_mime(candidate))
    uri = str(info.uri or "")
    if uri.startswith(("http://", "https://")):
        return MediaFile(None, uri, None)
    raise NotFound(f"The original file of {media_id!r} is not available on this server.")


def _local_candidates(services: Services, info: MediaInfo) -> list[Path]:
    """The payload's local path, a file:// URI, or a copy ingestion kept in downloads_dir."""
    out: list[Path] = []
    path = info.payload.get("path")
    if path:
        out.append(Path(str(path)))
    uri = str(info.uri or "")
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        out.append(Path(unquote(urlparse(uri).path)))
    meta = info.record.metadata if info.record else {}
    for key in ("local_path", "download_path"):
        rel = meta.get(key)
        if rel:
            inner = inside(services.settings.downloads_dir, str(rel))
            if inner is not None:
                out.append(inner)
    return out


def delete_media(services: Services, media_id: str) -> int:
    """Remove an item's points from the store and mark it deleted in the catalog.

    Returns how many points were removed; NotFound when nothing knows the item.
    """
    info = media_info(services, media_id)
    flt = Filter((Match("media_id", (media_id,)),))
    removed = services.store.count(flt)
    if removed:
        services.store.delete_where(flt)
    if info.record is not None:
        services.catalog.set_media_status(media_id, "deleted", point_count=0)
    return removed


def inside(base: Path, relative: str) -> Path | None:
    """``base/relative`` if it stays inside ``base`` (no ``..`` or absolute escapes)."""
    root = base.resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path != root else None


def _sniff_mime(path: Path) -> str | None:
    with path.open("rb") as handle:
        found = sniff(handle.read(SNIFF_BYTES))
    return None if found.media_class == "other" else found.mime


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _stem_number(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return 0
