"""Media items behind results: their metadata, thumbnail, original file, and deletion.

The store's payloads say where things are (``thumb``, ``uri``); the catalog adds ingestion
state. An item known to either is found, unless it was deleted. Thumbnail paths are trusted
only after checking they resolve inside the thumbnails folder.

An original file is served only while it is still what was indexed, from where it was indexed
(``media_file``): its real path must lie inside the folder of the source it was indexed from,
and the opened file must be a regular file whose size and mtime are those the catalog recorded.
The file is opened once, component by component without following links, and the checks and
the bytes served come from that one open file, so swapping the path for a link to
``/etc/passwd`` (before or during the request) gets a 404, never the file.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlparse
from urllib.request import url2pathname

from search.catalog.catalog import MTIME_TOLERANCE_S
from search.deletion import delete_media_items
from search.errors import MediaChanged, NotFound
from search.media.sniff import SNIFF_BYTES, sniff
from search.payload import MEDIA_ID, VIDEO_KINDS, Payload, read_payload
from search.services import Services
from search.store.base import Filter, Match

if TYPE_CHECKING:
    from search.catalog import Catalog, MediaRecord

VIDEO_POINT_KINDS = VIDEO_KINDS


@dataclass(frozen=True)
class MediaInfo:
    """What is known about one media item (an image, a video, a product photo)."""

    media_id: str
    kind: str  # image | video | product
    uri: str | None
    name: str | None
    payload: Payload | None  # a representative point's payload (None if only the catalog knows it)
    record: MediaRecord | None
    points: int  # vectors this item has in the store


@dataclass(frozen=True)
class MediaFile:
    """The original bytes: an open, checked local file to stream, or a remote URL to redirect to.

    ``handle`` belongs to the caller, who must close it; ``size`` and ``mtime`` are its fstat's.
    """

    handle: BinaryIO | None
    size: int
    mtime: float | None
    url: str | None
    mime: str | None


def media_info(services: Services, media_id: str) -> MediaInfo:
    """Metadata of one item from the store and the catalog; NotFound when neither knows it."""
    flt = Filter((Match(MEDIA_ID, (media_id,)),))
    page = services.store.scroll(flt, limit=1)
    payload = read_payload(page.hits[0].payload) if page.hits else None
    record = _record(services, media_id)
    if not payload and record is None:
        raise NotFound(f"No media item with id {media_id!r}.")
    if not payload and record is not None and record.status == "deleted":
        raise NotFound(f"Media item {media_id!r} was deleted from the index.")
    kind = _media_kind(payload, record)
    uri = (payload.uri if payload else None) or (record.uri if record else None)
    name = (payload.name if payload else None) or (Path(str(uri)).name if uri else None)
    points = services.store.count(flt) if payload else 0
    return MediaInfo(media_id, kind, uri, name, payload, record, points)


def _record(services: Services, media_id: str) -> MediaRecord | None:
    try:
        return services.catalog.get_media(media_id)
    except NotFound:
        return None


def _media_kind(payload: Payload | None, record: MediaRecord | None) -> str:
    kind = payload.kind if payload else (record.kind if record else "image")
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
    thumb = info.payload.thumb if info.payload else None
    return str(thumb) if thumb and info.kind != "video" else None


def point_thumbnail(services: Services, point: str) -> Path:
    """The thumbnail of one stored point (frames have their own)."""
    hits = services.store.retrieve([point])
    if not hits:
        raise NotFound(f"No point with id {point!r}.")
    payload = read_payload(hits[0].payload)
    rel = payload.thumb if payload else None
    path = inside(services.settings.thumbnails_dir, str(rel)) if rel else None
    if path is None or not path.is_file():
        raise NotFound(f"Point {point!r} has no thumbnail.")
    return path


def media_file(services: Services, media_id: str) -> MediaFile:
    """The original of an indexed item: its local file, opened and checked, else its remote URL.

    NotFound when the item is not in the index, its file is gone, or the file's real path now
    lies outside the folder it was indexed from; MediaChanged when the file is no longer the one
    indexed (another size or mtime, not a regular file). Re-ingesting the folder fixes either.
    """
    info = media_info(services, media_id)
    uri = str(info.uri or "")
    if not info.payload:
        raise NotFound(f"Media item {media_id!r} is not in the index, so its file is not served.")
    if uri.startswith("file://") and info.record is not None:
        root = _source_root(services.catalog, info.record)
        return open_indexed_file(root, _local_path(uri), info.record, media_id)
    if uri.startswith(("http://", "https://")):
        return MediaFile(None, 0, None, uri, None)
    raise NotFound(f"The original file of {media_id!r} is not available on this server.")


def _source_root(catalog: Catalog, record: MediaRecord) -> Path:
    """The folder a local item was indexed from: a folder source itself, the folder holding a
    local manifest, or the folder of a file named on its own."""
    try:
        source = catalog.get_source(record.source_id) if record.source_id else None
    except NotFound:
        source = None
    if source is not None and source.kind == "folder":
        return Path(source.uri)
    if source is not None and source.kind == "manifest" and not source.uri.startswith(("http://", "https://")):
        return Path(source.uri).parent
    if source is not None and source.kind == "url" and source.uri.startswith("file://"):
        return _local_path(source.uri).parent
    raise NotFound(f"The original file of {record.id!r} was not indexed from a local folder, so it is not served.")


def open_indexed_file(root: Path, path: Path, record: MediaRecord, media_id: str) -> MediaFile:
    """Open ``path`` for reading if it is still the file ``record`` describes, inside ``root``."""
    real_root = Path(os.path.realpath(root))
    try:
        real = path.resolve(strict=True)
    except OSError as exc:
        raise _unreachable(media_id, exc) from None
    if real == real_root or not real.is_relative_to(real_root):
        raise NotFound(f"The original file of {media_id!r} now lies outside the folder it was indexed from; it is not served.")
    fd = _open_below(real_root, real.relative_to(real_root).parts, media_id)
    try:
        found = os.fstat(fd)
        _check_unchanged(found, record, media_id)
        mime = _sniff_mime(fd)
        return MediaFile(os.fdopen(fd, "rb"), found.st_size, found.st_mtime, None, mime)
    except BaseException:
        os.close(fd)
        raise


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# O_NONBLOCK: a FIFO swapped in after the type check must not hang the request in open()
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_below(root: Path, parts: Sequence[str], media_id: str) -> int:
    """Open ``root/parts...`` one component at a time, following no link below ``root``.

    ``parts`` comes from a fully resolved path, so a link met now was swapped in since: the
    open fails (ELOOP or ENOTDIR) instead of leaving the tree. The last component is checked
    to be a regular file before it is opened, so no FIFO or device is ever opened.
    """
    dir_fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = inner
        entry = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(entry.st_mode):
            raise NotFound(
                f"The original file of {media_id!r} was replaced by a symbolic link while being opened; it is not served."
            )
        if not stat.S_ISREG(entry.st_mode):
            raise MediaChanged(f"The original file of {media_id!r} is no longer a regular file; it is not served.")
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _unreachable(media_id, exc) from None
    finally:
        os.close(dir_fd)


def _check_unchanged(found: os.stat_result, record: MediaRecord, media_id: str) -> None:
    if not stat.S_ISREG(found.st_mode):
        raise MediaChanged(f"The original file of {media_id!r} is no longer a regular file; it is not served.")
    same_size = record.size_bytes is not None and found.st_size == record.size_bytes
    same_mtime = record.mtime is not None and abs(found.st_mtime - record.mtime) <= MTIME_TOLERANCE_S
    if not (same_size and same_mtime):
        raise MediaChanged(
            f"The original file of {media_id!r} changed since it was indexed (size or modification time differ); "
            "re-ingest its folder to serve it again."
        )


def _unreachable(media_id: str, exc: OSError) -> NotFound:
    """A NotFound that says why, naming no path (the client may not know where files live)."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"The original file of {media_id!r} is no longer on disk.")
    if exc.errno == errno.ELOOP:
        return NotFound(f"The original file of {media_id!r} is now reached through a symbolic link; it is not served.")
    return NotFound(f"The original file of {media_id!r} cannot be read on this server ({exc.strerror or 'error'}).")


def _local_path(uri: str) -> Path:
    return Path(url2pathname(urlparse(uri).path))


def delete_media(services: Services, media_id: str) -> int:
    """Remove an item from the index (points, thumbnails, catalog state; see ``search.deletion``).

    Returns how many points were removed; NotFound when nothing knows the item or it is
    deleted already.
    """
    media_info(services, media_id)
    return delete_media_items(services.store, services.catalog, services.settings.thumbnails_dir, [media_id])


def inside(base: Path, relative: str) -> Path | None:
    """``base/relative`` if it stays inside ``base`` (no ``..`` or absolute escapes)."""
    root = base.resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path != root else None


def _sniff_mime(fd: int) -> str | None:
    found = sniff(os.pread(fd, SNIFF_BYTES, 0))  # pread: the stream still starts at byte 0
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
