"""target=images shaped beyond a plain ranked page: grouped by product, or sorted after a cutoff.

Both need the whole set of candidates a page is cut from, so a window of hits is fetched from
the top (like near-duplicate collapse, which keeps page boundaries stable) and shaped here:

- grouped: one card per product id (``search.grouping.cards``), its best photo first and its
  other photos as variants; near-duplicate photos of different products join one card, so a
  photo reused by two products shows once. Paging counts cards, not photos.
- sorted: "everything above the relevance cutoff (``score_threshold``), by date / price / name":
  the best ``SORT_WINDOW`` hits above the cutoff are ordered by the field (missing values last,
  ties by score then id), and every page is cut from that same window, so pages never overlap.
  Qdrant's ``OrderBy`` cannot order by strings (file names) nor follow a score threshold on
  Edge, so the ordering is done here, on the same window for both backends.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from search.dedup import duplicate_pairs
from search.engine.request import SearchRequest, sort_key
from search.engine.results import ResultItem
from search.grouping import Card, cards
from search.payload import ProductPayload, parse_payload
from search.store.base import Hit

GROUP_OVERFETCH = 6  # hits fetched per shown card (products have several photos each)
MIN_WINDOW = 50
MAX_WINDOW = 1000
SORT_WINDOW = MAX_WINDOW  # sorted pages are all cut from the best SORT_WINDOW hits above the cutoff
DIVERSITY = 0.5  # diverse=true: MMR's trade between relevance (0) and variety (1)
MMR_CANDIDATES = 100  # the best hits MMR picks a diverse page from

Fetch = Callable[[int, int, bool], list[Hit]]  # (limit, offset, with_vectors) -> hits
Build = Callable[[Hit, tuple[str, ...], tuple[ResultItem, ...]], ResultItem]  # (hit, duplicates, variants)


def product_key(hit: Hit) -> Hashable:
    """What a card stands for: a product's id, or the point itself for anything else."""
    payload = parse_payload(hit.payload)
    if isinstance(payload, ProductPayload) and payload.product_id:
        return ("product", payload.product_id)
    return ("point", hit.id)


def shaped_page(
    fetch: Fetch, request: SearchRequest, limit: int, group: bool, dedup: bool, threshold: float, build: Build
) -> tuple[list[ResultItem], bool]:
    """The requested page of cards (grouped and/or sorted) and whether another follows."""
    wanted = request.offset + limit
    window = SORT_WINDOW if request.sort else min(max(wanted * GROUP_OVERFETCH, MIN_WINDOW), MAX_WINDOW)
    while True:
        hits = fetch(window, 0, dedup)
        shown = _cards(hits, group, dedup, threshold)
        if request.sort or len(shown) > wanted or len(hits) < window or window >= MAX_WINDOW:
            break
        window = min(window * 2, MAX_WINDOW)  # too few cards in the window: widen it
    if request.sort:
        shown = sort_cards(shown, request.sort)
    page = shown[request.offset : wanted]
    items = [build(c.best, tuple(h.id for h in c.duplicates), tuple(build(v, (), ()) for v in c.variants)) for c in page]
    return items, len(shown) > wanted


def _cards(hits: list[Hit], group: bool, dedup: bool, threshold: float) -> list[Card[Hit]]:
    linked: list[tuple[int, int]] = []
    if dedup and hits:
        linked = duplicate_pairs(np.stack([np.asarray(h.vector) for h in hits]), threshold)
    key: Callable[[Hit], Hashable] = product_key if group else (lambda h: ("point", h.id))
    return cards(hits, key, linked)


def sort_cards(shown: Sequence[Card[Hit]], sort: str) -> list[Card[Hit]]:
    """Cards by the sort field of their best hit; missing values last, ties by score then id."""
    name = sort_key(sort)
    descending = sort.startswith("-")

    def value(card: Card[Hit]) -> Any:
        return getattr(parse_payload(card.best.payload), name, None)

    present = [c for c in shown if value(c) is not None]
    missing = [c for c in shown if value(c) is None]
    present.sort(key=lambda c: (-c.best.score, c.best.id))  # the tie-break, kept by the stable sort below
    present.sort(key=value, reverse=descending)
    missing.sort(key=lambda c: (-c.best.score, c.best.id))
    return present + missing
