"""Stage 4b: store writes for one or many items, replacing whatever they had before.

New points are upserted first and only then are an item's other points (a re-indexed video
that got shorter, a file that became unreadable) deleted, so a search never finds the item
missing half-way through. Deleting whole items (vanished files) is ``search.deletion``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from search.store import Filter, HasId, Match, Point, VectorStore

STALE_CHUNK = 256  # media ids per delete filter


def drop_stale_points(store: VectorStore, media_id: str, keep: Sequence[Point]) -> None:
    """Delete the item's points other than ``keep`` (all of them when ``keep`` is empty)."""
    drop_stale_points_of(store, {media_id: keep})


def drop_stale_points_of(store: VectorStore, items: Mapping[str, Sequence[Point]]) -> None:
    """``drop_stale_points`` for many items in one store call per 256 of them.

    Point ids derive from the item (``search.ids.point_id``), so one item's kept points can
    never be another's: one filter (these items, except all kept points) is exact.
    """
    media_ids = list(items)
    for start in range(0, len(media_ids), STALE_CHUNK):
        chunk = media_ids[start : start + STALE_CHUNK]
        stale = Filter(must=(Match("media_id", tuple(chunk)),))
        keep = tuple(p.id for media_id in chunk for p in items[media_id])
        if keep:
            stale = stale.excluding(HasId(keep))
        store.delete_where(stale)
