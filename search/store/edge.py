"""The embedded backend: one Qdrant Edge shard in-process, one folder per collection.

Edge is the Qdrant engine as a library, so search quality matches the server's, with no
service to run. Its folder admits one process at a time (the write-ahead log is locked),
which is why opening a busy folder raises StoreUnavailable explaining who owns it.
Durability: every write lands in Edge's write-ahead log before it returns, so a crashed
process loses nothing (the log is replayed on the next open). Segments are flushed to disk
when a write comes more than five seconds after the last flush, and on close. A flush fsyncs
every segment and index file (~190 files when we had 16 payload indexes; 0.1 to 0.7 s on a busy
virtual disk), far too slow for every batch; five seconds is the Qdrant server's own default
flush interval, so a power cut risks the same window on both backends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from search.errors import ConfigError, MMSearchError, StoreUnavailable
from search.payload import WORDS
from search.settings import IndexSettings
from search.store.base import FieldType, Filter, Hit, IndexRun, IndexState, Page, Point, Vector
from search.store.conversions import (
    RECORD_ID,
    check_examples,
    check_page,
    example_vectors,
    excluding_examples,
    known_ids,
    payload_groups,
    plain_payload,
    point_vector,
    query_vector,
    record_vector,
    require_id,
    scroll_cursor,
    visible,
    without_record,
)
from search.store.conversions_edge import SCHEMA_TYPES, to_filter, to_hit
from search.store.edge_config import search_params, shard_config
from search.store.hybrid_edge import add_keyword_vector, fused_request, keyword_request, lacks_keyword_vector, point_vectors
from search.store.keywords import WORDS_VECTOR, KeywordQuery, document_vector
from search.store.maintenance import IndexMaintainer, recover_folder

T = TypeVar("T")

_UPSERT_BATCH = 1024  # bounds the size of one update call; memory, not speed, sets it
_FLUSH_INTERVAL_S = 5.0  # as Qdrant server's optimizers.flush_interval_sec default
_JOURNAL_MAX_OPERATIONS = 1_000  # update calls (of up to _UPSERT_BATCH points) journaled per build
_HAS_KEYWORD_VECTOR = qe.CountRequest(exact=True, filter=qe.Filter(must=[qe.HasVectorCondition(WORDS_VECTOR)]))


class EdgeStore:
    """A VectorStore over a Qdrant Edge shard in ``path`` (created on first open)."""

    backend = "edge"

    def __init__(self, path: Path, collection: str, dim: int, index: IndexSettings | None = None) -> None:
        self.path = path
        self.collection = collection
        self.dim = dim
        self.index = index or IndexSettings()
        self._guard = threading.Lock()  # two threads closing at once close the shard once
        self._use = threading.RLock()  # held by every shard call; an index swap takes it alone
        self._writes = threading.Condition(threading.RLock())  # orders writes; a build's copy and swap hold it
        self._journal: list[qe.UpdateOperation] | None = None  # writes made while an index build runs
        self._last_flush = time.monotonic()
        self._dirty = False  # written since the last flush
        recover_folder(path)
        if lacks_keyword_vector(path, dim):  # made before schema version 3: rebuilt once, in place
            add_keyword_vector(path, dim, self.index)
        self._shard: qe.EdgeShard | None = _open_shard(path, dim, self.index)
        self.maintainer = IndexMaintainer(self, self.index)

    # -- writes ----------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace by id; the same points twice leave one copy."""
        converted = [_to_edge_point(p, self.dim) for p in points]
        for start in range(0, len(converted), _UPSERT_BATCH):
            batch = converted[start : start + _UPSERT_BATCH]
            self._write(qe.UpdateOperation.upsert_points(batch))

    def delete(self, ids: Sequence[str]) -> None:
        """Delete by id; ids that are unknown (or not UUIDs) are ignored."""
        valid = without_record(known_ids(ids))
        if valid:
            self._write(qe.UpdateOperation.delete_points(list(valid)))

    def delete_where(self, flt: Filter) -> None:
        """Delete everything ``flt`` matches; an empty filter is refused, not 'delete all'."""
        if not flt:
            raise ValueError("delete_where needs a non-empty filter; refusing to delete every point.")
        edge_filter = to_filter(visible(flt))
        assert edge_filter is not None  # visible() always adds a condition
        self._write(qe.UpdateOperation.delete_points_by_filter(edge_filter))

    def set_payload(self, updates: Mapping[str, Mapping[str, Any]]) -> int:
        """Merge fields into existing points' payloads; unknown ids are skipped."""
        existing = [hit.id for hit in self.retrieve(list(updates))]
        groups = payload_groups(updates, existing)
        for ids, fields in groups:
            point_ids: list[qe.PointId] = list(ids)
            self._write(qe.UpdateOperation.set_payload(point_ids, fields))
            self._set_keyword_vectors(point_ids, fields)
        return sum(len(ids) for ids, _ in groups)

    def _set_keyword_vectors(self, point_ids: list[qe.PointId], fields: Mapping[str, Any]) -> None:
        """New searchable words get their new keyword vector (or lose the old one)."""
        if WORDS not in fields:
            return
        words = document_vector(fields)
        if words is None:
            self._write(qe.UpdateOperation.delete_vectors(point_ids, [WORDS_VECTOR]))
            return
        vector = qe.SparseVector(words.indices, words.values)
        self._write(qe.UpdateOperation.update_vectors([qe.PointVectors(i, {WORDS_VECTOR: vector}) for i in point_ids]))

    def ensure_indexes(self, fields: Mapping[str, FieldType]) -> list[str]:
        """Index every field asked for; a field already indexed is left alone."""
        existing = set(self._call(lambda shard: shard.info().payload_schema))
        missing = [name for name in fields if name not in existing]
        for name in missing:
            self._write(qe.UpdateOperation.create_field_index(name, SCHEMA_TYPES[fields[name]]))
        if missing:
            self.flush()
        return missing

    def read_record(self) -> dict[str, Any] | None:
        records = self._call(lambda shard: shard.retrieve([RECORD_ID], True, False))
        return dict(records[0].payload or {}) if records else None

    def write_record(self, payload: Mapping[str, Any]) -> None:
        self._write(qe.UpdateOperation.upsert_points([qe.Point(RECORD_ID, record_vector(self.dim), plain_payload(payload))]))
        self.flush()

    def flush(self) -> None:
        """Write pending segment changes to disk now (writes are already in the log)."""
        self._call(lambda shard: shard.flush())
        self._last_flush, self._dirty = time.monotonic(), False

    # -- the index (see search.store.maintenance) ------------------------------------------

    def index_state(self) -> IndexState:
        return self.maintainer.state()

    def request_index(self) -> None:
        """An ingest job ended: the maintainer builds the index if enough points await it."""
        self.maintainer.request()

    def build_index(self, progress: Callable[[float], None] | None = None, force: bool = False) -> IndexRun | None:
        """Build the index now, blocking (``mmsearch optimize``); None if one runs already or none is needed."""
        return self.maintainer.run(progress, force=force)

    def index_counts(self) -> tuple[int, int]:
        """(points, points whose dense vector is in an HNSW graph); segments below the threshold
        are searched exactly. Edge's ``indexed_vectors_count`` counts every named vector, and the
        BM25 keyword vectors are indexed on arrival, so those are taken off: counted as they
        were, a freshly written store looked indexed and no build ever started."""
        info = self._call(lambda shard: shard.info())
        hidden = 1 if self.read_record() is not None else 0  # the collection's own record point
        points = max(0, info.points_count - hidden)
        with_keywords = self._call(lambda shard: shard.count(_HAS_KEYWORD_VECTOR))
        return points, max(0, min(points, info.indexed_vectors_count - with_keywords))

    def begin_journal(self, copy: Callable[[], None]) -> None:
        """Flush, run ``copy`` of the folder with writes paused, then journal the writes that follow."""
        with self._writes:
            self.flush()
            copy()
            self._journal = []

    def end_journal(self) -> None:
        with self._writes:
            self._journal = None
            self._writes.notify_all()

    def swap_in(
        self,
        building: Path,
        replace: Callable[[qe.EdgeShard, Path, list[qe.UpdateOperation]], qe.EdgeShard],
    ) -> None:
        """Replace the live shard by the built one, with writes and queries paused meanwhile."""
        with self._writes, self._use:
            live, journal = self._shard, self._journal or []
            if live is None:
                raise StoreUnavailable(f"The embedded vector store at {self.path} has been closed.")
            self._shard = None
            try:
                self._shard = replace(live, building, journal)
            except BaseException:
                self._shard = _open_shard(self.path, self.dim, self.index)  # the folder as it was
                raise
            self._last_flush, self._dirty = time.monotonic(), False

    # -- reads -----------------------------------------------------------------------------

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
        check_page(limit, offset)
        nearest = qe.Query.Nearest(query_vector(vector, self.dim))
        return self._query(nearest, flt, limit, offset, score_threshold, with_vectors)

    def query_batch(
        self,
        vectors: Sequence[Vector],
        flt: Filter | None = None,
        limit: int = 10,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """Many nearest-neighbour queries planned as one batch (they share one pass over the segments)."""
        check_page(limit)
        if not vectors:
            return []
        edge_filter = to_filter(visible(flt))
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(query_vector(vector, self.dim)),
                filter=edge_filter,
                score_threshold=score_threshold,
                with_payload=True,
                with_vector=False,
                params=search_params(self.index),
            )
            for vector in vectors
        ]
        batch = qe.QueryBatchRequest(requests)
        return [[to_hit(p) for p in hits] for hits in self._call(lambda shard: shard.query_batch(batch))]

    def recommend(
        self,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        flt: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Edge's recommend query with the best-score strategy; the examples are excluded.

        Edge's recommend takes vectors, not ids, so the examples are retrieved first.
        best_score ranks a point by its closest positive, or negatively when a negative is
        closer still; with one positive and no negative it is plain cosine similarity.
        """
        check_page(limit, offset)
        pos, neg = check_examples(positive, negative)
        vectors = example_vectors(self.retrieve(pos + neg, with_vectors=True), pos + neg)
        query = qe.Query.RecommendBestScore(
            qe.RecommendQuery(positives=[vectors[i] for i in pos], negatives=[vectors[i] for i in neg])
        )
        return self._query(query, excluding_examples(flt, pos + neg), limit, offset, score_threshold, False)

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
        """Dense similarity and keyword relevance fused in one engine call (see hybrid_edge)."""
        check_page(limit, offset)
        pool = max(candidates, limit + offset)
        request = fused_request(
            vector, keywords, flt, self.dim, self.index, limit, offset, fusion, keyword_weight, pool, dense_threshold
        )
        return [to_hit(p) for p in self._call(lambda shard: shard.query(request))]

    def keyword_scores(self, keywords: KeywordQuery, ids: Sequence[str]) -> dict[str, float]:
        """BM25 relevance of each of ``ids`` (absent: no keyword matched)."""
        request = keyword_request(keywords, without_record(known_ids(ids)))
        if request is None:
            return {}
        return {str(p.id): float(p.score) for p in self._call(lambda shard: shard.query(request))}

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        """Points by id in the order asked; unknown ids are left out."""
        wanted = without_record(known_ids(ids))
        if not wanted:
            return []
        records = self._call(lambda shard: shard.retrieve(list(dict.fromkeys(wanted)), True, with_vectors))
        by_id = {hit.id: hit for hit in (to_hit(r, 1.0) for r in records)}
        return [by_id[i] for i in wanted if i in by_id]

    def count(self, flt: Filter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=to_filter(visible(flt)))
        return self._call(lambda shard: shard.count(request))

    def scroll(
        self,
        flt: Filter | None = None,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> Page:
        """One page of points ordered by id; pass ``next_offset`` back for the next one."""
        check_page(limit)
        request = qe.ScrollRequest(
            offset=scroll_cursor(offset),
            limit=limit,
            filter=to_filter(visible(flt)),
            with_payload=True,
            with_vector=with_vectors,
        )
        records, next_offset = self._call(lambda shard: shard.scroll(request))
        return Page([to_hit(r, 1.0) for r in records], None if next_offset is None else str(next_offset))

    # -- structured results: diversity and facets ------------------------------------------

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
        """Nearest points re-ranked by the engine's MMR over the best ``candidates``."""
        check_page(limit, offset)
        mmr: Any = qe.Mmr(query_vector(vector, self.dim), 1.0 - diversity, max(candidates, limit + offset))  # a scoring query
        return self._query(mmr, flt, limit, offset, score_threshold, with_vectors)

    def facet(self, key: str, flt: Filter | None = None, limit: int = 20) -> list[tuple[str | int | bool, int]]:
        """Exact counts of ``key``'s values among the points matching ``flt``, most frequent first."""
        request = qe.FacetRequest(key, limit=limit, exact=True, filter=to_filter(visible(flt)))
        response = self._call(lambda shard: shard.facet(request))
        return [(hit.value, int(hit.count)) for hit in response.hits]

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Flush and release the folder so another process may open it; safe to call twice.

        A running index build is abandoned: the live folder already holds every write."""
        self.maintainer.close()
        with self._guard, self._use:
            shard, self._shard = self._shard, None
        if shard is not None:
            with _engine_errors(self.path):
                if self._dirty:
                    shard.flush()
                shard.close()

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _query(
        self,
        query: qe.Query,
        flt: Filter | None,
        limit: int,
        offset: int,
        score_threshold: float | None,
        with_vectors: bool,
    ) -> list[Hit]:
        request = qe.QueryRequest(
            limit=limit,
            offset=offset,
            query=query,
            filter=to_filter(visible(flt)),
            score_threshold=score_threshold,
            with_payload=True,
            with_vector=with_vectors,
            params=search_params(self.index),
        )
        return [to_hit(p) for p in self._call(lambda shard: shard.query(request))]

    def _write(self, operation: qe.UpdateOperation) -> None:
        """Apply one update, journaled while an index build runs (a full journal waits for it);
        flush too when the last flush is over ``_FLUSH_INTERVAL_S`` old."""
        with self._writes:
            while self._journal is not None and len(self._journal) >= _JOURNAL_MAX_OPERATIONS:
                self._writes.wait(timeout=1.0)
            self._call(lambda shard: shard.update(operation))
            if self._journal is not None:
                self._journal.append(operation)
            self._dirty = True
            if time.monotonic() - self._last_flush >= _FLUSH_INTERVAL_S:
                self.flush()
        self.maintainer.note_write()

    def _call(self, action: Callable[[qe.EdgeShard], T]) -> T:
        """Run ``action`` on the open shard; engine failures become StoreUnavailable."""
        with self._use:
            shard = self._shard
            if shard is None:
                raise StoreUnavailable(f"The embedded vector store at {self.path} has been closed.")
            with _engine_errors(self.path):
                return action(shard)


def _to_edge_point(point: Point, dim: int) -> qe.Point:
    point_id = require_id(point.id)
    payload = plain_payload(point.payload)
    return qe.Point(point_id, point_vectors(point_vector(point.vector, dim, point_id), payload), payload)


def _open_shard(path: Path, dim: int, index: IndexSettings) -> qe.EdgeShard:
    """Load the shard in ``path``, or create it there when the folder holds none yet."""
    config = shard_config(dim, index)
    try:
        if _holds_shard(path):
            return qe.EdgeShard.load(str(path), config)
        path.mkdir(parents=True, exist_ok=True)
        return qe.EdgeShard.create(str(path), config)
    except MMSearchError:
        raise
    except Exception as exc:  # qdrant_edge raises bare Exception; the message says why
        raise _open_error(path, dim, exc) from exc


def _holds_shard(path: Path) -> bool:
    segments = path / "segments"
    return (path / "edge_config.json").exists() or (segments.is_dir() and any(segments.iterdir()))


def _open_error(path: Path, dim: int, exc: Exception) -> MMSearchError:
    """Explain an Edge open failure in terms of what the user can do about it."""
    text = str(exc)
    if "WouldBlock" in text or "lock" in text.lower():
        return StoreUnavailable(
            f"The embedded vector store at {path} is in use by another mmsearch process "
            "(the API server or a CLI ingest job); Qdrant Edge lets one process open it at a time. "
            "Stop that process, or send this work through it (for example, ingest via the API), "
            "or run a Qdrant server and point every process at it with "
            "MMSEARCH_STORE_URL=http://HOST:6333."
        )
    if "incompatible" in text.lower():
        return ConfigError(
            f"The embedded vector store at {path} was created with other vector settings than "
            f"this model's ({dim} dimensions, cosine): {text}. Use another data directory or "
            "delete that folder and re-index."
        )
    return StoreUnavailable(f"Cannot open the embedded vector store at {path}: {text}")


@contextmanager
def _engine_errors(path: Path) -> Iterator[None]:
    """Edge raises bare Exception for engine failures (disk full, closed shard, ...)."""
    try:
        yield
    except (MMSearchError, ValueError, TypeError):
        raise
    except Exception as exc:
        raise StoreUnavailable(f"The embedded vector store at {path} failed: {exc}") from exc
