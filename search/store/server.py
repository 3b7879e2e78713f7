"""The server backend: a collection on a Qdrant server or cluster, through qdrant-client.

The same class runs over qdrant-client's local mode (``QdrantClient(path=...)``), which
qdrant-client keeps congruent with the server; the contract tests use it as the server's
stand-in, since no Qdrant server runs here. Every call goes through ``_call``, the one
place where transport and HTTP failures become mmsearch errors that name the URL.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from search.errors import BadQuery, ConfigError, MMSearchError, StoreUnavailable
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
from search.store.conversions_server import SCHEMA_TYPES, to_filter, to_hit
from search.store.edge_config import points_to_kb
from search.store.hybrid_server import (
    KEYWORD_VECTORS,
    add_keyword_vector,
    fused_query,
    has_keyword_vector,
    keyword_query,
    point_vectors,
    resume,
    spare_exists,
)
from search.store.keywords import WORDS_VECTOR, KeywordQuery, document_vector

T = TypeVar("T")

_UPSERT_BATCH = 256  # keeps one request well under the server's 32 MiB body limit at any dim
_PAYLOAD_BATCH = 256  # set-payload operations per request
_TIMEOUT_S = 30  # waited-for writes can take seconds while the server optimises segments
_LOCAL_INDEX_WARNING = "Payload indexes have no effect in the local Qdrant"


class ServerStore:
    """A VectorStore over one collection reached through a ``QdrantClient``."""

    backend = "server"

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        dim: int,
        where: str,
        serialize: bool = False,
        index: IndexSettings | None = None,
    ) -> None:
        """``where`` names the server (URL or folder) in error messages; ``serialize`` makes
        calls take turns, for local mode, which is not safe to use from several threads."""
        self.collection = collection
        self.dim = dim
        self.where = where
        self.index = index or IndexSettings()
        self._client: QdrantClient | None = client
        self._serial = threading.Lock() if serialize else None
        self._ensure_collection()

    # -- writes ----------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace by id, waiting until applied; the same points twice leave one copy."""
        converted = [_to_point_struct(p, self.dim) for p in points]
        for start in range(0, len(converted), _UPSERT_BATCH):
            batch = converted[start : start + _UPSERT_BATCH]
            self._call(lambda c: c.upsert(self.collection, points=batch, wait=True))

    def delete(self, ids: Sequence[str]) -> None:
        """Delete by id; ids that are unknown (or not UUIDs) are ignored."""
        valid = without_record(known_ids(ids))
        if valid:
            selector = models.PointIdsList(points=list(valid))
            self._call(lambda c: c.delete(self.collection, points_selector=selector, wait=True))

    def delete_where(self, flt: Filter) -> None:
        """Delete everything ``flt`` matches; an empty filter is refused, not 'delete all'."""
        if not flt:
            raise ValueError("delete_where needs a non-empty filter; refusing to delete every point.")
        server_filter = to_filter(visible(flt))
        assert server_filter is not None  # visible() always adds a condition
        selector = models.FilterSelector(filter=server_filter)
        self._call(lambda c: c.delete(self.collection, points_selector=selector, wait=True))

    def set_payload(self, updates: Mapping[str, Mapping[str, Any]]) -> int:
        """Merge fields into existing points' payloads, a batch of operations per request;
        unknown ids are skipped."""
        existing = [hit.id for hit in self.retrieve(list(updates))]
        groups = payload_groups(updates, existing)
        operations: list[Any] = [
            models.SetPayloadOperation(set_payload=models.SetPayload(payload=fields, points=list(ids))) for ids, fields in groups
        ]
        operations += [op for ids, fields in groups for op in _keyword_vector_updates(ids, fields)]
        for start in range(0, len(operations), _PAYLOAD_BATCH):
            batch = operations[start : start + _PAYLOAD_BATCH]
            self._call(lambda c: c.batch_update_points(self.collection, update_operations=batch, wait=True))
        return sum(len(ids) for ids, _ in groups)

    def ensure_indexes(self, fields: Mapping[str, FieldType]) -> list[str]:
        """Create the payload indexes the server lacks. Local mode keeps no payload schema (it
        ignores indexes, with a warning, which is silenced), so there every field is asked for."""
        info = self._call(lambda c: c.get_collection(self.collection))
        existing = set(info.payload_schema or {})
        missing = [name for name in fields if name not in existing]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_LOCAL_INDEX_WARNING)
            for name in missing:
                schema = SCHEMA_TYPES[fields[name]]
                self._call(lambda c: c.create_payload_index(self.collection, name, field_schema=schema, wait=True))
        return missing

    def read_record(self) -> dict[str, Any] | None:
        records = self._call(lambda c: c.retrieve(self.collection, ids=[RECORD_ID], with_payload=True, with_vectors=False))
        return dict(records[0].payload or {}) if records else None

    def write_record(self, payload: Mapping[str, Any]) -> None:
        point = models.PointStruct(id=RECORD_ID, vector=record_vector(self.dim), payload=plain_payload(payload))
        self._call(lambda c: c.upsert(self.collection, points=[point], wait=True))

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
        """Nearest points by cosine similarity, best first (Query API, nearest query)."""
        check_page(limit, offset)
        nearest = models.NearestQuery(nearest=query_vector(vector, self.dim))
        return self._query(nearest, flt, limit, offset, score_threshold, with_vectors)

    def query_batch(
        self,
        vectors: Sequence[Vector],
        flt: Filter | None = None,
        limit: int = 10,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """Many nearest-neighbour queries in one request (the Query API's batch)."""
        check_page(limit)
        if not vectors:
            return []
        server_filter = to_filter(visible(flt))
        requests = [
            models.QueryRequest(
                query=models.NearestQuery(nearest=query_vector(vector, self.dim)),
                filter=server_filter,
                limit=limit,
                score_threshold=score_threshold,
                with_payload=True,
                with_vector=False,
                params=None if self._serial is not None else self._search_params,
            )
            for vector in vectors
        ]
        responses = self._call(lambda c: c.query_batch_points(self.collection, requests=requests))
        return [[to_hit(p) for p in response.points] for response in responses]

    def recommend(
        self,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        flt: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """The Query API's recommend with the best-score strategy, as Edge runs it.

        The examples' vectors are fetched first and sent as vectors, so a missing example is
        our NotFound (naming it) rather than a server error, exactly as on Edge.
        """
        check_page(limit, offset)
        pos, neg = check_examples(positive, negative)
        vectors = example_vectors(self.retrieve(pos + neg, with_vectors=True), pos + neg)
        query = models.RecommendQuery(
            recommend=models.RecommendInput(
                positive=[vectors[i] for i in pos],
                negative=[vectors[i] for i in neg],
                strategy=models.RecommendStrategy.BEST_SCORE,
            )
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
        """Dense similarity and keyword relevance fused in one request (see hybrid_server)."""
        check_page(limit, offset)
        params = None if self._serial is not None else self._search_params
        pool = max(candidates, limit + offset)
        args = fused_query(vector, keywords, flt, self.dim, params, fusion, keyword_weight, pool, dense_threshold)
        response = self._call(
            lambda c: c.query_points(self.collection, limit=limit, offset=offset, with_payload=True, with_vectors=False, **args)
        )
        return [to_hit(p) for p in response.points]

    def keyword_scores(self, keywords: KeywordQuery, ids: Sequence[str]) -> dict[str, float]:
        """BM25 relevance of each of ``ids`` (absent: no keyword matched)."""
        args = keyword_query(keywords, without_record(known_ids(ids)))
        if args is None:
            return {}
        response = self._call(lambda c: c.query_points(self.collection, with_payload=False, **args))
        return {str(p.id): float(p.score) for p in response.points}

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        """Points by id in the order asked; unknown ids are left out."""
        wanted = without_record(known_ids(ids))
        if not wanted:
            return []
        unique = list(dict.fromkeys(wanted))
        records = self._call(lambda c: c.retrieve(self.collection, ids=unique, with_payload=True, with_vectors=with_vectors))
        by_id = {hit.id: hit for hit in (to_hit(r, 1.0) for r in records)}
        return [by_id[i] for i in wanted if i in by_id]

    def count(self, flt: Filter | None = None) -> int:
        result = self._call(lambda c: c.count(self.collection, count_filter=to_filter(visible(flt)), exact=True))
        return int(result.count)

    def scroll(
        self,
        flt: Filter | None = None,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> Page:
        """One page of points ordered by id; pass ``next_offset`` back for the next one."""
        check_page(limit)
        cursor = scroll_cursor(offset)
        records, next_offset = self._call(
            lambda c: c.scroll(
                self.collection,
                scroll_filter=to_filter(visible(flt)),
                limit=limit,
                offset=cursor,
                with_payload=True,
                with_vectors=with_vectors,
            )
        )
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
        mmr = models.Mmr(diversity=diversity, candidates_limit=max(candidates, limit + offset))
        nearest = models.NearestQuery(nearest=query_vector(vector, self.dim), mmr=mmr)
        return self._query(nearest, flt, limit, offset, score_threshold, with_vectors)

    def facet(self, key: str, flt: Filter | None = None, limit: int = 20) -> list[tuple[str | int | bool, int]]:
        """Exact counts of ``key``'s values among the points matching ``flt``, most frequent first."""
        response = self._call(
            lambda c: c.facet(self.collection, key=key, facet_filter=to_filter(visible(flt)), limit=limit, exact=True)
        )
        return [(hit.value, int(hit.count)) for hit in response.hits]

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connection (or, in local mode, the folder lock); safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> ServerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _query(
        self,
        query: models.NearestQuery | models.RecommendQuery,
        flt: Filter | None,
        limit: int,
        offset: int,
        score_threshold: float | None,
        with_vectors: bool,
    ) -> list[Hit]:
        response = self._call(
            lambda c: c.query_points(
                self.collection,
                query=query,
                query_filter=to_filter(visible(flt)),
                limit=limit,
                offset=offset,
                score_threshold=score_threshold,
                with_payload=True,
                with_vectors=with_vectors,
                search_params=None if self._serial is not None else self._search_params,  # local mode is exact
            )
        )
        return [to_hit(p) for p in response.points]

    # -- the index: the server's optimizer builds it in the background -----------------------

    def index_state(self) -> IndexState:
        info = self._call(lambda c: c.get_collection(self.collection))
        points = max(0, (info.points_count or 0) - (1 if self.read_record() is not None else 0))
        # The count covers every named vector; the BM25 keyword vectors are indexed on arrival
        # (as on Edge, see EdgeStore.index_counts), so they are taken off to count dense ones.
        keyword_filter = models.Filter(must=[models.HasVectorCondition(has_vector=WORDS_VECTOR)])
        with_keywords = self._call(lambda c: c.count(self.collection, count_filter=keyword_filter, exact=True)).count
        indexed = max(0, min(points, (info.indexed_vectors_count or 0) - with_keywords))
        return IndexState(points, indexed, info.status == models.CollectionStatus.YELLOW, True, None)

    def request_index(self) -> None:
        """Nothing to do: the server indexes in the background by itself."""

    def build_index(self, progress: Callable[[float], None] | None = None, force: bool = False) -> IndexRun | None:
        return None

    @property
    def _search_params(self) -> models.SearchParams:
        quantization = (
            models.QuantizationSearchParams(rescore=self.index.rescore, oversampling=self.index.oversampling)
            if self.index.quantization == "int8"
            else None
        )
        return models.SearchParams(hnsw_ef=self.index.hnsw_ef, quantization=quantization)

    def _call(self, action: Callable[[QdrantClient], T]) -> T:
        """Run ``action`` with the client, turning failures into errors that name the server."""
        client = self._client
        if client is None:
            raise StoreUnavailable(f"The connection to the vector store at {self.where} has been closed.")
        turn: ContextManager[Any] = self._serial if self._serial is not None else nullcontext()
        with turn, _server_errors(self.where):
            return action(client)

    def _ensure_collection(self) -> None:
        """Create the collection on first use and check its vector size."""
        exists = self._call(lambda c: c.collection_exists(self.collection))
        if not exists and self._call(lambda c: spare_exists(c, self.collection)):
            self._layout(lambda c: resume(c, self.collection, self._create_collection))  # a copy-back was cut short
        elif not exists:
            self._create_collection()
        info = self._call(lambda c: c.get_collection(self.collection))
        self._check_vectors(info.config.params.vectors)
        self._ensure_keyword_vector()

    def _ensure_keyword_vector(self) -> None:
        """A collection made before schema version 3 gets the keyword vector (a copy out and back)."""
        if not self._call(lambda c: has_keyword_vector(c, self.collection)):
            self._layout(lambda c: add_keyword_vector(c, self.collection, self._create_collection))
        elif self._call(lambda c: spare_exists(c, self.collection)):
            self._layout(lambda c: resume(c, self.collection, self._create_collection))

    def _layout(self, action: Callable[[QdrantClient], int]) -> None:
        """A layout change while the store opens (no other caller yet): ``action`` calls back
        into ``_create_collection``, which takes the call lock itself, so it runs without it."""
        client = self._client
        assert client is not None  # only called from __init__
        with _server_errors(self.where):
            action(client)

    def _create_collection(self, name: str | None = None) -> None:
        params = models.VectorParams(size=self.dim, distance=models.Distance.COSINE)
        threshold_kb = points_to_kb(self.index.threshold_points, self.dim)
        hnsw = models.HnswConfigDiff(
            m=self.index.hnsw_m, ef_construct=self.index.hnsw_ef_construct, full_scan_threshold=threshold_kb
        )
        quantization = (
            models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
            if self.index.quantization == "int8"
            else None
        )
        optimizers = models.OptimizersConfigDiff(indexing_threshold=threshold_kb)
        try:
            self._call(
                lambda c: c.create_collection(
                    name or self.collection,
                    vectors_config=params,
                    sparse_vectors_config=KEYWORD_VECTORS,
                    hnsw_config=hnsw,
                    quantization_config=quantization,
                    optimizers_config=optimizers,
                )
            )
        except BadQuery:  # 409-like: another process created it between our check and create
            if not self._call(lambda c: c.collection_exists(name or self.collection)):
                raise

    def _check_vectors(self, vectors: Any) -> None:
        """A collection made for another dimension or distance cannot serve this model."""
        params = vectors.get("") if isinstance(vectors, dict) else vectors
        if params is None or params.size != self.dim or params.distance != models.Distance.COSINE:
            found = "named vectors only" if params is None else f"{params.size} dimensions, {params.distance.value}"
            raise ConfigError(
                f"Collection {self.collection!r} at {self.where} holds vectors of {found}, but the "
                f"model needs {self.dim} dimensions with cosine distance. Point MMSEARCH_STORE_URL "
                "at another server, or delete that collection and re-index."
            )


def open_remote(url: str, api_key: str | None, collection: str, dim: int, index: IndexSettings | None = None) -> ServerStore:
    """A store on the Qdrant server at ``url``; unreachable servers raise StoreUnavailable."""
    client = QdrantClient(url=url, api_key=api_key, timeout=_TIMEOUT_S, check_compatibility=False)
    return _with_client(client, collection, dim, url, serialize=False, index=index)


def open_local(path: Path | None, collection: str, dim: int, index: IndexSettings | None = None) -> ServerStore:
    """A store in qdrant-client's local mode: in ``path``, or in memory when ``path`` is None."""
    where = "memory://" if path is None else f"local://{path}"
    try:
        if path is None:
            client = QdrantClient(location=":memory:")
        else:
            path.mkdir(parents=True, exist_ok=True)
            client = QdrantClient(path=str(path), force_disable_check_same_thread=True)
    except RuntimeError as exc:  # portalocker: the folder is held by another client
        raise StoreUnavailable(
            f"The local Qdrant folder {path} is in use by another process; it admits one at a time. "
            "Stop that process, or run a Qdrant server and set MMSEARCH_STORE_URL=http://HOST:6333."
        ) from exc
    return _with_client(client, collection, dim, where, serialize=True, index=index)


def _with_client(
    client: QdrantClient, collection: str, dim: int, where: str, serialize: bool, index: IndexSettings | None
) -> ServerStore:
    """Build the store, closing the client if the collection cannot be set up."""
    try:
        return ServerStore(client, collection, dim, where, serialize=serialize, index=index)
    except BaseException:
        client.close()
        raise


def _to_point_struct(point: Point, dim: int) -> models.PointStruct:
    point_id = require_id(point.id)
    payload = plain_payload(point.payload)
    return models.PointStruct(
        id=point_id, vector=point_vectors(point_vector(point.vector, dim, point_id), payload), payload=payload
    )


def _keyword_vector_updates(ids: Sequence[str], fields: Mapping[str, Any]) -> list[Any]:
    """New searchable words get their new keyword vector (or lose the old one)."""
    if WORDS not in fields:
        return []
    words = document_vector(fields)
    if words is None:
        return [models.DeleteVectorsOperation(delete_vectors=models.DeleteVectors(points=list(ids), vector=[WORDS_VECTOR]))]
    vector = models.SparseVector(indices=words.indices, values=words.values)
    update = models.UpdateVectors(points=[models.PointVectors(id=i, vector={WORDS_VECTOR: vector}) for i in ids])
    return [models.UpdateVectorsOperation(update_vectors=update)]


@contextmanager
def _server_errors(where: str) -> Iterator[None]:
    """Map qdrant-client failures: unreachable or failing server → StoreUnavailable (worth a
    retry), rejected credentials → ConfigError, a rejected request → BadQuery."""
    try:
        yield
    except (MMSearchError, TypeError):
        raise
    except ResponseHandlingException as exc:
        raise StoreUnavailable(
            f"Cannot reach the Qdrant server at {where}: {exc}. Is it running, and is MMSEARCH_STORE_URL right?"
        ) from exc
    except UnexpectedResponse as exc:
        raise _http_error(where, exc) from exc
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise StoreUnavailable(f"Cannot reach the Qdrant server at {where}: {exc}") from exc


def _http_error(where: str, exc: UnexpectedResponse) -> MMSearchError:
    status = exc.status_code or 0
    detail = exc.content.decode("utf-8", "replace")[:300] if exc.content else exc.reason_phrase
    if status in (401, 403):
        return ConfigError(f"The Qdrant server at {where} refused access (HTTP {status}); check MMSEARCH_STORE_API_KEY.")
    if status in (400, 409, 422):
        return BadQuery(f"The Qdrant server at {where} rejected the request (HTTP {status}): {detail}")
    return StoreUnavailable(f"The Qdrant server at {where} failed (HTTP {status}): {detail}")
