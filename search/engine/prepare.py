"""From a request to something the store can search with: a query vector, or example ids.

Terms compose into one vector (``search.query.compose``). Examples go to the store's
recommend (best-score strategy) when the target is images and every example is a stored
point; otherwise (moments, videos, a video given as an example) they become one vector with
Qdrant's average-vector rule, so every target understands "like these, unlike those".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from search.engine.request import SearchRequest
from search.engine.results import TermInfo
from search.engine.terms import encode_terms, resolve_item
from search.errors import BadQuery
from search.query import Composition, KeywordText, TextTerm, compose, examples_vector, parse_keywords
from search.services import Services
from search.store.keywords import KeywordQuery

EXACT_KEYWORD_WEIGHT = 3.0  # RRF weight of the keyword ranking when a query names something exactly (bench/quality.py)


@dataclass(frozen=True)
class PreparedQuery:
    """Exactly one of ``vector`` (nearest search) or ``positive`` (store recommend) is used."""

    vector: np.ndarray | None
    composition: Composition | None  # set for term queries: explain splits scores with it
    positive: tuple[str, ...] = ()  # point ids, for the store's recommend
    negative: tuple[str, ...] = ()
    example_media: tuple[str, ...] = ()  # examples' media, never returned as results
    terms: tuple[TermInfo, ...] = ()
    encode_ms: float = 0.0
    store_ms: float = 0.0
    keywords: KeywordQuery | None = None  # hybrid and keyword modes: what BM25 scores
    keyword_weight: float = 1.0  # the keyword ranking's RRF weight against the visual one
    fusion: str = "rrf"
    keyword_scores: dict[str, float] = field(default_factory=dict)  # explain mode: BM25 per point id, filled as hits come


def prepare(services: Services, request: SearchRequest) -> PreparedQuery:
    """Embed and compose the terms, or resolve the examples."""
    if request.terms:
        mode = request.mode or services.settings.search.mode
        text = keyword_text(request) if mode != "vector" else None
        keywords = keyword_query(text, mode) if text is not None else None
        weight = EXACT_KEYWORD_WEIGHT if text is not None and text.exact else 1.0
        fusion = services.settings.search.fusion
        if mode == "keyword":
            if text is None:
                raise BadQuery("Keyword mode needs a text query (or keywords: true with arithmetic text terms).")
            infos = (TermInfo("keywords", text.text, 1.0),)
            return PreparedQuery(None, None, terms=infos, keywords=keywords, keyword_weight=weight, fusion=fusion)
        encoded = encode_terms(services, request.terms, ensemble=request.ensemble)
        composition = compose(encoded.vectors, [t.weight for t in request.terms])
        return PreparedQuery(
            composition.vector,
            composition,
            terms=encoded.infos,
            encode_ms=encoded.encode_ms,
            store_ms=encoded.store_ms,
            keywords=keywords if keywords else None,
            keyword_weight=weight,
            fusion=fusion,
        )
    return _prepare_examples(services, request)


def keyword_query(text: KeywordText, mode: str) -> KeywordQuery:
    """What BM25 scores for ``text``. Codes and file names typed as loose words rank their
    matches first, as quoted phrases do: RRF alone let a sibling code ("VER-1003-PX" for
    "VER-1003-PU") that looked more like the query win. In hybrid mode, plain words admit
    only points holding every word to the keyword ranking (bench/quality.py)."""
    every_word = mode == "hybrid" and not text.exact
    return KeywordQuery(text.words, (*text.phrases, *text.exact_tokens), every_word)


def keyword_text(request: SearchRequest) -> KeywordText | None:
    """What keyword relevance scores: a plain text query as typed ("quoted phrases" kept),
    or, when the request asks for it, the positive text terms of an arithmetic query.
    Only image results (points) are keyword-ranked; moments and videos are visual."""
    if request.target != "images":
        return None
    texts = [t.text for t in request.terms if isinstance(t, TextTerm) and t.weight > 0]
    if len(request.terms) == 1 and texts and request.terms[0].weight == 1.0:
        return parse_keywords(request.query_text) if request.query_text is not None else KeywordText(texts[0])
    if request.keywords and texts:
        return parse_keywords(" ".join(texts).replace('"', " "))
    return None


def _prepare_examples(services: Services, request: SearchRequest) -> PreparedQuery:
    started = time.perf_counter()
    pos = [resolve_item(services, i) for i in request.positive]
    neg = [resolve_item(services, i) for i in request.negative]
    store_ms = (time.perf_counter() - started) * 1000
    media = tuple(dict.fromkeys(item.media_id for item in pos + neg))
    terms = tuple(TermInfo("positive", f"id:{i}", 1.0) for i in request.positive) + tuple(
        TermInfo("negative", f"id:{i}", -1.0) for i in request.negative
    )
    stored_points = not any(item.is_video for item in pos + neg)
    if request.target == "images" and stored_points:
        return PreparedQuery(None, None, tuple(h.id for h in pos), tuple(h.id for h in neg), media, terms, store_ms=store_ms)
    vector = examples_vector(
        np.stack([h.vector for h in pos]),
        np.stack([h.vector for h in neg]) if neg else None,
    )
    return PreparedQuery(vector, None, example_media=media, terms=terms, store_ms=store_ms)
