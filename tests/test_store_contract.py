"""One contract, two backends: Qdrant Edge and qdrant-client (local mode standing in for the server).

Every behavioural test runs against both backends through ``open_store`` and checks the
answer against a numpy reference computed from the same seeded points, so passing on both
means both agree with each other too; ``test_both_backends_give_identical_results`` checks
that directly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pytest

from search.errors import BadQuery, ConfigError, NotFound, StoreUnavailable
from search.ids import media_id, point_id
from search.payload import (
    INDEXED_FIELDS,
    SCHEMA_VERSION,
    CollectionRecord,
    FieldType,
    FramePayload,
    ImagePayload,
    ProductPayload,
    SegmentPayload,
    normalise_payload,
)
from search.settings import load_settings
from search.store import (
    Filter,
    HasId,
    Hit,
    Match,
    Point,
    Range,
    VectorStore,
    collection_name,
    open_store,
)
from search.store.schema import ensure_schema, schema_version

DIM = 64
N_POINTS = 300
MODEL = "test-model:contract"
BACKENDS = ("edge", "server")
SCORE_TOL = 1e-4

KINDS = ("image", "frame", "segment", "product")
CATEGORIES = ("shoes", "bags", "hats", "coats", "watches")
DAY = 86_400.0
T0 = 1_577_836_800.0  # 2020-01-01 UTC


# -- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """The seeded points and their unit vectors, the reference every answer is checked against."""

    points: list[Point]
    unit: np.ndarray  # (n, DIM) L2-normalised, row i belongs to points[i]

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.points]

    def index(self, pid: str) -> int:
        return self.ids.index(pid)

    def select(self, keep: Callable[[dict], bool]) -> np.ndarray:
        """Row mask of points whose payload passes ``keep``."""
        return np.array([keep(dict(p.payload)) for p in self.points])

    def nearest(self, query: np.ndarray, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """All (id, cosine) pairs passing ``mask``, best first: the exact answer to a query."""
        scores = self.unit @ (query / np.linalg.norm(query))
        return self._ranked(scores, mask)

    def best_score(self, positive: list[str], negative: list[str]) -> list[tuple[str, float]]:
        """Qdrant's best_score recommend, from its definition: the closest positive's similarity
        squashed into (0, 1) when it beats the closest negative, else minus the squashed
        closest negative similarity."""
        pos = np.max(self.unit @ self.unit[[self.index(i) for i in positive]].T, axis=1)
        scores = squash(pos)
        if negative:
            neg = np.max(self.unit @ self.unit[[self.index(i) for i in negative]].T, axis=1)
            scores = np.where(pos > neg, squash(pos), -squash(neg))
        mask = ~np.isin(np.array(self.ids), positive + negative)
        return self._ranked(scores, mask)

    def _ranked(self, scores: np.ndarray, mask: np.ndarray | None) -> list[tuple[str, float]]:
        order = np.argsort(-scores, kind="stable")
        return [(self.ids[i], float(scores[i])) for i in order if mask is None or mask[i]]


def squash(similarity: np.ndarray) -> np.ndarray:
    """Qdrant's scaled fast sigmoid, which best_score applies to similarities."""
    return 0.5 * (similarity / (1.0 + np.abs(similarity)) + 1.0)


def _payload(i: int, rng: np.random.Generator) -> dict:
    kind = KINDS[i % len(KINDS)]
    year = 2020 + i % 4
    payload = {
        "kind": kind,
        "source": f"src-{i % 3}",
        "media_id": media_id(f"file:///photos/{i}.jpg"),
        "dirs": ["/photos", f"/photos/{year}", f"/photos/{year}/{'trip' if i % 5 == 0 else 'home'}"],
        "category": CATEGORIES[i % len(CATEGORIES)],
        "brand": f"brand-{i % 7}",
        "taken_at": T0 + float(i) * DAY,
        "size_bytes": 1000 + i * 17,
        "width": (640, 800, 1024)[i % 3],
        "height": 480,
        "price": round(float(rng.uniform(5, 500)), 2),
        "title": f"item {i}",
    }
    if kind == "frame":
        payload["t"] = float(i % 60)
    return payload


def _make_corpus(seed: int = 7) -> Corpus:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N_POINTS, DIM)).astype(np.float32)
    points = []
    for i in range(N_POINTS):
        payload = _payload(i, rng)
        pid = point_id(MODEL, payload["media_id"], payload["kind"], payload.get("t"))
        points.append(Point(pid, vectors[i], payload))
    unit = vectors.astype(np.float64) / np.linalg.norm(vectors, axis=1, keepdims=True)
    return Corpus(points, unit)


