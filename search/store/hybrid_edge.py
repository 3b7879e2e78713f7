"""Keyword and hybrid queries on Qdrant Edge, and the rebuild that gives an older shard its
keyword vector. Only ``edge.py`` uses it.

A hybrid query is one engine call: a dense prefetch (CLIP similarity) and a sparse prefetch
(BM25 over the words vector) fused by RRF or DBSF. A quoted phrase adds a third ranking, the
keyword one restricted by a phrase match on the full-text ``words`` index, weighted so that the
points holding the phrase come first without hiding the others.

Edge cannot add a sparse vector to an existing shard (its config check refuses the load), so
a shard made before schema version 3 is rebuilt: a new shard with the current config in the
``.building`` sibling, every point copied with its keyword vector, then the same folder swap
as an index build (``maintenance.recover_folder`` undoes a swap cut short at any step).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from search.payload import WORDS
from search.settings import IndexSettings
from search.store.base import Filter, Vector
from search.store.conversions import query_vector, visible
from search.store.conversions_edge import to_filter
from search.store.edge_config import search_params, shard_config
from search.store.keywords import WORDS_VECTOR, KeywordQuery, Sparse, document_vector, phrase_words
from search.store.maintenance import recover_folder, sibling

log = logging.getLogger(__name__)

# Weighted RRF scores rank r of a ranking of weight w as 1 / (r / w + k - 1) (the engine's rule), so
# a weight acts by dividing ranks, which only matters when k is small: k = 2, Qdrant's default,
# given explicitly so both backends fuse alike.
RRF_K = 2
PHRASE_WEIGHT = 100.0  # a quoted phrase's first matches score near 1, above any unweighted first place
_COPY_PAGE = 512


def sparse(vector: Sparse) -> qe.SparseVector:
    return qe.SparseVector(vector.indices, vector.values)


def point_vectors(dense: list[float], payload: dict[str, Any]) -> Any:
    """A point's vectors: the dense one, plus the keyword vector when it has words."""
    words = document_vector(payload)
    return dense if words is None else {"": dense, WORDS_VECTOR: sparse(words)}


def every_word_filter(base: qe.Filter | None, keywords: KeywordQuery | None) -> qe.Filter | None:
    """``base`` and, when the query asks for it, each of its content words (a full-text match)."""
    required = [qe.FieldCondition(WORDS, match=qe.MatchText(w)) for w in (keywords.required_words() if keywords else ())]
    if not required:
        return base
    return qe.Filter(must=[*([base] if base is not None else []), *required])


def phrase_filter(flt: Filter | None, keywords: KeywordQuery | None) -> qe.Filter | None:
    """``flt`` (and the record's exclusion) with every quoted phrase required; None without phrases."""
    phrases = [qe.FieldCondition(WORDS, match=qe.MatchPhrase(phrase_words(p))) for p in (keywords.phrases if keywords else ())]
    if not phrases:
        return None
    base = to_filter(visible(flt))
    return qe.Filter(must=[*([base] if base is not None else []), *phrases])


