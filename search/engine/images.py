"""target=images: one result per stored point (image, product, or frame when asked for).

Paging is pushed into the store (limit + 1 tells whether a next page exists) except when
near-duplicates collapse: groups can only be formed over a window of hits, so the first
``offset + limit`` groups are computed from a window fetched from the top, which keeps page
boundaries stable from one page to the next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from search.dedup import duplicate_groups
from search.engine.cards import DIVERSITY, MMR_CANDIDATES, shaped_page
from search.engine.prepare import PreparedQuery
from search.engine.request import SearchRequest
from search.engine.results import Contribution, ResultItem
from search.payload import kind_of, parse_payload
from search.query import contributions
from search.services import Services
from search.store.base import Filter, Hit

DEDUP_OVERFETCH = 3  # hits fetched per shown result when collapsing duplicates
DEDUP_MIN_WINDOW = 50
DEDUP_MAX_WINDOW = 1000


@dataclass(frozen=True)
class ResultPage:
    items: tuple[ResultItem, ...]
    next_offset: int | None
    store_ms: float


def image_results(services: Services, request: SearchRequest, prepared: PreparedQuery, flt: Filter, limit: int) -> ResultPage:
    """A page of point results; duplicates collapse when asked, or by default for products."""
    fetch = _Fetcher(services, prepared, flt, request.score_threshold, request.explain)
    fetch.diverse = request.diverse
    dedup = request.dedup
    threshold = request.dedup_threshold or services.settings.search.dedup_threshold
    if request.group or request.sort:  # asked for explicitly: no need to look at the hits first
        return _shaped(fetch, request, limit, threshold, dedup, request.group)
    if dedup is None or dedup or request.group is None:
        wanted = request.offset + limit
        # vectors only when collapsing is certain: most searches are not all-product and
        # would pay for converting vectors they never use
        hits = fetch(wanted + 1, 0, with_vectors=bool(dedup) or request.explain)
        products = bool(hits) and all(_kind(h) == "product" for h in hits)
        if request.group is None and products:  # results are products: one card per product
            return _shaped(fetch, request, limit, threshold, dedup if dedup is not None else products, True)
        dedup = dedup if dedup is not None else products
        if not dedup:
            hits = hits[request.offset :]
    else:
        hits = fetch(limit + 1, request.offset, with_vectors=request.explain)
    if dedup:
        items, has_more = _collapsed(fetch, hits, request, limit, threshold)
    else:
        items = [_item(h, prepared, request.explain) for h in hits[:limit]]
        has_more = len(hits) > limit
    next_offset = request.offset + limit if has_more else None
    return ResultPage(tuple(items), next_offset, fetch.elapsed_ms)


def _shaped(
    fetch: _Fetcher, request: SearchRequest, limit: int, threshold: float, dedup: bool | None, group: bool | None
) -> ResultPage:
    """Grouped by product and/or sorted after the cutoff (``search.engine.cards``)."""
    if dedup is None:  # the default rule: collapse when every hit is a product
        head = fetch(request.offset + limit + 1, 0, with_vectors=False)
        dedup = bool(head) and all(_kind(h) == "product" for h in head)

    def build(hit: Hit, duplicates: tuple[str, ...], variants: tuple[ResultItem, ...]) -> ResultItem:
        item = _item(hit, fetch.prepared, request.explain, duplicates)
        return replace(item, variants=variants) if variants else item

    vectors = dedup or request.explain
    items, has_more = shaped_page(lambda n, o, _: fetch(n, o, vectors), request, limit, bool(group), dedup, threshold, build)
    return ResultPage(tuple(items), request.offset + limit if has_more else None, fetch.elapsed_ms)


def _collapsed(
    fetch: _Fetcher, hits: list[Hit], request: SearchRequest, limit: int, threshold: float
) -> tuple[list[ResultItem], bool]:
    """Group a window of hits from the top and return the requested page of groups."""
    wanted = request.offset + limit
    window = min(max(wanted * DEDUP_OVERFETCH, DEDUP_MIN_WINDOW), DEDUP_MAX_WINDOW)
    if len(hits) > wanted or any(h.vector is None for h in hits):  # widen the window, with vectors
        hits = fetch(window, 0, with_vectors=True)
    vectors = np.stack([h.vector for h in hits if h.vector is not None]) if hits else np.zeros((0, 1), np.float32)
    groups = duplicate_groups(vectors, threshold)
    page = groups[request.offset : wanted]
    items = [_item(hits[g.keep], fetch.prepared, request.explain, tuple(hits[i].id for i in g.duplicates)) for g in page]
    return items, len(groups) > wanted or len(hits) >= window


def _kind(hit: Hit) -> str:
    return kind_of(hit.payload)


def _item(hit: Hit, prepared: PreparedQuery, explain: bool, duplicates: tuple[str, ...] = ()) -> ResultItem:
    payload = parse_payload(hit.payload)
    return ResultItem(
        point_id=hit.id,
        media_id=payload.media_id or hit.id,
        kind=payload.kind,
        score=hit.score,
        payload=payload,
        duplicates=duplicates,
        contributions=(*explain_hit(prepared, hit.vector), *explain_keywords(prepared, hit.id)) if explain else (),
    )


def explain_hit(prepared: PreparedQuery, vector: np.ndarray | None) -> tuple[Contribution, ...]:
    """Each term's share of this hit's score (empty for example queries, which have no terms)."""
    comp = prepared.composition
    if comp is None or vector is None:
        return ()
    shares = contributions(comp, vector)
    norm = float(np.linalg.norm(vector)) or 1.0
    sims = comp.units @ (np.asarray(vector, np.float32) / norm)
    return tuple(
        Contribution(info.label, info.weight, round(float(sim), 6), round(float(share), 6))
        for info, sim, share in zip(prepared.terms, sims, shares)
    )


def explain_keywords(prepared: PreparedQuery, point_id: str) -> tuple[Contribution, ...]:
    """Hybrid and keyword modes: the hit's keyword relevance (BM25, 0 when no word matched),
    beside the terms' visual shares; the fused score is ranked from both."""
    keywords = prepared.keywords
    if keywords is None:
        return ()
    score = round(prepared.keyword_scores.get(point_id, 0.0), 6)
    label = " ".join((keywords.text, *(f'"{p}"' for p in keywords.phrases))).strip()
    return (Contribution(f"keywords: {label}", prepared.keyword_weight, score, score),)