CORPUS = _make_corpus()
QUERIES = np.random.default_rng(99).standard_normal((5, DIM)).astype(np.float32)


# -- stores -----------------------------------------------------------------------------


def _url(backend: str, root: Path) -> str:
    return f"edge://{root / 'edge'}" if backend == "edge" else f"local://{root / 'local'}"


def _open(backend: str, root: Path, dim: int = DIM, model: str = MODEL) -> VectorStore:
    return open_store(load_settings(store_url=_url(backend, root)), dim=dim, model=model)


def _open_unchecked(backend: str, root: Path) -> VectorStore:
    """The backend itself, as ``open_store`` builds it before the schema check: what an older
    mmsearch (or another writer) would have opened."""
    name = collection_name(MODEL, DIM)
    if backend == "edge":
        from search.store.edge import EdgeStore

        return EdgeStore(root / "edge" / name, name, DIM)
    from search.store.server import open_local

    return open_local(root / "local", name, DIM)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Empty, closed collections of both backends, made once: a first open builds every payload
    index, which costs seconds on a busy machine, so tests start from copies of these."""
    root = tmp_path_factory.mktemp("pristine")
    for backend in BACKENDS:
        _open(backend, root).close()
    return root


@pytest.fixture(scope="module")
def loaded_stores(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorStore]]:
    """One store per backend holding the whole corpus, shared by every read-only test."""
    root = Path(shutil.copytree(pristine, tmp_path_factory.mktemp("loaded") / "stores"))
    stores = {backend: _open(backend, root) for backend in BACKENDS}
    for store in stores.values():
        store.upsert(CORPUS.points)
    yield stores
    for store in stores.values():
        store.close()


@pytest.fixture(params=BACKENDS)
def loaded(request: pytest.FixtureRequest, loaded_stores: dict[str, VectorStore]) -> VectorStore:
    return loaded_stores[request.param]


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    """A folder of this test's own holding an empty store of each backend."""
    return Path(shutil.copytree(pristine, tmp_path / "stores"))


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, root: Path) -> Iterator[VectorStore]:
    """An empty store of its own, for tests that write."""
    store = _open(request.param, root)
    yield store
    store.close()


def _pairs(hits: list[Hit]) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in hits]


def _assert_same_ranking(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=SCORE_TOL)


# -- writes -----------------------------------------------------------------------------


def test_upserting_the_same_points_twice_keeps_one_copy_with_the_latest_payload(fresh: VectorStore) -> None:
    fresh.upsert(CORPUS.points[:50])
    changed = [Point(p.id, p.vector, {**p.payload, "brand": "renamed"}) for p in CORPUS.points[:50]]
    fresh.upsert(changed)
    assert fresh.count() == 50
    assert fresh.count(Filter((Match("brand", ("renamed",)),))) == 50


def test_delete_by_ids_removes_only_those_and_ignores_unknown_ids(fresh: VectorStore) -> None:
    fresh.upsert(CORPUS.points[:40])
    fresh.delete(CORPUS.ids[:10] + [str(uuid.uuid4()), "not-a-uuid"])
    assert fresh.count() == 30
    assert fresh.retrieve(CORPUS.ids[:10]) == []


def test_delete_where_removes_exactly_the_matching_points(fresh: VectorStore) -> None:
    fresh.upsert(CORPUS.points[:80])
    frames = Filter((Match("kind", ("frame",)),))
    fresh.delete_where(frames)
    assert fresh.count(frames) == 0
    assert fresh.count() == 60  # a quarter of the points are frames


def test_delete_where_refuses_an_empty_filter_instead_of_deleting_everything(fresh: VectorStore) -> None:
    fresh.upsert(CORPUS.points[:5])
    with pytest.raises(ValueError, match="non-empty filter"):
        fresh.delete_where(Filter())
    assert fresh.count() == 5


def test_upsert_rejects_points_that_could_not_be_searched(fresh: VectorStore) -> None:
    good = CORPUS.points[0]
    with pytest.raises(ValueError, match="expected 64 numbers"):
        fresh.upsert([Point(good.id, np.ones(DIM + 1), {})])
    with pytest.raises(ValueError, match="not a UUID"):
        fresh.upsert([Point("photo-1", good.vector, {})])
    with pytest.raises(ValueError, match="all zeros"):
        fresh.upsert([Point(good.id, np.zeros(DIM), {})])
    with pytest.raises(ValueError, match="NaN"):
        fresh.upsert([Point(good.id, np.full(DIM, np.nan), {})])
    assert fresh.count() == 0