def fused_request(
    dense: Vector | None,
    keywords: KeywordQuery | None,
    flt: Filter | None,
    dim: int,
    index: IndexSettings,
    limit: int,
    offset: int,
    fusion: str,
    keyword_weight: float,
    candidates: int,
    dense_threshold: float | None = None,
) -> qe.QueryRequest:
    """Dense, keyword and phrase rankings fused (a lone ranking keeps its own scores)."""
    edge_filter = to_filter(visible(flt))
    stages: list[qe.Prefetch] = []
    weights: list[float] = []
    if dense is not None:
        nearest = qe.Query.Nearest(query_vector(dense, dim))
        stages.append(
            qe.Prefetch(
                limit=candidates, query=nearest, filter=edge_filter, params=search_params(index), score_threshold=dense_threshold
            )
        )
        weights.append(1.0)
    words = keywords.vector() if keywords else None
    if words is not None and words.indices:
        scored = qe.Query.Nearest(sparse(words), using=WORDS_VECTOR)
        stages.append(qe.Prefetch(limit=candidates, query=scored, filter=every_word_filter(edge_filter, keywords)))
        weights.append(keyword_weight)
        phrased = phrase_filter(flt, keywords)
        if phrased is not None:
            stages.append(qe.Prefetch(limit=candidates, query=scored, filter=phrased))
            weights.append(PHRASE_WEIGHT)
    if len(stages) == 1:  # one ranking: its own scores, no fusion
        only = stages[0]
        return qe.QueryRequest(
            limit=limit,
            offset=offset,
            query=only.query,
            filter=edge_filter,
            with_payload=True,
            params=only.params,
            score_threshold=only.score_threshold,
        )
    method: Any = qe.Fusion.Dbsf() if fusion == "dbsf" else qe.Fusion.Rrf(k=RRF_K, weights=weights)
    return qe.QueryRequest(limit=limit, offset=offset, prefetches=stages, query=method, with_payload=True)


def keyword_request(keywords: KeywordQuery, ids: Sequence[str]) -> qe.QueryRequest | None:
    """BM25 scores of ``ids`` alone (explain mode)."""
    words = keywords.vector()
    if not words.indices or not ids:
        return None
    only = qe.Filter(must=[qe.HasIdCondition(set(ids))])
    return qe.QueryRequest(
        limit=len(ids), query=qe.Query.Nearest(sparse(words), using=WORDS_VECTOR), filter=only, with_payload=False
    )


# -- the layout: shards made before the keyword vector ------------------------------------------


def lacks_keyword_vector(path: Path, dim: int) -> bool:
    """Whether the shard in ``path`` was made without the keyword vector (from its saved config);
    a shard of another vector size is not ours to rebuild: opening it reports the mismatch."""
    config = path / "edge_config.json"
    if not config.exists():
        return False
    try:
        saved = json.loads(config.read_text())
    except (OSError, ValueError):
        return False  # unreadable: the load reports it
    size = ((saved.get("vectors") or {}).get("") or {}).get("size")
    return size == dim and WORDS_VECTOR not in (saved.get("sparse_vectors") or {})


def add_keyword_vector(path: Path, dim: int, index: IndexSettings) -> int:
    """Rebuild the shard in ``path`` with the current config, every point given its keyword
    vector (from its stored words; points without words get theirs when the schema migration
    back-fills the field). Returns the points copied."""
    recover_folder(path)
    building = sibling(path, "building")
    log.warning("Rebuilding the embedded vector store at %s to add keyword search; nothing is re-embedded.", path)
    old = qe.EdgeShard.load(str(path))
    copied = 0
    try:
        new = qe.EdgeShard.create(str(building), shard_config(dim, index))
        try:
            copied = _copy_points(old, new)
            new.flush()
        finally:
            new.close()
    finally:
        old.close()
    previous, discard = sibling(path, "previous"), sibling(path, "discard")
    path.rename(previous)
    building.rename(path)
    previous.rename(discard)
    shutil.rmtree(discard, ignore_errors=True)
    return copied


def _copy_points(old: qe.EdgeShard, new: qe.EdgeShard) -> int:
    copied = 0
    offset: Any = None
    while True:
        records, offset = old.scroll(qe.ScrollRequest(offset=offset, limit=_COPY_PAGE, with_payload=True, with_vector=True))
        points = []
        for record in records:
            raw = record.vector
            dense = raw.get("") if isinstance(raw, dict) else raw
            payload = dict(record.payload or {})
            points.append(qe.Point(record.id, point_vectors(list(dense), payload), payload))  # type: ignore[arg-type]  # a dense list here
        if points:
            new.update(qe.UpdateOperation.upsert_points(points))
            copied += len(points)
        if offset is None:
            return copied
