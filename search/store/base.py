"""The vector store interface, in mmsearch's own types.

Two backends implement it: Qdrant Edge in-process (``edge.py``, the embedded default) and
qdrant-client against a Qdrant server or cluster (``server.py``). Callers never branch on
which one they hold; ``search.store.open_store`` is the only code that reads the choice.
One store object serves one collection: one embedding model's vector space.

The store holds payloads as plain dicts and knows nothing of their meaning; the payload
contract (``search.payload``) and the collection's schema version (``search.store.schema``)
sit on top of these operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Union, runtime_checkable

import numpy as np

from search.payload import FieldType
from search.store.keywords import KeywordQuery

Vector = Union[np.ndarray, Sequence[float]]


@dataclass(frozen=True)
class IndexRun:
    """How the last index build went."""

    started_at: float  # unix seconds
    seconds: float
    ok: bool
    points: int
    detail: str  # "indexed 120000 points" or why it failed or stopped


@dataclass(frozen=True)
class IndexState:
    """What /stats, doctor and the Status page show about the vector index."""

    points: int
    indexed: int
    optimizing: bool
    auto: bool
    last_run: IndexRun | None

    @property
    def unindexed(self) -> int:
        return max(0, self.points - self.indexed)


@dataclass(frozen=True)
class Point:
    id: str  # a UUID string (see search.ids.point_id)
    vector: Vector
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class Match:
    """Field equals one of ``values`` (for list fields: any element does)."""

    key: str
    values: tuple[str | int | bool, ...]


@dataclass(frozen=True)
class Range:
    """Numeric field within bounds; ``None`` leaves a side open."""

    key: str
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class HasId:
    ids: tuple[str, ...]


@dataclass(frozen=True)
class GeoRadius:
    """Geo field within ``km`` kilometres of (``lat``, ``lon``), decimal degrees."""

    key: str
    lat: float
    lon: float
    km: float


@dataclass(frozen=True)
class GeoBox:
    """Geo field inside the box from its north-west corner (``north``, ``west``) to its
    south-east corner (``south``, ``east``); ``west > east`` crosses the antimeridian."""

    key: str
    north: float
    west: float
    south: float
    east: float


Condition = Union[Match, Range, HasId, GeoRadius, GeoBox]


@dataclass(frozen=True)
class Filter:
    """All of ``must`` and none of ``must_not``; an empty filter matches everything."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.must or self.must_not)

    def excluding(self, *conditions: Condition) -> Filter:
        return Filter(self.must, self.must_not + tuple(conditions))


@dataclass(frozen=True)
class Page:
    hits: list[Hit]
    next_offset: str | None  # pass back to ``scroll`` for the next page; None at the end


@runtime_checkable
class VectorStore(Protocol):
    """What mmsearch needs from a vector database, nothing more."""

    backend: str  # "edge" or "server"
    collection: str
    dim: int

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points by id (idempotent)."""

    def delete(self, ids: Sequence[str]) -> None: ...

    def delete_where(self, flt: Filter) -> None: ...

    def query(
        self,
        vector: Vector,
        flt: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """Nearest points by cosine similarity, best first."""

    def query_batch(
        self,
        vectors: Sequence[Vector],
        flt: Filter | None = None,
        limit: int = 10,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """``query`` for many vectors in one engine call; one hit list per vector, in order."""

    def recommend(
        self,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        flt: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """More like ``positive`` ids, less like ``negative`` ids; the examples themselves are excluded."""

    def query_hybrid(
        self,
        vector: Vector | None,
        keywords: KeywordQuery | None,
        flt: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        fusion: str = "rrf",
        keyword_weight: float = 1.0,
        candidates: int = 100,
        dense_threshold: float | None = None,
    ) -> list[Hit]:
        """Dense similarity to ``vector`` and BM25 relevance to ``keywords`` as two prefetches
        of ``candidates`` each, fused by RRF (``keyword_weight`` weighs the keyword ranking) or
        DBSF, in one engine call; with one of the two missing, that one's own scores. Every
        quoted phrase of ``keywords`` ranks the points holding it first (a third, phrase-filtered
        keyword ranking of weight ``PHRASE_WEIGHT``). ``dense_threshold`` is a cosine cutoff on
        the dense candidates (keyword candidates pass it by matching)."""

    def keyword_scores(self, keywords: KeywordQuery, ids: Sequence[str]) -> dict[str, float]:
        """BM25 relevance of each of ``ids`` to ``keywords``; ids no keyword matches are absent."""

    def query_diverse(
        self,
        vector: Vector,
        flt: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        diversity: float = 0.5,
        candidates: int = 100,
        score_threshold: float | None = None,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """``query`` re-ranked by the engine's MMR (maximal marginal relevance) over the best
        ``candidates``: ``diversity`` 0 is plain relevance, 1 only variety."""

    def facet(self, key: str, flt: Filter | None = None, limit: int = 20) -> list[tuple[str | int | bool, int]]:
        """Exact counts of an indexed keyword/integer field's values among the points matching
        ``flt``, most frequent first (the engine's facet)."""

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        """Points by id, in the order asked; unknown ids are left out. ``score`` is 1.0."""

    def count(self, flt: Filter | None = None) -> int: ...

    def set_payload(self, updates: Mapping[str, Mapping[str, Any]]) -> int:
        """Merge fields into the payloads of existing points (id → fields); other fields stay.
        Ids that are unknown (or not UUIDs) are skipped; returns how many points were updated."""

    def ensure_indexes(self, fields: Mapping[str, FieldType]) -> list[str]:
        """Create the payload indexes the collection lacks; returns the fields newly indexed."""

    def read_record(self) -> dict[str, Any] | None:
        """The collection's own record (see ``search.store.schema``), None before one is written.
        The record is a reserved point that no other operation returns, counts or deletes."""

    def write_record(self, payload: Mapping[str, Any]) -> None: ...

    def scroll(
        self,
        flt: Filter | None = None,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> Page:
        """All points matching ``flt``, ordered by id, a page at a time."""

    def index_state(self) -> IndexState:
        """Points, how many are in the HNSW index, and whether a build runs now."""
        ...

    def request_index(self) -> None:
        """An ingest job ended: build the index if enough points await it (the server does it itself)."""
        ...

    def build_index(self, progress: Callable[[float], None] | None = None, force: bool = False) -> IndexRun | None:
        """Build the index now, blocking; None when one runs already, none is needed, or the
        backend indexes in the background by itself (the Qdrant server)."""
        ...

    def close(self) -> None: ...
