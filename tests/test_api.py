"""The search API end to end: the bundled model, a procedural corpus ingested by the real
pipeline, and the FastAPI app over it.

The core behaviours run on both store backends (Qdrant Edge and qdrant-client local mode) and
must agree; the rest runs on the embedded default. Assertions are about what the truth.json of
the procedural world says (colours, moment times), not about exact scores, since the bundled
model may be retrained.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from search.api import create_app
from tests._api_support import BACKENDS, Corpus, Indexed, corpus, indexed

TOP = 3  # results checked for the asked-for colour (the bundled model gets these right)
CLEAR_COLOURS = ("red", "green", "blue")


@dataclass
class Api:
    client: TestClient
    ix: Indexed
    world: Corpus

    def search(self, **body: Any) -> list[dict[str, Any]]:
        response = self.client.post("/search", json=body)
        assert response.status_code == 200, response.text
        return response.json()["results"]

    def colours(self, result: dict[str, Any]) -> set[str]:
        return self.world.colours[result["path"]]

    def top_image(self, colour: str, avoid: str = "") -> dict[str, Any]:
        """An indexed image showing ``colour`` (and not ``avoid``), found by a text query."""
        for hit in self.search(text=f"a {colour} shape", limit=10, filters={"kinds": ["image"]}):
            if colour in self.colours(hit) and avoid not in self.colours(hit):
                return hit
        raise AssertionError(f"no {colour} image among the top 10")


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    ix = indexed(request.param)
    with TestClient(create_app(ix.settings, services=ix.services)) as client:
        yield Api(client, ix, corpus())


@pytest.fixture(scope="module")
def edge() -> Iterator[Api]:
    ix = indexed("edge")
    with TestClient(create_app(ix.settings, services=ix.services)) as client:
        yield Api(client, ix, corpus())


# --- both backends ------------------------------------------------------------------------------


def test_the_corpus_is_fully_indexed(api: Api) -> None:
    assert api.ix.job.failed == 0 and api.ix.job.indexed > 0
    stats = api.client.get("/stats").json()
    assert stats["points"]["image"] == len(api.world.truth["images"])
    assert stats["points"]["frame"] > 0 and stats["points"]["segment"] > 0 and stats["points"]["product"] > 0
    assert stats["store_backend"] == ("edge" if api.ix.backend == "edge" else "server")


@pytest.mark.parametrize("colour", CLEAR_COLOURS)
def test_text_queries_return_images_of_the_asked_colour(api: Api, colour: str) -> None:
    results = api.search(text=colour, limit=TOP, filters={"kinds": ["image"]})
    assert len(results) == TOP
    assert all(colour in api.colours(r) for r in results), [api.colours(r) for r in results]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_an_id_query_reuses_the_stored_vector(api: Api) -> None:
    red = api.top_image("red")
    results = api.search(id=red["media_id"], limit=TOP, filters={"kinds": ["image"]})
    assert results[0]["media_id"] == red["media_id"] and results[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert all("red" in api.colours(r) for r in results)
    by_point = api.search(id=red["id"], limit=1, filters={"kinds": ["image"]})  # a point id works too
    assert by_point[0]["id"] == red["id"]


def test_arithmetic_changes_the_colour_as_asked(api: Api) -> None:
    red = api.top_image("red", avoid="blue")
    plain = api.search(query=f"id:{red['media_id']}", limit=1, filters={"kinds": ["image"]})
    swapped = api.search(query=f'id:{red["media_id"]} - "red" + "blue"', limit=1, filters={"kinds": ["image"]})
    assert "blue" not in api.colours(plain[0])
    assert "blue" in api.colours(swapped[0])


def test_the_json_terms_form_composes_like_the_string_form(api: Api) -> None:
    red = api.top_image("red", avoid="blue")
    terms = [{"id": red["media_id"]}, {"text": "red", "weight": -1}, {"text": "blue"}]
    by_terms = api.search(terms=terms, limit=3, filters={"kinds": ["image"]})
    by_string = api.search(query=f'id:{red["media_id"]} - "red" + "blue"', limit=3, filters={"kinds": ["image"]})
    assert [r["id"] for r in by_terms] == [r["id"] for r in by_string]


def test_an_uploaded_image_finds_itself(api: Api) -> None:
    green = api.top_image("green")
    data = Path(green["path"]).read_bytes()
    response = api.client.post("/search/image", files={"file": (green["name"], data)}, params={"kind": "image", "limit": 3})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["media_id"] == green["media_id"] and results[0]["score"] > 0.95
    as_base64 = api.search(image=base64.b64encode(data).decode(), limit=1, filters={"kinds": ["image"]})
    assert as_base64[0]["media_id"] == green["media_id"]


def test_filters_restrict_kind_folder_and_product_fields(api: Api) -> None:
    products = api.search(text="a red shape", limit=20, filters={"kinds": ["product"]}, dedup=False)
    assert products and all(r["kind"] == "product" for r in products)
    folder = str(api.world.images)
    in_folder = api.search(text="a red shape", limit=20, filters={"path_prefix": folder}, dedup=False)
    assert in_folder and all(r["path"].startswith(folder + "/") for r in in_folder)
    category = products[0]["product"]["category"]
    by_category = api.search(text="a shape", limit=50, filters={"categories": [category]}, dedup=False)
    assert by_category and {r["product"]["category"] for r in by_category} == {category}
    brand = products[0]["product"]["brand"]
    assert {r["product"]["brand"] for r in api.search(text="a shape", limit=50, filters={"brands": [brand]})} == {brand}
    cheap = api.search(text="a shape", limit=50, filters={"kinds": ["product"], "max_price": 50}, dedup=False)
    dear = api.search(text="a shape", limit=50, filters={"kinds": ["product"], "min_price": 50}, dedup=False)
    assert all(r["product"]["price"] <= 50 for r in cheap) and all(r["product"]["price"] >= 50 for r in dear)
    assert len(cheap) + len(dear) >= len({p["id"] for p in api.world.truth["products"]["products"]})
    colour = products[0]["product"]["fields"]["colour"]  # any manifest column filters too
    by_column = api.search(text="a shape", limit=50, filters={"fields": {"colour": colour}}, dedup=False)
    assert by_column and {r["product"]["fields"]["colour"] for r in by_column} == {colour}
    assert not api.search(text="a shape", filters={"taken_after": "2100-01-01T00:00:00"})
    sizes = sorted(r["size_bytes"] for r in in_folder)
    middle = sizes[len(sizes) // 2]
    big = api.search(text="a red shape", limit=50, filters={"min_size": middle, "kinds": ["image"]})
    assert big and all(r["size_bytes"] >= middle for r in big)


def _distinct_moments(world: Corpus) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(video, moment) pairs whose colour appears nowhere else in that video."""
    out = []
    for video in world.truth["videos"]:
        colours = [m["colour"] for m in video["moments"]]
        out += [(video, m) for m in video["moments"] if colours.count(m["colour"]) == 1]
    return out


