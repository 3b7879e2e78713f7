"""From a request to something the store can search with: a query vector, or example ids.

Terms compose into one vector (``search.query.compose``). Examples go to the store's
recommend (best-score strategy) when the target is images and every example is a stored
point; otherwise (moments, videos, a video given as an example) they become one vector with
Qdrant's average-vector rule, so every target understands "like these, unlike those".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from search.engine.request import SearchRequest
from search.engine.results import TermInfo
from search.engine.terms import encode_terms, resolve_item
from search.query import Composition, compose, examples_vector
from search.services import Services


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


def prepare(services: Services, request: SearchRequest) -> PreparedQuery:
    """Embed and compose the terms, or resolve the examples."""
    if request.terms:
        encoded = encode_terms(services, request.terms, ensemble=request.ensemble)
        composition = compose(encoded.vectors, [t.weight for t in request.terms])
        return PreparedQuery(
            composition.vector,
            composition,
            terms=encoded.infos,
            encode_ms=encoded.encode_ms,
            store_ms=encoded.store_ms,
        )
    return _prepare_examples(services, request)


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
