"""Hybrid ranking: BM25 keyword relevance beside CLIP similarity, on both store backends.

The store tests run on Qdrant Edge and on qdrant-client's local mode (the server's stand-in)
through ``open_store``, with payloads built by the payload contract, so the words a point is
found by are derived exactly as ingest derives them. The migration tests build a collection in
the layout before the keyword vector (schema version 2, dense vector only) with each engine's
own client, then open it with this code.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from search.engine.prepare import EXACT_KEYWORD_WEIGHT, keyword_query
from search.errors import BadQuery
from search.payload import SCHEMA_VERSION, TEXT, WORDS, CollectionRecord, ImagePayload, ProductPayload, parse_payload
from search.query import TextTerm, parse_keywords, parse_search
from search.settings import load_settings
from search.store import Point, VectorStore, collection_name, open_store
from search.store.conversions import RECORD_ID
from search.store.keywords import KeywordQuery
from search.store.schema import schema_version

DIM = 32
MODEL = "test-model:hybrid"
BACKENDS = ("edge", "server")
N_PRODUCTS = 60
SKU_INDEX = 17


def _url(backend: str, root: Path) -> str:
    return f"edge://{root / 'edge'}" if backend == "edge" else f"local://{root / 'local'}"


def _open(backend: str, root: Path) -> VectorStore:
    return open_store(load_settings(store_url=_url(backend, root)), dim=DIM, model=MODEL)


def _vectors(n: int, seed: int = 3) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


VECTORS = _vectors(N_PRODUCTS + 20)
COLOURS = ("red", "blue", "green", "yellow")


def _product(i: int) -> ProductPayload:
    colour = COLOURS[i % len(COLOURS)]
    return ProductPayload(
        media_id=f"p{i}",
        source="shop",
        uri=f"https://shop.example/p{i}.jpg",
        name=f"p{i}.jpg",
        model=MODEL,
        product_id=f"BL-{1000 + i}",
        title=f"Brightline {colour.title()} Ring {i}",
        brand="Brightline" if i % 2 else "Acme",
        category="rings",
    )


def _photo(i: int) -> ImagePayload:
    name = "IMG_2023_beach-party.jpg" if i == 0 else f"IMG_{4000 + i}.jpg"
    return ImagePayload(
        media_id=f"i{i}",
        source="photos",
        uri=f"file:///photos/holidays/{name}",
        name=name,
        model=MODEL,
        path=f"/photos/holidays/{name}",
        dirs=("/photos", "/photos/holidays"),
        text="sunset over the pier" if i == 1 else None,
    )


def _points() -> list[Point]:
    payloads = [_product(i) for i in range(N_PRODUCTS)] + [_photo(i) for i in range(20)]
    return [Point(str(uuid.uuid5(uuid.NAMESPACE_URL, p.media_id)), VECTORS[i], p.to_payload()) for i, p in enumerate(payloads)]


POINTS = _points()
IDS = [p.id for p in POINTS]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorStore]]:
    root = tmp_path_factory.mktemp("hybrid")
    opened = {backend: _open(backend, root) for backend in BACKENDS}
    for store in opened.values():
        store.upsert(POINTS)
    yield opened
    for store in opened.values():
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, stores: dict[str, VectorStore]) -> VectorStore:
    return stores[request.param]


def _names(hits: list) -> list[str]:
    return [parse_payload(h.payload).media_id for h in hits]


# -- the words a point is found by ----------------------------------------------------------------


def test_file_folder_and_product_fields_become_searchable_words() -> None:
    words = _photo(0).to_payload()[WORDS]
    assert words.split()[:5] == ["IMG", "2023", "beach", "party", "jpg"] and "holidays" in words.split()
    product = _product(SKU_INDEX).to_payload()[WORDS].split()
    assert {"BL", "1017", "Brightline", "Ring", "rings"} <= set(product)
    assert "sunset over the pier" in _photo(1).to_payload()[WORDS]


# -- ranking, on both backends ----------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["BL-1017", "bl 1017"])
def test_a_sku_query_ranks_its_product_first_in_keyword_and_hybrid_modes(store: VectorStore, typed: str) -> None:
    """As the engine asks: the code is also a phrase. Without that, the 59 other "BL" products
    tie in the keyword ranking, and in about one process in twelve Edge's order among them
    (Rust's per-process hash seeds) put one that also ranks second visually above the SKU."""
    assert _names(store.query_hybrid(None, KeywordQuery(typed), limit=3))[0] == f"p{SKU_INDEX}"
    keywords = keyword_query(parse_keywords(typed), "hybrid")
    unrelated = VECTORS[N_PRODUCTS + 5]  # a query vector pointing at another point entirely
    assert _names(store.query_hybrid(unrelated, keywords, limit=3, keyword_weight=EXACT_KEYWORD_WEIGHT))[0] == f"p{SKU_INDEX}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exact_sku_outranks_a_sibling_sku_that_looks_more_like_the_query(backend: str, tmp_path: Path) -> None:
    """Regression (a flaky API test): "VER-1003-PU" typed in hybrid mode, and its sibling
    "VER-1003-PX" (two of the three words) nearest to the query vector, came first by RRF.
    Exact tokens (codes, file names) rank their matches first, as a quoted phrase does."""
    query = VECTORS[0]
    near = [query + 0.05 * VECTORS[i] for i in range(1, 16)]  # visually closer than the product typed
    payloads = [
        (_sku_product("t", "VER-1003-PU"), -query),
        (_sku_product("c", "VER-1003-PX"), query),
        *[(_photo(i + 2), v / np.linalg.norm(v)) for i, v in enumerate(near)],
    ]
    store = _open(backend, tmp_path)
    try:
        store.upsert([Point(str(uuid.uuid5(uuid.NAMESPACE_URL, p.media_id)), v, p.to_payload()) for p, v in payloads])
        keywords = keyword_query(parse_keywords("VER-1003-PU"), "hybrid")
        assert _names(store.query_hybrid(query, keywords, limit=3, keyword_weight=EXACT_KEYWORD_WEIGHT))[0] == "t"
    finally:
        store.close()


def _sku_product(media_id: str, sku: str) -> ProductPayload:
    return ProductPayload(
        media_id=media_id,
        source="shop",
        uri=f"https://shop.example/{media_id}.jpg",
        name=f"{media_id}.jpg",
        model=MODEL,
        product_id=sku,
        title="Vertex Works Coaster",
        brand="Vertex Works",
        category="coasters",
    )


def test_exact_tokens_become_phrases_of_the_keyword_query() -> None:
    assert keyword_query(parse_keywords("VER-1003-PU blue"), "hybrid").phrases == ("VER-1003-PU",)
    assert keyword_query(parse_keywords('IMG_2041.jpg "beach party"'), "keyword").phrases == ("beach party", "IMG_2041.jpg")
    assert keyword_query(parse_keywords("a red ring"), "hybrid").phrases == ()


def test_a_file_name_query_finds_the_file(store: VectorStore) -> None:
    assert _names(store.query_hybrid(None, KeywordQuery("IMG_2023_beach-party.jpg"), limit=1)) == ["i0"]
    assert _names(store.query_hybrid(None, KeywordQuery("sunset pier"), limit=1)) == ["i1"], "the text field counts"


def test_a_quoted_phrase_ranks_its_matches_first(store: VectorStore) -> None:
    matched = store.query_hybrid(VECTORS[40], KeywordQuery("", ("beach party",)), limit=3)
    assert _names(matched)[0] == "i0"
    swapped = store.query_hybrid(VECTORS[40], KeywordQuery("", ("party beach",)), limit=3)  # the words, not the phrase
    assert swapped[0].score < matched[0].score


def test_keywords_that_match_nothing_leave_the_visual_ranking_as_it_is(store: VectorStore) -> None:
    query = VECTORS[7] + 0.3 * VECTORS[9]
    visual = [h.id for h in store.query(query, limit=10)]
    hybrid = [h.id for h in store.query_hybrid(query, KeywordQuery("zebra xylophone"), limit=10)]
    assert hybrid == visual


def test_filters_apply_to_both_rankings(store: VectorStore) -> None:
    from search.store import Filter, Match

    only_photos = Filter((Match("kind", ("image",)),))
    hits = store.query_hybrid(VECTORS[3], KeywordQuery("BL-1017 ring"), only_photos, limit=10)
    assert hits and all(h.payload["kind"] == "image" for h in hits)


def test_dbsf_fusion_also_ranks_the_sku_first(store: VectorStore) -> None:
    got = store.query_hybrid(VECTORS[N_PRODUCTS + 5], KeywordQuery("BL-1017"), limit=3, fusion="dbsf")
    assert _names(got)[0] == f"p{SKU_INDEX}"


def test_keyword_scores_are_bm25_for_matching_points_and_absent_for_others(store: VectorStore) -> None:
    scores = store.keyword_scores(KeywordQuery("BL-1017"), IDS[:30])
    assert max(scores, key=scores.__getitem__) == IDS[SKU_INDEX]
    assert IDS[N_PRODUCTS + 3] not in store.keyword_scores(KeywordQuery("ring"), [IDS[N_PRODUCTS + 3]])


def test_both_backends_score_alike(stores: dict[str, VectorStore]) -> None:
    """Same BM25 score for every point; fused rankings agree wherever no two points tie
    (tied points come in engine order, which differs)."""
    edge, server = stores["edge"], stores["server"]
    keywords = KeywordQuery("acme blue ring", ("red ring",))
    edge_scores, server_scores = edge.keyword_scores(keywords, IDS), server.keyword_scores(keywords, IDS)
    assert edge_scores.keys() == server_scores.keys() and len(edge_scores) > 10
    assert all(abs(edge_scores[i] - server_scores[i]) < 1e-4 for i in edge_scores)
    typed = keyword_query(parse_keywords("BL-1017 sunset"), "hybrid")  # as the engine asks: no tie at the top
    for vector in (None, VECTORS[N_PRODUCTS + 5]):
        got = [store.query_hybrid(vector, typed, limit=1, keyword_weight=EXACT_KEYWORD_WEIGHT) for store in (edge, server)]
        assert [h.id for h in got[0]] == [h.id for h in got[1]]
        assert np.allclose([h.score for h in got[0]], [h.score for h in got[1]], atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_new_words_set_on_a_point_replace_its_keyword_vector(backend: str, tmp_path: Path) -> None:
    store = _open(backend, tmp_path)
    try:
        store.upsert(POINTS[:5])
        updated = replace(ImagePayload.from_payload(POINTS[2].payload), text="a giraffe at the zoo")  # words derived again
        store.set_payload({POINTS[2].id: {TEXT: updated.text, WORDS: updated.words}})
        assert [h.id for h in store.query_hybrid(None, KeywordQuery("giraffe"), limit=2)] == [POINTS[2].id]
    finally:
        store.close()


# -- the keyword syntax ------------------------------------------------------------------------------


def test_keyword_syntax_splits_words_and_quoted_phrases() -> None:
    parsed = parse_keywords('beach  "party hat"  50ml')
    assert (parsed.words, parsed.phrases, parsed.exact) == ("beach 50ml", ("party hat",), True)
    assert not parse_keywords("a red circle").exact
    assert parse_search('beach "party hat"') == [TextTerm("beach party hat", position=0)]


@pytest.mark.parametrize("text, position", [('beach "party', 6), ('"a" b "c', 6)])
def test_an_unbalanced_quote_names_its_position(text: str, position: int) -> None:
    with pytest.raises(BadQuery, match=f"position {position}") as caught:
        parse_keywords(text)
    assert caught.value.position == position


# -- collections made before the keyword vector --------------------------------------------------------


def _old_layout(backend: str, root: Path) -> None:
    """A schema-version-2 collection: dense vector only, payloads without words."""
    name = collection_name(MODEL, DIM)
    old = [
        Point(p.id, p.vector, {k: v for k, v in p.payload.items() if k not in (WORDS,)})
        for p in POINTS[:N_PRODUCTS]  # products: their SKUs are in the payload, not yet in words
    ]
    record = CollectionRecord(2).to_payload()
    if backend == "edge":
        import qdrant_edge as qe

        path = root / "edge" / name
        path.mkdir(parents=True)
        shard = qe.EdgeShard.create(str(path), qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)))
        points = [qe.Point(p.id, [float(x) for x in p.vector], dict(p.payload)) for p in old]
        points.append(qe.Point(RECORD_ID, [1.0] + [0.0] * (DIM - 1), record))
        shard.update(qe.UpdateOperation.upsert_points(points))
        shard.flush()
        shard.close()
        return
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(root / "local"))
    try:
        client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
        structs = [models.PointStruct(id=p.id, vector=[float(x) for x in p.vector], payload=dict(p.payload)) for p in old]
        structs.append(models.PointStruct(id=RECORD_ID, vector=[1.0] + [0.0] * (DIM - 1), payload=record))
        client.upsert(name, points=structs)
    finally:
        client.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_collection_without_the_keyword_vector_gains_it_on_open(backend: str, tmp_path: Path) -> None:
    _old_layout(backend, tmp_path)
    store = _open(backend, tmp_path)
    try:
        assert schema_version(store) == SCHEMA_VERSION
        assert store.count() == N_PRODUCTS
        assert _names(store.query_hybrid(None, KeywordQuery("BL-1017"), limit=1)) == [f"p{SKU_INDEX}"]
        got = store.query(VECTORS[4], limit=1)
        assert got[0].id == IDS[4] and got[0].score == pytest.approx(1.0, abs=1e-4), "vectors kept as they were"
    finally:
        store.close()
    if backend == "edge":
        leftovers = [p.name for p in (tmp_path / "edge").iterdir() if p.name != collection_name(MODEL, DIM)]
        assert leftovers == []
    reopened = _open(backend, tmp_path)  # a second open finds nothing to rebuild
    try:
        assert reopened.count() == N_PRODUCTS and schema_version(reopened) == SCHEMA_VERSION
    finally:
        reopened.close()


