"""Stage 1: read an item's bytes on this machine and learn what they are.

Images are read whole (decoding needs every byte anyway, and the content hash comes free);
videos are not read here at all, PyAV streams them from disk. Whether an item is an image or a
video is decided from its bytes, never from its name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ingest.items import MediaItem
from search.errors import MediaError, TooLarge
from search.media import SNIFF_BYTES, Sniffed, describe, sniff


@dataclass(frozen=True)
class Loaded:
    """An item whose bytes are at ``path`` (and in ``data`` for images)."""

    item: MediaItem
    path: Path
    kind: str  # "image" or "video", from the bytes (product photos are images)
    mime: str
    data: bytes | None
    size: int
    mtime: float | None  # local files only: remote media has no trustworthy mtime
    content_hash: str | None  # the fingerprint the catalog compares on the next run
    sha256: str | None  # of the bytes, when they were read

    @property
    def fetched_at(self) -> float | None:
        return self.item.fetched_at


def load_item(item: MediaItem, max_image_bytes: int) -> Loaded:
    """Read a local file or a remote item's download; raise MediaError when it is not usable."""
    path = item.readable_path
    if path is None:
        raise ValueError(f"{item.uri} has not been fetched; run the fetch stage first")
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
            found = _usable(head, item)
            size = path.stat().st_size
            data = None
            if found.is_image:
                if size > max_image_bytes:
                    raise TooLarge(f"image file is {size:,} bytes, over the limit of {max_image_bytes:,}")
                data = head + handle.read()
            mtime = None if item.is_remote else path.stat().st_mtime
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc
    sha = hashlib.sha256(data).hexdigest() if data is not None else None
    kind = "image" if found.is_image else "video"
    return Loaded(item, path, kind, found.mime, data, size, mtime, _content_hash(item, sha), sha)


def _content_hash(item: MediaItem, sha: str | None) -> str | None:
    if item.is_remote:
        return item.content_hash  # computed by the fetch stage over the downloaded bytes
    if item.product is not None:
        return item.fingerprint  # local photos: size+mtime catch file changes, this the row's
    return sha


def _usable(head: bytes, item: MediaItem) -> Sniffed:
    if not head:
        raise MediaError("empty file (0 bytes)")
    found = sniff(head)
    if item.product is not None and not found.is_image:
        raise MediaError(f"product photo is not an image: the content is {describe(found)}")
    if not (found.is_image or found.is_video):
        raise MediaError(f"not an image or a video: the content is {describe(found)}")
    return found