@pytest.mark.parametrize("pooling", ["topk", "mean"])
def test_moments_come_back_with_the_right_timestamps(api: Api, pooling: str) -> None:
    step = 1.0 / api.ix.settings.ingest.frame_rate
    cases = _distinct_moments(api.world)
    assert cases, "the corpus should hold a moment with a colour of its own"
    for video, truth in cases:
        results = api.search(text=f"a {truth['colour']} {truth['shape']}", target="moments", pooling=pooling, limit=20)
        mine = [r for r in results if r["name"] == Path(video["path"]).name]
        assert mine, f"no moment of {video['path']}"
        moment = mine[0]["moment"]
        assert abs(moment["start"] - truth["start"]) <= step, (moment, truth)
        assert abs(moment["end"] - truth["end"]) <= step, (moment, truth)
        assert moment["start"] <= moment["best_t"] <= moment["end"]
        assert mine[0]["thumbnail_url"].startswith("/points/")


def test_videos_rank_by_the_moment_they_contain(api: Api) -> None:
    videos = api.world.truth["videos"]
    for video, truth in _distinct_moments(api.world):
        elsewhere = [v for v in videos if v is not video and truth["colour"] in {m["colour"] for m in v["moments"]}]
        if elsewhere:
            continue
        for pooling in ("topk", "mean"):
            results = api.search(text=f"a {truth['colour']} {truth['shape']}", target="videos", pooling=pooling)
            assert results[0]["name"] == Path(video["path"]).name, (pooling, truth)
            assert results[0]["kind"] == "video" and results[0]["moments"]


