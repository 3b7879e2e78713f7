"""Keyword and hybrid queries through qdrant-client, and the copy that gives an older
collection its keyword vector. Only ``server.py`` uses it; the twin of ``hybrid_edge``.

The keyword vectors are computed client-side by the same BM25 model Edge uses
(``search.store.keywords``), so the server needs no inference service and both backends
score alike. A collection cannot gain a sparse vector in place (qdrant-client's
``update_collection`` only changes existing ones), so one made before schema version 3 is
copied into ``<name>__keywords`` with the current layout, dropped, re-created and copied back.
Each step can be cut short: whether the collection already has the keyword vector tells
which copy was running, and ``resume`` finishes it on the next open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from search.payload import WORDS
from search.store.base import Filter, Vector
from search.store.conversions import query_vector, visible
from search.store.conversions_server import to_filter
from search.store.hybrid_edge import PHRASE_WEIGHT, RRF_K
from search.store.keywords import WORDS_VECTOR, KeywordQuery, Sparse, document_vector, phrase_words

log = logging.getLogger(__name__)

_COPY_PAGE = 256
KEYWORD_VECTORS = {WORDS_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}


def sparse(vector: Sparse) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


def point_vectors(dense: list[float], payload: dict[str, Any]) -> Any:
    words = document_vector(payload)
    return dense if words is None else {"": dense, WORDS_VECTOR: sparse(words)}


def every_word_filter(base: models.Filter | None, keywords: KeywordQuery | None) -> models.Filter | None:
    required = [
        models.FieldCondition(key=WORDS, match=models.MatchText(text=w)) for w in (keywords.required_words() if keywords else ())
    ]
    if not required:
        return base
    return models.Filter(must=[*([base] if base is not None else []), *required])


def phrase_filter(flt: Filter | None, keywords: KeywordQuery | None) -> models.Filter | None:
    phrases = [
        models.FieldCondition(key=WORDS, match=models.MatchPhrase(phrase=phrase_words(p)))
        for p in (keywords.phrases if keywords else ())
    ]
    if not phrases:
        return None
    base = to_filter(visible(flt))
    return models.Filter(must=[*([base] if base is not None else []), *phrases])


def fused_query(
    dense: Vector | None,
    keywords: KeywordQuery | None,
    flt: Filter | None,
    dim: int,
    params: models.SearchParams | None,
    fusion: str,
    keyword_weight: float,
    candidates: int,
    dense_threshold: float | None = None,
) -> dict[str, Any]:
    """``query_points`` arguments: the rankings fused as ``hybrid_edge.fused_request`` does."""
    server_filter = to_filter(visible(flt))
    stages: list[models.Prefetch] = []
    weights: list[float] = []
    if dense is not None:
        stages.append(
            models.Prefetch(
                query=query_vector(dense, dim),
                filter=server_filter,
                limit=candidates,
                params=params,
                score_threshold=dense_threshold,
            )
        )
        weights.append(1.0)
    words = keywords.vector() if keywords else None
    if words is not None and words.indices:
        keyword_filter = every_word_filter(server_filter, keywords)
        stages.append(models.Prefetch(query=sparse(words), using=WORDS_VECTOR, filter=keyword_filter, limit=candidates))
        weights.append(keyword_weight)
        phrased = phrase_filter(flt, keywords)
        if phrased is not None:
            stages.append(models.Prefetch(query=sparse(words), using=WORDS_VECTOR, filter=phrased, limit=candidates))
            weights.append(PHRASE_WEIGHT)
    if len(stages) == 1:
        only = stages[0]
        return {
            "query": only.query,
            "using": only.using,
            "query_filter": server_filter,
            "search_params": only.params,
            "score_threshold": only.score_threshold,
        }
    fused: Any = (
        models.FusionQuery(fusion=models.Fusion.DBSF)
        if fusion == "dbsf"
        else models.RrfQuery(rrf=models.Rrf(k=RRF_K, weights=weights))
    )
    return {"prefetch": stages, "query": fused}


def keyword_query(keywords: KeywordQuery, ids: Sequence[str]) -> dict[str, Any] | None:
    words = keywords.vector()
    if not words.indices or not ids:
        return None
    only = models.Filter(must=[models.HasIdCondition(has_id=list(ids))])
    return {"query": sparse(words), "using": WORDS_VECTOR, "query_filter": only, "limit": len(ids)}


# -- the layout ------------------------------------------------------------------------------


def has_keyword_vector(client: QdrantClient, collection: str) -> bool:
    info = client.get_collection(collection)
    return WORDS_VECTOR in (info.config.params.sparse_vectors or {})


def add_keyword_vector(client: QdrantClient, collection: str, create: Callable[[str], None]) -> int:
    """Give ``collection`` the keyword vector by copying it out and back (see the module
    docstring); ``create`` makes a collection of the current layout. Returns points copied."""
    spare = f"{collection}__keywords"
    log.warning("Copying collection %s to add keyword search; nothing is re-embedded.", collection)
    if client.collection_exists(spare):
        client.delete_collection(spare)  # a copy-out cut short: the original still holds everything
    create(spare)
    copy_points(client, collection, spare)
    client.delete_collection(collection)
    return resume(client, collection, create)


def resume(client: QdrantClient, collection: str, create: Callable[[str], None]) -> int:
    """Finish a copy-back: ``<name>__keywords`` holds every point while it exists."""
    spare = f"{collection}__keywords"
    if not client.collection_exists(collection):
        create(collection)
    copied = copy_points(client, spare, collection)
    client.delete_collection(spare)
    return copied


def spare_exists(client: QdrantClient, collection: str) -> bool:
    return client.collection_exists(f"{collection}__keywords")


def copy_points(client: QdrantClient, source: str, target: str) -> int:
    copied = 0
    offset: Any = None
    while True:
        records, offset = client.scroll(source, limit=_COPY_PAGE, offset=offset, with_payload=True, with_vectors=True)
        points = []
        for record in records:
            raw = record.vector
            dense = raw.get("") if isinstance(raw, dict) else raw
            payload = dict(record.payload or {})
            points.append(models.PointStruct(id=record.id, vector=point_vectors(list(dense), payload), payload=payload))  # type: ignore[arg-type]
        if points:
            client.upsert(target, points=points, wait=True)
            copied += len(points)
        if offset is None:
            return copied
