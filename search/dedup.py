"""Near-duplicate collapse of a result list.

Product catalogues and photo archives hold many near-identical pictures (the same product
photographed per colour variant, burst shots, re-encoded copies). Showing each of them buries
everything else, so results whose vectors are more similar than a threshold form connected
groups (A~B and B~C puts A, B and C together, even if A and C are further apart), and each group
shows only its best-ranked member, listing the others as its duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    """One shown result (``keep``) and the indices it stands for, in the input's order."""

    keep: int
    duplicates: tuple[int, ...] = ()


def similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarities of the rows (normalised here, whatever the input)."""
    m = np.asarray(vectors, dtype=np.float32)
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)
    return m @ m.T


def duplicate_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Index pairs (i < j) of rows with cosine >= ``threshold``."""
    if len(vectors) == 0:
        return []
    close = np.argwhere(np.triu(similarity_matrix(vectors) >= threshold, k=1))
    return [(int(i), int(j)) for i, j in close]


def connected_groups(n: int, pairs: Iterable[tuple[int, int]]) -> list[Group]:
    """Connected components of ``n`` best-first rows joined by ``pairs``.

    Each group keeps its earliest (best-ranked) row; groups come back in the order of their
    kept row, so grouping never reorders the results. Near-duplicate collapse and grouping
    by product (``search.grouping``) are both this, with different pairs.
    """
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the root is always the best-ranked member
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(find(i), []).append(i)
    return [Group(root, tuple(rest)) for root, (_, *rest) in sorted(members.items())]


def duplicate_groups(vectors: np.ndarray, threshold: float) -> list[Group]:
    """Connected groups of rows with cosine >= ``threshold`` (A~B and B~C joins all three)."""
    return connected_groups(len(vectors), duplicate_pairs(vectors, threshold))


def collapse(items: Sequence[T], vectors: np.ndarray, threshold: float) -> list[tuple[T, list[T]]]:
    """Items paired with the near-duplicates they hide, best-first, one per group."""
    return [(items[g.keep], [items[i] for i in g.duplicates]) for g in duplicate_groups(vectors, threshold)]