def test_an_edge_rebuild_cut_short_is_redone_from_the_intact_shard(tmp_path: Path) -> None:
    """A crash after the live folder was renamed away leaves ``.previous``: it wins, and the
    rebuild runs again."""
    _old_layout("edge", tmp_path)
    live = tmp_path / "edge" / collection_name(MODEL, DIM)
    previous = live.with_name(live.name + ".previous")
    shutil.copytree(live, previous)
    shutil.rmtree(live)
    live.mkdir()  # half a swap: an empty folder where the new shard was going
    store = _open("edge", tmp_path)
    try:
        assert store.count() == N_PRODUCTS
        assert _names(store.query_hybrid(None, KeywordQuery("BL-1017"), limit=1)) == [f"p{SKU_INDEX}"]
    finally:
        store.close()


# -- through the API (the shared procedural world, products indexed from its manifest) -------------------


@pytest.fixture(scope="module")
def client() -> Iterator:
    from fastapi.testclient import TestClient

    from search.api import create_app
    from tests._api_support import indexed

    ix = indexed("edge")
    with TestClient(create_app(ix.settings, services=ix.services)) as c:
        yield c


def _products() -> list[dict]:
    from tests._api_support import corpus

    return corpus().truth["products"]["products"]


def test_the_api_finds_a_product_by_sku_and_by_title_in_keyword_and_hybrid_modes(client) -> None:
    import csv

    from tests._api_support import corpus

    rows = list(csv.DictReader(corpus().products_csv.open(encoding="utf-8")))
    row = rows[3]
    for mode in ("keyword", "hybrid"):
        for typed in (row["sku"], row["title"]):
            response = client.post("/search", json={"query": typed, "mode": mode, "group": False, "dedup": False, "limit": 5})
            assert response.status_code == 200, response.text
            top = response.json()["results"][0]
            assert top["product"]["product_id"] == row["id"], (mode, typed)