class _Fetcher:
    """Runs the store call the prepared query needs (nearest or recommend) and times it."""

    def __init__(
        self, services: Services, prepared: PreparedQuery, flt: Filter, threshold: float | None, explain: bool = False
    ) -> None:
        self.explain = explain
        self.diverse = False  # MMR over the dense candidates (search.engine.cards.DIVERSITY)
        self.store = services.store
        self.prepared = prepared
        self.flt = flt
        self.threshold = threshold
        self.elapsed_ms = 0.0

    def __call__(self, limit: int, offset: int, with_vectors: bool) -> list[Hit]:
        started = time.perf_counter()
        try:
            return self._run(limit, offset, with_vectors)
        finally:
            self.elapsed_ms += (time.perf_counter() - started) * 1000

    def _run(self, limit: int, offset: int, with_vectors: bool) -> list[Hit]:
        p = self.prepared
        if self.diverse and p.vector is not None:  # the engine's MMR re-ranks dense candidates; keywords take no part
            candidates = max(MMR_CANDIDATES, 3 * (limit + offset))
            return self.store.query_diverse(
                p.vector, self.flt, limit, offset, DIVERSITY, candidates, self.threshold, with_vectors
            )
        if p.keywords is not None:
            hits = self._hybrid(limit, offset)
        elif p.vector is not None:
            return self.store.query(p.vector, self.flt, limit, offset, self.threshold, with_vectors)
        else:
            hits = self.store.recommend(list(p.positive), list(p.negative), self.flt, limit, offset, self.threshold)
        if not with_vectors or not hits:
            return hits
        vectors = {h.id: h.vector for h in self.store.retrieve([h.id for h in hits], with_vectors=True)}
        return [Hit(h.id, h.score, h.payload, vectors.get(h.id)) for h in hits]

    def _hybrid(self, limit: int, offset: int) -> list[Hit]:
        """Hybrid or keyword mode: one fused store query; explain also asks each hit's BM25 score."""
        p = self.prepared
        if p.keywords is None or (p.vector is None and not p.keywords):
            return []  # keyword mode with nothing to match (only stopwords)
        hits = self.store.query_hybrid(
            p.vector,
            p.keywords,
            self.flt,
            limit,
            offset,
            fusion=p.fusion,
            keyword_weight=p.keyword_weight,
            dense_threshold=self.threshold,
        )
        if self.explain and hits:
            p.keyword_scores.update(self.store.keyword_scores(p.keywords, [h.id for h in hits]))
        return hits
