"""Stage 0 for remote media: download it into the data directory and fingerprint it.

Runs on the ``cpu`` queue in distributed mode (a slow host must not hold a GPU worker) and in
the prefetch threads in embedded mode. The download is kept under ``downloads_dir`` so the API
can serve the original later and the embedding stage reads it like any local file; with
several hosts, the data directory must be shared (it also holds the thumbnails).

A download must finish within ``ingest.download_deadline`` (retries included) and waits at most
``ingest.fetch_slot_wait`` for one of the fetcher's slots; past the deadline it is a permanent
failure of that item (FetchTimeout), past the slot wait a transient one.
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from dataclasses import replace
from pathlib import Path

from ingest.items import MediaItem
from search.errors import MediaError
from search.fetch import Fetcher
from search.media import describe
from search.settings import Settings


def fetch_remote(item: MediaItem, settings: Settings, fetcher: Fetcher) -> MediaItem:
    """Download ``item`` and return it with ``local_copy``, ``size`` and ``content_hash`` set.

    The kind becomes ``image`` or ``video`` from the bytes (products stay products). Raises
    FetchError, BlockedAddress, TooLarge, or MediaError when the content is not media.
    """
    fetched_at = time.time()
    downloaded = fetcher.download(item.uri, download_path(settings, item.media_id, None))
    found = downloaded.sniffed
    if not (found.is_image or found.is_video) or (item.product is not None and not found.is_image):
        downloaded.path.unlink(missing_ok=True)
        what = "product photo is not an image" if item.product is not None else "not an image or a video"
        raise MediaError(f"{what}: the content is {describe(found)}")
    final = download_path(settings, item.media_id, found.mime)
    downloaded.path.replace(final)
    content_hash = downloaded.sha256
    if item.product is not None:  # a changed manifest row must re-index an unchanged photo
        content_hash = hashlib.sha256(f"{item.fingerprint}:{downloaded.sha256}".encode()).hexdigest()
    kind = item.kind if item.product is not None else ("image" if found.is_image else "video")
    return replace(item, kind=kind, local_copy=str(final), size=downloaded.size, content_hash=content_hash, fetched_at=fetched_at)


def download_path(settings: Settings, media_id: str, mime: str | None) -> Path:
    """Where a remote item is kept: fanned out by id so no folder grows too large."""
    suffix = (mimetypes.guess_extension(mime) if mime else None) or ".part"
    return settings.downloads_dir / media_id[:2] / f"{media_id}{suffix}"