def test_explain_shows_the_keyword_relevance_beside_the_visual_shares(client) -> None:
    title = _products()[2]["title"]
    body = client.post("/search", json={"query": title, "explain": True, "group": False, "limit": 3}).json()
    parts = body["results"][0]["contributions"]
    keyword = [p for p in parts if p["term"].startswith("keywords:")]
    assert len(keyword) == 1 and keyword[0]["similarity"] > 0
    assert any(not p["term"].startswith("keywords:") for p in parts), "the visual share is still there"


@pytest.mark.parametrize("query, position", [('beach "party', 6), ('red "blue ring', 4)])
def test_an_unbalanced_quote_is_400_naming_its_position(client, query: str, position: int) -> None:
    for mode in ("keyword", "hybrid"):
        response = client.post("/search", json={"query": query, "mode": mode})
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["position"] == position and f"position {position}" in body["detail"]


def test_an_unknown_mode_is_refused_naming_the_field(client) -> None:
    response = client.post("/search", json={"query": "red", "mode": "fuzzy"})
    assert response.status_code == 422 and "mode" in response.text
    response = client.post("/search", json={"image": "", "mode": "keyword"})
    assert 400 <= response.status_code < 500


def test_keyword_mode_needs_text(client) -> None:
    some_id = client.post("/search", json={"query": "a red circle", "mode": "vector", "limit": 1}).json()["results"][0]["id"]
    response = client.post("/search", json={"id": some_id, "mode": "keyword"})
    assert response.status_code == 400 and "keyword mode" in response.json()["detail"].lower()


def test_the_cli_takes_a_mode() -> None:
    from mmsearch.cli import build_parser
    from mmsearch.search_command import build_request

    args = build_parser().parse_args(["search", "--mode", "keyword", 'blue "ring with black dot"'])
    request = build_request(args)
    assert (request.mode, request.query_text) == ("keyword", 'blue "ring with black dot"')
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--mode", "fuzzy", "x"])
