"""The Qdrant Edge shard configuration and search parameters, derived from ``IndexSettings``.

One place turns the settings into engine objects, so the serving process, the index-building
child process (``search.store.optimize_child``) and the tests build identical shards.
Edge measures its optimizer thresholds in kilobytes of vectors; the settings speak in points,
which is what a user can reason about, so the conversion lives here.
"""

from __future__ import annotations

import os

import qdrant_edge as qe

from search.settings import IndexSettings
from search.store.keywords import WORDS_VECTOR

_FLOAT_BYTES = 4


def points_to_kb(points: int, dim: int) -> int:
    """Kilobytes that ``points`` float32 vectors of ``dim`` dimensions take: Edge's unit."""
    return max(1, points * dim * _FLOAT_BYTES // 1024)


def index_threads(index: IndexSettings) -> int:
    """Threads for an index build: all cores but one, so queries keep a core while it runs."""
    if index.optimize_threads:
        return index.optimize_threads
    return max(1, (os.cpu_count() or 2) - 1)


def shard_config(dim: int, index: IndexSettings) -> qe.EdgeConfig:
    """Cosine vectors of ``dim`` dimensions, an HNSW graph once a segment passes the threshold,
    and int8 scalar quantization kept in RAM (the originals stay on disk for rescoring)."""
    threshold_kb = points_to_kb(index.threshold_points, dim)
    quantization = (
        qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
        if index.quantization == "int8"
        else None
    )
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
        sparse_vectors={WORDS_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},  # BM25, IDF at query time
        hnsw_config=qe.HnswIndexConfig(
            m=index.hnsw_m,
            ef_construct=index.hnsw_ef_construct,
            full_scan_threshold=threshold_kb,
            max_indexing_threads=index_threads(index),
        ),
        quantization_config=quantization,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=threshold_kb),
    )


def search_params(index: IndexSettings, exact: bool = False) -> qe.SearchParams:
    """Search-time HNSW breadth and quantization use: rescored and oversampled by default."""
    quantization = (
        qe.QuantizationSearchParams(rescore=index.rescore, oversampling=index.oversampling)
        if index.quantization == "int8"
        else None
    )
    return qe.SearchParams(hnsw_ef=index.hnsw_ef, exact=exact, quantization=quantization)
