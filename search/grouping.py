"""Grouping a best-first result list by a key: one card per product, one entry per video.

Results often come several to a thing a person thinks of as one: a product has several photos,
a video has many frames. Both are grouped here, by one mechanism: hits sharing a key form a
group (and, for products, near-duplicate photos join the groups they link, so the same photo
reused by two products still shows once). Groups keep their best-ranked member first and come
back in the order of that member, so grouping never reorders what the ranking said.

The Qdrant server has a group-by query (``query_points_groups``) and Qdrant Edge 0.9 has none;
so that both backends behave the same, the engine fetches a window of hits and groups it here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from search.dedup import connected_groups

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def group_by(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    """Items per key, keys in order of first appearance, each list in input order."""
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


@dataclass(frozen=True)
class Card(Generic[T]):
    """One shown result: its best member, the other members with the same key (variants), and
    members of other keys that were near-duplicates of this group (duplicates)."""

    best: T
    variants: tuple[T, ...] = ()
    duplicates: tuple[T, ...] = ()


def cards(items: Sequence[T], key: Callable[[T], Hashable], linked: Iterable[tuple[int, int]] = ()) -> list[Card[T]]:
    """Best-first ``items`` grouped by ``key``, groups also joined by ``linked`` index pairs
    (near-duplicates); one card per connected group, in the order of its best member."""
    keys = [key(item) for item in items]
    same: list[tuple[int, int]] = []
    for members in group_by(range(len(items)), lambda i: keys[i]).values():
        same += [(members[0], other) for other in members[1:]]
    out: list[Card[T]] = []
    for g in connected_groups(len(items), [*same, *linked]):
        rest = [items[i] for i in g.duplicates if keys[i] == keys[g.keep]]
        others = [items[i] for i in g.duplicates if keys[i] != keys[g.keep]]
        out.append(Card(items[g.keep], tuple(rest), tuple(others)))
    return out
