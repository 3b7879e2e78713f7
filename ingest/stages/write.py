"""Stage 4b: store writes for one or many items, replacing whatever they had before.

New points are upserted first and only then are an item's other points (a re-indexed video
that got shorter, a file that became unreadable) deleted, so a search never finds the item
missing half-way through. Deleting vanished items also removes their thumbnails.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ingest.stages.decode import image_thumb_name
from search.store import Filter, HasId, Match, Point, VectorStore

_DELETE_CHUNK = 256


def drop_stale_points(store: VectorStore, media_id: str, keep: Sequence[Point]) -> None:
    """Delete the item's points other than ``keep`` (all of them when ``keep`` is empty)."""
    stale = Filter(must=(Match("media_id", (media_id,)),))
    if keep:
        stale = stale.excluding(HasId(tuple(p.id for p in keep)))
    store.delete_where(stale)


def delete_media(store: VectorStore, media_ids: Sequence[str], thumbnails_dir: Path) -> None:
    """Remove every point and thumbnail of the given items (files gone from their source)."""
    for start in range(0, len(media_ids), _DELETE_CHUNK):
        chunk = tuple(media_ids[start : start + _DELETE_CHUNK])
        store.delete_where(Filter(must=(Match("media_id", chunk),)))
    remove_thumbnails(media_ids, thumbnails_dir)


def remove_thumbnails(media_ids: Iterable[str], thumbnails_dir: Path) -> None:
    for media_id in media_ids:
        (thumbnails_dir / image_thumb_name(media_id)).unlink(missing_ok=True)
        shutil.rmtree(thumbnails_dir / media_id, ignore_errors=True)  # a video's frame thumbnails
