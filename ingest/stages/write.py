"""Stage 4b: store writes for one or many items, replacing whatever they had before.

New points are upserted first and only then are an item's other points (a re-indexed video
that got shorter, a file that became unreadable) deleted, so a search never finds the item
missing half-way through. Deleting whole items (vanished files) is ``search.deletion``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence

from search.store import Filter, HasId, Match, Point, VectorStore


def drop_stale_points(store: VectorStore, media_id: str, keep: Sequence[Point]) -> None:
    """Delete the item's points other than ``keep`` (all of them when ``keep`` is empty)."""
    stale = Filter(must=(Match("media_id", (media_id,)),))
    if keep:
        stale = stale.excluding(HasId(tuple(p.id for p in keep)))
    store.delete_where(stale)