def test_numpy_payload_values_are_stored_as_plain_json_values(fresh: VectorStore) -> None:
    p = CORPUS.points[0]
    payload = {"price": np.float32(9.5), "width": np.int64(640), "dirs": np.array(["/a", "/a/b"])}
    fresh.upsert([Point(p.id, p.vector, payload)])
    [hit] = fresh.retrieve([p.id])
    assert hit.payload == {"price": 9.5, "width": 640, "dirs": ["/a", "/a/b"]}
    assert fresh.count(Filter((Range("price", gte=9.5, lte=9.5),))) == 1


# -- query ------------------------------------------------------------------------------


def test_query_returns_the_exact_nearest_points_best_first(loaded: VectorStore) -> None:
    for q in QUERIES:
        _assert_same_ranking(_pairs(loaded.query(q, limit=15)), CORPUS.nearest(q)[:15])


def test_query_accepts_plain_float_lists(loaded: VectorStore) -> None:
    q = QUERIES[0]
    assert _pairs(loaded.query(q.tolist(), limit=5)) == _pairs(loaded.query(q, limit=5))


FILTER_CASES: dict[str, tuple[Filter, Callable[[dict], bool]]] = {
    "keyword any of": (
        Filter((Match("category", ("shoes", "hats")),)),
        lambda p: p["category"] in ("shoes", "hats"),
    ),
    "list field any element": (
        Filter((Match("dirs", ("/photos/2021/trip",)),)),
        lambda p: "/photos/2021/trip" in p["dirs"],
    ),
    "integer any of": (Filter((Match("width", (640, 1024)),)), lambda p: p["width"] in (640, 1024)),
    "price range inclusive": (
        Filter((Range("price", gte=50.0, lte=150.0),)),
        lambda p: 50.0 <= p["price"] <= 150.0,
    ),
    "date range half open": (
        Filter((Range("taken_at", gte=T0 + 30 * DAY, lt=T0 + 90 * DAY),)),
        lambda p: T0 + 30 * DAY <= p["taken_at"] < T0 + 90 * DAY,
    ),
    "strict bounds": (Filter((Range("taken_at", gt=T0, lt=T0 + 10 * DAY),)), lambda p: T0 < p["taken_at"] < T0 + 10 * DAY),
    "frames in a time window": (
        Filter((Match("kind", ("frame",)), Range("t", gte=10, lte=20))),
        lambda p: p["kind"] == "frame" and 10 <= p["t"] <= 20,
    ),
    "must not": (
        Filter(must_not=(Match("kind", ("product", "segment")),)),
        lambda p: p["kind"] not in ("product", "segment"),
    ),
    "has id": (
        Filter((HasId(tuple(CORPUS.ids[:20]) + ("not-a-uuid",)),)),
        lambda p: p["title"] in {f"item {i}" for i in range(20)},
    ),
    "not has id": (
        Filter(must_not=(HasId(tuple(CORPUS.ids[::2])),)),
        lambda p: int(p["title"].split()[1]) % 2 == 1,
    ),
    "combined": (
        Filter((Match("source", ("src-1",)), Range("price", lt=300.0)), (Match("brand", ("brand-3",)),)),
        lambda p: p["source"] == "src-1" and p["price"] < 300.0 and p["brand"] != "brand-3",
    ),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_each_filter_kind_selects_exactly_the_matching_points(loaded: VectorStore, case: str) -> None:
    flt, keep = FILTER_CASES[case]
    mask = CORPUS.select(keep)
    assert 0 < mask.sum() < N_POINTS, "the case must actually filter"
    assert loaded.count(flt) == int(mask.sum())
    _assert_same_ranking(_pairs(loaded.query(QUERIES[1], flt, limit=10)), CORPUS.nearest(QUERIES[1], mask)[:10])


def test_offset_skips_the_best_results(loaded: VectorStore) -> None:
    flt = Filter((Match("kind", ("image", "frame")),))
    whole = _pairs(loaded.query(QUERIES[2], flt, limit=12))
    assert _pairs(loaded.query(QUERIES[2], flt, limit=7, offset=5)) == whole[5:12]


def test_score_threshold_keeps_only_close_enough_points(loaded: VectorStore) -> None:
    expected = [pair for pair in CORPUS.nearest(QUERIES[3]) if pair[1] >= 0.2]
    hits = loaded.query(QUERIES[3], limit=N_POINTS, score_threshold=0.2)
    assert 0 < len(hits) < N_POINTS
    _assert_same_ranking(_pairs(hits), expected)


def test_query_returns_unit_float32_vectors_only_when_asked(loaded: VectorStore) -> None:
    with_vectors = loaded.query(QUERIES[0], limit=3, with_vectors=True)
    for hit in with_vectors:
        assert hit.vector is not None and hit.vector.dtype == np.float32 and hit.vector.shape == (DIM,)
        np.testing.assert_allclose(hit.vector, CORPUS.unit[CORPUS.index(hit.id)], atol=1e-6)
        assert isinstance(hit.payload, dict) and hit.payload["title"]
    assert all(h.vector is None for h in loaded.query(QUERIES[0], limit=3))


def test_bad_query_arguments_are_reported_as_bad_queries(loaded: VectorStore) -> None:
    with pytest.raises(BadQuery, match="expected 64 numbers"):
        loaded.query(np.ones(DIM - 1))
    with pytest.raises(BadQuery, match="limit"):
        loaded.query(QUERIES[0], limit=0)
    with pytest.raises(BadQuery, match="offset"):
        loaded.query(QUERIES[0], offset=-1)
    with pytest.raises(BadQuery, match="no values"):
        loaded.query(QUERIES[0], Filter((Match("kind", ()),)))


# -- recommend --------------------------------------------------------------------------


def test_recommend_ranks_by_best_score_and_never_returns_the_examples(loaded: VectorStore) -> None:
    positive, negative = CORPUS.ids[3:6], CORPUS.ids[10:12]
    hits = loaded.recommend(positive, negative, limit=20)
    assert not {h.id for h in hits} & set(positive + negative)
    _assert_same_ranking(_pairs(hits), CORPUS.best_score(positive, negative)[:20])


def test_recommend_from_one_example_ranks_by_squashed_cosine_similarity_to_it(loaded: VectorStore) -> None:
    example = CORPUS.ids[42]
    mask = np.array([i != example for i in CORPUS.ids])
    expected = [(i, float(squash(np.float64(s)))) for i, s in CORPUS.nearest(CORPUS.unit[42], mask)[:10]]
    _assert_same_ranking(_pairs(loaded.recommend([example], limit=10)), expected)


def test_recommend_honours_filter_offset_and_threshold(loaded: VectorStore) -> None:
    positive = CORPUS.ids[:2]
    flt = Filter((Match("category", ("bags", "coats")),))
    keep = set(np.array(CORPUS.ids)[CORPUS.select(lambda p: p["category"] in ("bags", "coats"))])
    expected = [pair for pair in CORPUS.best_score(positive, []) if pair[0] in keep]
    _assert_same_ranking(_pairs(loaded.recommend(positive, flt=flt, limit=5, offset=3)), expected[3:8])
    above = [pair for pair in expected if pair[1] >= 0.15]
    _assert_same_ranking(_pairs(loaded.recommend(positive, flt=flt, limit=N_POINTS, score_threshold=0.15)), above)


def test_recommend_from_unknown_or_no_examples_says_what_is_wrong(loaded: VectorStore) -> None:
    ghost = str(uuid.uuid4())
    with pytest.raises(NotFound, match=ghost):
        loaded.recommend([CORPUS.ids[0], ghost])
    with pytest.raises(NotFound, match="junk"):
        loaded.recommend(["junk"])
    with pytest.raises(BadQuery, match="positive"):
        loaded.recommend([], [CORPUS.ids[0]])


# -- retrieve, count, scroll ------------------------------------------------------------


def test_retrieve_keeps_the_order_asked_and_leaves_out_unknown_ids(loaded: VectorStore) -> None:
    asked = [CORPUS.ids[9], str(uuid.uuid4()), CORPUS.ids[2], "nonsense", CORPUS.ids[9].upper()]
    hits = loaded.retrieve(asked, with_vectors=True)
    assert [h.id for h in hits] == [CORPUS.ids[9], CORPUS.ids[2], CORPUS.ids[9]]
    assert all(h.score == 1.0 for h in hits)
    assert hits[1].payload == CORPUS.points[2].payload
    np.testing.assert_allclose(hits[1].vector, CORPUS.unit[2], atol=1e-6)
    assert loaded.retrieve([CORPUS.ids[0]])[0].vector is None
    assert loaded.retrieve([]) == []


def test_count_with_and_without_filter(loaded: VectorStore) -> None:
    assert loaded.count() == N_POINTS
    assert loaded.count(Filter()) == N_POINTS
    assert loaded.count(Filter((Match("kind", ("product",)),))) == N_POINTS // len(KINDS)


@pytest.mark.parametrize("flt", [None, Filter((Match("dirs", ("/photos/2022",)),))], ids=["all", "filtered"])
def test_scroll_visits_every_matching_point_exactly_once_in_id_order(loaded: VectorStore, flt: Filter | None) -> None:
    seen: list[str] = []
    offset = None
    pages = 0
    while True:
        page = loaded.scroll(flt, limit=64, offset=offset, with_vectors=pages == 0)
        seen += [h.id for h in page.hits]
        assert (page.hits[0].vector is not None) == (pages == 0)
        pages += 1
        if page.next_offset is None:
            break
        offset = page.next_offset
    expected = sorted(CORPUS.ids[i] for i in np.flatnonzero(CORPUS.select(lambda p: flt is None or "/photos/2022" in p["dirs"])))
    assert seen == expected  # ids as UUID strings sort in the engines' (128-bit integer) order
    assert pages == -(-len(expected) // 64)


def test_scroll_rejects_a_cursor_it_did_not_hand_out(loaded: VectorStore) -> None:
    with pytest.raises(BadQuery, match="cursor"):
        loaded.scroll(offset="page-2")


# -- lifecycle --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_reopening_after_close_keeps_points_vectors_and_payload(backend: str, root: Path) -> None:
    store = _open(backend, root)
    store.upsert(CORPUS.points[:100])
    store.delete(CORPUS.ids[:10])
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StoreUnavailable, match="closed"):
        store.count()
    again = _open(backend, root)
    try:
        assert again.count() == 90
        assert again.count(Filter((Match("kind", ("image",)),))) == sum(
            1 for p in CORPUS.points[10:100] if p.payload["kind"] == "image"
        )
        _assert_same_ranking(_pairs(again.query(QUERIES[0], limit=5)), CORPUS.nearest(QUERIES[0], _first(100, 10))[:5])
    finally:
        again.close()


def _first(n: int, skip: int) -> np.ndarray:
    mask = np.zeros(N_POINTS, dtype=bool)
    mask[skip:n] = True
    return mask


def test_edge_writes_survive_a_process_that_dies_without_closing(root: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_store_contract import CORPUS, _open
        store = _open("edge", Path({str(root)!r}))
        store.upsert(CORPUS.points[:25])
        os._exit(0)  # no close, no flush: only the write-ahead log has the points
        """
    )
    _run_python(script)
    store = _open("edge", root)
    try:
        assert store.count() == 25
        assert [h.id for h in store.retrieve(CORPUS.ids[:25])] == CORPUS.ids[:25]
    finally:
        store.close()


def _run_python(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter from the repository root, as another process would."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent
    )


def test_edge_store_keeps_each_collection_in_its_own_folder_with_every_index(root: Path) -> None:
    folder = root / "edge" / collection_name(MODEL, DIM)  # made by open_store in ``pristine``
    assert (folder / "edge_config.json").is_file()
    import qdrant_edge

    shard = qdrant_edge.EdgeShard.load(str(folder))
    try:
        assert set(INDEXED_FIELDS) <= set(shard.info().payload_schema)
    finally:
        shard.close()


def test_a_second_process_opening_the_edge_folder_gets_a_clear_store_unavailable(root: Path) -> None:
    store = _open("edge", root)
    try:
        script = textwrap.dedent(
            f"""
            from search.errors import StoreUnavailable
            from search.settings import load_settings
            from search.store import open_store
            try:
                open_store(load_settings(store_url={_url("edge", root)!r}), dim={DIM}, model={MODEL!r})
            except StoreUnavailable as exc:
                print("StoreUnavailable:", exc)
            """
        )
        done = _run_python(script)
        assert "StoreUnavailable:" in done.stdout, done.stderr
        assert "another mmsearch process" in done.stdout and "MMSEARCH_STORE_URL" in done.stdout
    finally:
        store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_existing_collection_with_another_vector_size_is_a_config_error(backend: str, tmp_path: Path) -> None:
    name = collection_name(MODEL, 32)
    if backend == "edge":
        import qdrant_edge as qe

        config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=48, distance=qe.Distance.Cosine))
        qe.EdgeShard.create(str(tmp_path / "edge" / name), config).close()
    else:
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(tmp_path / "local"))
        client.create_collection(name, vectors_config=models.VectorParams(size=48, distance=models.Distance.COSINE))
        client.close()
    with pytest.raises(ConfigError, match="32"):
        _open(backend, tmp_path, dim=32)


def test_an_unreachable_server_is_store_unavailable_naming_the_url() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        open_store(load_settings(store_url=url), dim=DIM, model=MODEL)


def test_boolean_match_works_on_the_server_and_is_refused_clearly_by_edge(root: Path) -> None:
    flt = Filter((Match("featured", (True,)),))
    p = CORPUS.points
    points = [Point(p[0].id, p[0].vector, {"featured": True}), Point(p[1].id, p[1].vector, {"featured": False})]
    server = _open("server", root)
    edge = _open("edge", root)
    try:
        server.upsert(points)
        edge.upsert(points)
        assert [h.id for h in server.query(QUERIES[0], flt)] == [p[0].id]
        with pytest.raises(BadQuery, match="true/false"):
            edge.query(QUERIES[0], flt)
    finally:
        server.close()
        edge.close()


# -- payload updates, index types, the collection record -------------------------------


def test_set_payload_merges_fields_into_existing_points_and_skips_unknown_ids(fresh: VectorStore) -> None:
    fresh.upsert(CORPUS.points[:3])
    a, b, c = CORPUS.ids[:3]
    updated = fresh.set_payload(
        {
            a: {"brand": "renamed", "geo": {"lat": 1.5, "lon": 2.5}},
            b: {"brand": "renamed"},
            str(uuid.uuid4()): {"x": 1},
            "junk": {"x": 1},
        }
    )
    assert updated == 2
    got = {h.id: h.payload for h in fresh.retrieve([a, b, c])}
    assert got[a] == {**CORPUS.points[0].payload, "brand": "renamed", "geo": {"lat": 1.5, "lon": 2.5}}
    assert got[b] == {**CORPUS.points[1].payload, "brand": "renamed"}
    assert got[c] == CORPUS.points[2].payload
    assert fresh.count(Filter((Match("brand", ("renamed",)),))) == 2
    assert fresh.set_payload({}) == 0


# One field per index type, with a value of that type: every type must be creatable on both.
INDEX_TYPE_VALUES: dict[FieldType, object] = {
    FieldType.KEYWORD: "red",
    FieldType.INTEGER: 3,
    FieldType.FLOAT: 2.5,
    FieldType.BOOL: True,
    FieldType.DATETIME: "2024-05-01T12:00:00Z",
    FieldType.TEXT: "A red star on the hill, café",
    FieldType.GEO: {"lat": 48.8566, "lon": 2.3522},
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_index_type_is_created_and_its_points_stay_readable(backend: str, root: Path) -> None:
    fields = {f"probe_{t.value}": t for t in FieldType}
    payload = {f"probe_{t.value}": value for t, value in INDEX_TYPE_VALUES.items()}
    assert set(INDEX_TYPE_VALUES) == set(FieldType)
    store = _open(backend, root)
    try:
        assert set(store.ensure_indexes(fields)) == set(fields)
        store.upsert([Point(CORPUS.ids[0], CORPUS.points[0].vector, payload)])
        assert store.retrieve([CORPUS.ids[0]])[0].payload == payload
        assert store.count(Filter((Match("probe_keyword", ("red",)), Range("probe_float", gte=2.0)))) == 1
    finally:
        store.close()
    if backend == "edge":  # the server's local mode keeps no payload schema to look at
        _assert_edge_index_types(root, fields)
        again = _open(backend, root)
        try:
            assert again.ensure_indexes(fields) == [], "existing indexes are not created twice"
        finally:
            again.close()


def _assert_edge_index_types(root: Path, fields: dict[str, FieldType]) -> None:
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(str(root / "edge" / collection_name(MODEL, DIM)))
    try:
        schema = shard.info().payload_schema
    finally:
        shard.close()
    expected = {
        FieldType.KEYWORD: qe.PayloadSchemaType.Keyword,
        FieldType.INTEGER: qe.PayloadSchemaType.Integer,
        FieldType.FLOAT: qe.PayloadSchemaType.Float,
        FieldType.BOOL: qe.PayloadSchemaType.Bool,
        FieldType.DATETIME: qe.PayloadSchemaType.Datetime,
        FieldType.TEXT: qe.PayloadSchemaType.Text,
        FieldType.GEO: qe.PayloadSchemaType.Geo,
    }
    assert {name: schema[name].data_type for name in fields} == {name: expected[t] for name, t in fields.items()}
    assert schema["probe_text"].params.scoring is not None, "the full-text index keeps BM25 statistics"
    assert all(schema[name].points == 1 for name in fields), "each value was indexed"


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_collection_record_is_never_returned_counted_or_deleted(backend: str, root: Path) -> None:
    from search.store.conversions import RECORD_ID

    store = _open(backend, root)
    try:
        assert schema_version(store) == SCHEMA_VERSION  # open_store recorded it in the new collection
        store.upsert(CORPUS.points[:20])
        assert store.count() == 20 and store.count(Filter(must_not=(Match("kind", ("image",)),))) == 15
        assert len(store.query(QUERIES[0], limit=100)) == 20
        assert RECORD_ID not in {h.id for h in store.scroll(limit=100).hits}
        assert store.retrieve([RECORD_ID]) == [] and store.set_payload({RECORD_ID: {"x": 1}}) == 0
        store.delete_where(Filter(must_not=(Match("kind", ("none",)),)))  # matches every point
        store.delete([RECORD_ID])
        assert store.count() == 0 and schema_version(store) == SCHEMA_VERSION
    finally:
        store.close()


# Today's layout: what ingest wrote before the payload schema was versioned (version 1), with
# its 16 payload indexes and no record. Written here as plain dicts, as the old ingest did.
UNVERSIONED_INDEXES = {
    **{name: FieldType.KEYWORD for name in ("kind", "source", "media_id", "video_id", "product_id", "dirs", "category", "brand")},
    **{name: FieldType.FLOAT for name in ("t", "t_start", "t_end", "taken_at", "price")},
    **{name: FieldType.INTEGER for name in ("size_bytes", "width", "height")},
}


DERIVED = {
    f.name
    for cls in (ImagePayload, ProductPayload, FramePayload, SegmentPayload)
    for f in fields(cls)
    if f.metadata.get("derived")
}


def _unversioned_points() -> list[Point]:
    common = {"source": "src-1", "model": MODEL, "taken_at": T0, "size_bytes": 2048, "width": 640, "height": 480}
    photo = {
        **common,
        "kind": "image",
        "media_id": media_id("file:///photos/paris.jpg"),
        "uri": "file:///photos/paris.jpg",
        "name": "paris.jpg",
        "path": "/photos/paris.jpg",
        "dirs": ["/photos"],
        "thumb": "p.webp",
        "camera": "Canon EOS R5",
        "gps_lat": 48.8566,
        "gps_lon": 2.3522,
    }
    plain = {**photo, "media_id": media_id("file:///photos/plain.jpg"), "uri": "file:///photos/plain.jpg", "name": "plain.jpg"}
    del plain["gps_lat"], plain["gps_lon"], plain["camera"]
    product = {
        **photo,
        "kind": "product",
        "media_id": media_id("file:///shop/p1.jpg"),
        "product_id": "P1",
        "title": "Red shoe",
        "category": "shoes",
        "brand": "Acme",
        "price": 12.5,
        "colour": "red",
    }
    video = media_id("file:///videos/v.mp4")
    base = {**common, "media_id": video, "video_id": video, "uri": "file:///videos/v.mp4", "name": "v.mp4", "duration": 4.0}
    frame = {**base, "kind": "frame", "t": 1.0, "thumb": "v/1.webp"}
    segment = {**base, "kind": "segment", "t_start": 0.0, "t_end": 4.0, "n_frames": 4, "thumb": "v/0.webp"}
    foreign = {"note": "written by another tool"}
    mistyped = {**plain, "media_id": media_id("file:///photos/odd.jpg"), "width": "640 px"}
    payloads = [photo, plain, product, frame, segment, foreign, mistyped]
    return [Point(CORPUS.ids[i], CORPUS.points[i].vector, p) for i, p in enumerate(payloads)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_collection_in_the_unversioned_layout_is_migrated_on_open(backend: str, tmp_path: Path) -> None:
    old = _open_unchecked(backend, tmp_path)
    points = _unversioned_points()
    old.upsert(points)
    old.ensure_indexes(UNVERSIONED_INDEXES)
    assert old.read_record() is None
    old.close()

    store = _open(backend, tmp_path)
    try:
        assert schema_version(store) == SCHEMA_VERSION
        got = {h.id: h.payload for h in store.retrieve([p.id for p in points], with_vectors=True)}
        geo = {"lat": 48.8566, "lon": 2.3522}
        assert got[points[0].id]["geo"] == got[points[2].id]["geo"] == geo, "photos with a position gain a geo point"
        for i, point in enumerate(points[:5]):  # every stored field kept, the derived ones added
            derived = {k: v for k, v in (normalise_payload(point.payload) or {}).items() if k in DERIVED}
            assert got[point.id] == {**point.payload, **derived}, i
        assert "geo" not in got[points[1].id], "no position, no geo point"
        assert got[points[5].id] == points[5].payload, "a point that is not ours is left as it is"
        assert "width" not in got[points[6].id], "a value the contract cannot read is cleared (both engines drop a null)"
        assert store.count() == len(points) and store.count(Filter((Match("brand", ("Acme",)),))) == 1
        _assert_same_ranking(_pairs(store.query(QUERIES[0], limit=3)), CORPUS.nearest(QUERIES[0], _first(len(points), 0))[:3])
        again = ensure_schema(store)  # a second open finds nothing to do
        assert (again.found, again.backfilled) == (SCHEMA_VERSION, 0)
    finally:
        store.close()
    if backend == "edge":
        import qdrant_edge as qe

        shard = qe.EdgeShard.load(str(tmp_path / "edge" / collection_name(MODEL, DIM)))
        try:
            schema = shard.info().payload_schema
            assert set(INDEXED_FIELDS) <= set(schema) and schema["geo"].data_type == qe.PayloadSchemaType.Geo
            assert schema["geo"].points == 2
        finally:
            shard.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_collection_from_a_newer_mmsearch_is_refused_and_left_untouched(backend: str, root: Path) -> None:
    newer = _open_unchecked(backend, root)
    newer.upsert(CORPUS.points[:5])
    newer.write_record(CollectionRecord(SCHEMA_VERSION + 1).to_payload())
    newer.close()
    with pytest.raises(ConfigError, match=f"version {SCHEMA_VERSION + 1}.*up to {SCHEMA_VERSION}.*Upgrade mmsearch"):
        _open(backend, root)
    again = _open_unchecked(backend, root)  # the refused open released the folder
    try:
        assert again.read_record() == CollectionRecord(SCHEMA_VERSION + 1).to_payload() and again.count() == 5
    finally:
        again.close()


# -- both backends side by side ---------------------------------------------------------


SIDE_BY_SIDE: dict[str, Callable[[VectorStore], object]] = {
    "query": lambda s: _pairs(s.query(QUERIES[4], limit=25)),
    "filtered page": lambda s: _pairs(s.query(QUERIES[4], FILTER_CASES["combined"][0], limit=10, offset=2)),
    "threshold": lambda s: _pairs(s.query(QUERIES[4], FILTER_CASES["list field any element"][0], limit=100, score_threshold=0.1)),
    "recommend": lambda s: _pairs(
        s.recommend(CORPUS.ids[5:8], CORPUS.ids[20:21], FILTER_CASES["must not"][0], limit=15, offset=1)
    ),
    "retrieve": lambda s: [(h.id, h.payload, h.vector.tolist()) for h in s.retrieve(CORPUS.ids[::37], True)],
    "scroll": lambda s: [(h.id, h.payload) for h in s.scroll(FILTER_CASES["integer any of"][0], limit=50).hits],
    "counts": lambda s: [s.count(flt) for flt, _ in FILTER_CASES.values()],
}


@pytest.mark.parametrize("call", list(SIDE_BY_SIDE))
def test_both_backends_give_identical_results(loaded_stores: dict[str, VectorStore], call: str) -> None:
    got_edge, got_server = (SIDE_BY_SIDE[call](loaded_stores[b]) for b in ("edge", "server"))
    assert got_edge and _close_enough(got_edge, got_server), (got_edge, got_server)


def _close_enough(a: object, b: object) -> bool:
    """Equal, except that scores (floats) may differ by the engines' rounding."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= SCORE_TOL
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close_enough(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close_enough(x, y) for x, y in zip(a, b))
    return a == b


# -- naming -----------------------------------------------------------------------------


def test_collection_names_are_readable_safe_and_distinct_for_distinct_checkpoints() -> None:
    assert collection_name("ViT-B-32:laion2b_s34b_b79k", 512) == "mmsearch__vit_b_32_laion2b_s34b_b79k__512"
    run1 = collection_name("ViT-B-32:/models/run1/epoch_10.pt", 512)
    run2 = collection_name("ViT-B-32:/models/run2/epoch_10.pt", 512)
    assert run1 != run2 and run1.startswith("mmsearch__vit_b_32_epoch_10_pt_")
    assert run1 == collection_name("ViT-B-32:/models/run1/epoch_10.pt", 512)
    assert collection_name("ViT-B-32:laion2b_s34b_b79k", 768).endswith("__768")
    long_name = collection_name("x" * 300, 512)
    assert len(long_name) <= 96 and long_name != collection_name("x" * 299, 512)
    for name in (run1, long_name, collection_name("/data/my models/clip ☃", 64)):
        assert all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    with pytest.raises(ValueError):
        collection_name("", 512)