def test_near_duplicate_products_collapse_by_default(api: Api) -> None:
    dup = api.world.truth["products"]["near_duplicates"][0]
    original, copy = str(api.world.folder / dup["original"]), str(api.world.folder / dup["path"])
    # group=False: every photo its own result (grouped by product, the copy would be a variant)
    spread = api.search(text="a shape", limit=200, filters={"kinds": ["product"]}, dedup=False, group=False)
    ids = {r["path"]: r["id"] for r in spread}
    assert original in ids and copy in ids
    plain = api.search(id=ids[original], limit=10, filters={"kinds": ["product"]}, dedup=False, group=False)
    assert {original, copy} <= {r["path"] for r in plain[:3]}
    collapsed = api.search(id=ids[original], limit=10, filters={"kinds": ["product"]}, group=False)
    assert collapsed[0]["path"] in (original, copy)
    shown = {r["path"] for r in collapsed}
    assert not {original, copy} <= shown  # one of the two stands for both
    hidden = ids[copy] if collapsed[0]["path"] == original else ids[original]
    assert hidden in collapsed[0]["duplicates"]


# --- embedded store only -------------------------------------------------------------------------


def test_a_query_image_url_is_fetched_from_an_allowed_host(edge: Api) -> None:
    from tests._ingest_support import serve_folder

    blue = edge.top_image("blue")
    assert edge.ix.settings.ingest.allow_hosts == ["127.0.0.1"]  # see _api_support.indexed
    with serve_folder(edge.world.images) as (base, requested):
        url = f"{base}/{blue['name']}"
        response = edge.client.post("/search", json={"url": url, "limit": 1, "filters": {"kinds": ["image"]}})
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["media_id"] == blue["media_id"]
        assert requested  # it really went over HTTP
        missing = edge.client.post("/search", json={"url": f"{base}/no-such.jpg"})
        assert missing.status_code == 400 and missing.json()["error"] == "fetch_failed", missing.text
    refused = edge.client.post("/search", json={"url": "http://192.168.7.7/cat.jpg"})
    assert refused.status_code == 400 and refused.json()["error"] == "blocked_address"


def test_explain_splits_each_score_into_term_contributions(edge: Api) -> None:
    red = edge.top_image("red")
    response = edge.client.post("/search", json={"query": f'id:{red["media_id"]} + 0.5*"blue"', "limit": 3, "explain": True})
    body = response.json()
    assert [t["label"] for t in body["terms"]] == [f"id:{red['media_id']}", '"blue"']
    assert body["query_type"] == "arithmetic"
    for result in body["results"]:
        parts = result["contributions"]
        assert len(parts) == 2
        assert sum(p["contribution"] for p in parts) == pytest.approx(result["score"], abs=1e-3)


def test_examples_search_is_more_like_these_less_like_those(edge: Api) -> None:
    red, blue = edge.top_image("red", avoid="blue"), edge.top_image("blue", avoid="red")
    body = edge.client.post(
        "/search",
        json={"positive": [red["media_id"]], "negative": [blue["media_id"]], "limit": 3, "filters": {"kinds": ["image"]}},
    ).json()
    assert body["query_type"] == "examples"
    results = body["results"]
    assert all(r["media_id"] not in (red["media_id"], blue["media_id"]) for r in results)
    assert "red" in edge.colours(results[0])


