"""Removing media items from the index: the one deletion everybody uses.

The API's ``DELETE /media/{id}``, ingest's removal of files that vanished from their folder and
the Celery purge task all call ``delete_media_items``, so an item deleted by any of them is gone
the same way: no points in the store, no thumbnails on disk, and a catalog row marked
``deleted`` with no points (the row stays, so its history survives and a file that comes back is
indexed again).

The order is fixed so an interrupted deletion can simply be repeated: points first (a search
stops finding the item at once), then thumbnails, and the catalog last. A crash before the
catalog write leaves a row that still looks live, so the next rescan or a repeated DELETE finds
the item and finishes the job; a row is never marked deleted while points remain.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from search.catalog import Catalog
from search.media.thumbnail import remove_thumbnails
from search.store import Filter, Match, VectorStore

DELETE_CHUNK = 256  # media ids per store filter


def delete_media_items(store: VectorStore, catalog: Catalog, thumbnails_dir: Path, media_ids: Sequence[str]) -> int:
    """Remove the items' points, thumbnails and live catalog state; returns the points removed.

    Ids unknown to the store or the catalog are passed over, so repeating a deletion is harmless.
    """
    ids = list(dict.fromkeys(media_ids))
    removed = 0
    for start in range(0, len(ids), DELETE_CHUNK):
        match = Filter(must=(Match("media_id", tuple(ids[start : start + DELETE_CHUNK])),))
        found = store.count(match)
        if found:
            store.delete_where(match)
            removed += found
    remove_thumbnails(thumbnails_dir, ids)
    catalog.mark_media_deleted(ids)
    return removed