def test_similar_excludes_the_item_and_can_keep_to_its_category(edge: Api) -> None:
    red = edge.top_image("red")
    response = edge.client.get(f"/similar/{red['media_id']}", params={"limit": 5, "kind": "image"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results and red["media_id"] not in {r["media_id"] for r in results}
    assert "red" in edge.colours(results[0])
    product = edge.search(text="a shape", limit=1, filters={"kinds": ["product"]})[0]
    same = edge.client.get(f"/similar/{product['id']}", params={"same_category": "true", "limit": 20}).json()
    assert same["results"] and {r["product"]["category"] for r in same["results"]} == {product["product"]["category"]}
    assert product["id"] not in {r["id"] for r in same["results"]}


def test_a_video_is_like_other_videos_and_its_moments_have_thumbnails(edge: Api) -> None:
    video = edge.search(text="a shape", target="videos", limit=1)[0]
    similar = edge.client.get(f"/similar/{video['media_id']}").json()["results"]
    assert similar and all(r["kind"] == "video" and r["media_id"] != video["media_id"] for r in similar)
    meta = edge.client.get(f"/media/{video['media_id']}").json()
    assert meta["kind"] == "video" and meta["points"] > 1 and meta["duration"] > 0
    assert edge.client.get(f"/media/{video['media_id']}/thumbnail").status_code == 200


def test_pages_do_not_overlap_and_say_where_the_next_starts(edge: Api) -> None:
    first = edge.client.post("/search", json={"text": "a shape", "limit": 4, "filters": {"kinds": ["image"]}}).json()
    second = edge.client.post(
        "/search", json={"text": "a shape", "limit": 4, "offset": first["next_offset"], "filters": {"kinds": ["image"]}}
    ).json()
    assert first["next_offset"] == 4 and len(second["results"]) == 4
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}
    high = edge.search(text="a shape", limit=50, score_threshold=0.5, filters={"kinds": ["image"]})
    assert all(r["score"] >= 0.5 for r in high)


def test_media_metadata_thumbnail_and_ranged_file(edge: Api) -> None:
    red = edge.top_image("red")
    meta = edge.client.get(f"/media/{red['media_id']}").json()
    assert meta["kind"] == "image" and meta["points"] == 1 and meta["status"] == "indexed"
    thumb = edge.client.get(red["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp" and thumb.content[:4] == b"RIFF"
    size = Path(red["path"]).stat().st_size
    part = edge.client.get(f"/media/{red['media_id']}/file", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == Path(red["path"]).read_bytes()[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    beyond = edge.client.get(f"/media/{red['media_id']}/file", headers={"Range": f"bytes={size + 10}-"})
    assert beyond.status_code == 416


def test_a_moment_links_to_a_seekable_video(edge: Api) -> None:
    _video, truth = _distinct_moments(edge.world)[0]
    result = edge.search(text=f"a {truth['colour']} {truth['shape']}", target="moments", limit=1)[0]
    url = result["moment"]["file_url"]
    assert "#t=" in url
    head = edge.client.get(url.split("#")[0], headers={"Range": "bytes=0-15"})
    assert head.status_code == 206 and head.content[4:8] == b"ftyp"  # an MP4, served in pieces
    assert edge.client.get(result["thumbnail_url"]).status_code == 200


def test_operations_endpoints(edge: Api) -> None:
    assert edge.client.get("/healthz").json()["status"] == "ok"
    ready = edge.client.get("/readyz")
    assert ready.status_code == 200 and all(c["ok"] for c in ready.json()["checks"])
    edge.search(text="a red shape", limit=1)
    metrics = edge.client.get("/metrics")
    assert metrics.status_code == 200
    assert "mmsearch_query_results_total" in metrics.text and "mmsearch_query_seconds_bucket" in metrics.text


def test_ingest_through_the_api_runs_in_the_background(edge: Api) -> None:
    from ingest.jobs import BackgroundLauncher

    launcher = BackgroundLauncher(edge.ix.services)
    app = create_app(edge.ix.settings, services=edge.ix.services, launcher=launcher)
    try:
        with TestClient(app) as client:
            started = client.post("/ingest", json={"paths": [str(edge.world.images)]})
            assert started.status_code == 202, started.text
            launcher.join(timeout=120)
            job = client.get(started.json()["status_url"]).json()
    finally:
        launcher.close()
    assert job["finished"] and job["status"] == "done"
    assert job["skipped"] == len(edge.world.truth["images"])  # unchanged files are not re-embedded


def test_deleting_an_item_removes_it_from_search(edge: Api) -> None:
    dup = edge.world.truth["products"]["near_duplicates"][-1]  # the first one is the dedup test's
    path = str(edge.world.folder / dup["path"])
    found = [r for r in edge.search(text="a shape", limit=500, filters={"kinds": ["product"]}, dedup=False) if r["path"] == path]
    assert found
    media = found[0]["media_id"]
    deleted = edge.client.delete(f"/media/{media}")
    assert deleted.status_code == 200 and deleted.json() == {"id": media, "points_deleted": 1}
    assert edge.client.post("/search", json={"id": media}).status_code == 404
    assert edge.client.get(f"/media/{media}").status_code == 404  # deleted: gone everywhere (issue 9)
    assert path not in {r["path"] for r in edge.search(text="a shape", limit=500, filters={"kinds": ["product"]}, dedup=False)}
