"""Structured results through the API on both store backends: products grouped by product,
sorting after a relevance cutoff, facet counts, feedback (liked/disliked results), MMR
diversity, and the bad-input answers for these options.

The procedural world's catalogue gives every product several photos (and one near-duplicate
copy shared across products), which is what grouping is for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from search.api import create_app
from tests._api_support import BACKENDS, Indexed, indexed

PRODUCTS = {"kinds": ["product"]}


@pytest.fixture(scope="module", params=BACKENDS)
def ix(request: pytest.FixtureRequest) -> Indexed:
    return indexed(request.param)


@pytest.fixture(scope="module")
def client(ix: Indexed) -> Iterator[TestClient]:
    with TestClient(create_app(ix.settings, services=ix.services)) as c:
        yield c


def _search(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _product_ids(results: list[dict[str, Any]]) -> list[str]:
    return [r["product"]["product_id"] for r in results]


def test_collapse_alone_shows_a_product_several_times(client: TestClient) -> None:
    """The demo bug: near-duplicate collapse compares vectors, so a product's distinct photos
    each get a card (grouping off reproduces what the Products page did)."""
    page = _search(client, text="a shape", limit=10, filters=PRODUCTS, dedup=True, group=False)
    counts = Counter(_product_ids(page["results"]))
    assert max(counts.values()) > 1


def test_products_group_into_one_card_with_their_other_photos_as_variants(client: TestClient) -> None:
    page = _search(client, text="a shape", limit=10, filters=PRODUCTS, dedup=True)
    ids = _product_ids(page["results"])
    assert len(ids) == len(set(ids)) == 10
    with_variants = [r for r in page["results"] if r["variants"]]
    assert with_variants
    for result in with_variants:
        scores = [result["score"], *(v["score"] for v in result["variants"])]
        assert scores == sorted(scores, reverse=True)  # the best-matching photo leads its card
        assert result["id"] not in {v["id"] for v in result["variants"]}
        assert all(v["thumbnail_url"] for v in result["variants"])


def test_grouped_pages_count_products_and_do_not_overlap(client: TestClient) -> None:
    first = _search(client, text="a shape", limit=5, filters=PRODUCTS)
    assert first["next_offset"] == 5
    second = _search(client, text="a shape", limit=5, offset=5, filters=PRODUCTS)
    both = _product_ids(first["results"]) + _product_ids(second["results"])
    assert len(both) == len(set(both)) == 10


def test_grouping_on_by_default_for_products_and_off_for_images(client: TestClient) -> None:
    products = _search(client, text="a shape", limit=8, filters=PRODUCTS)["results"]
    assert len(set(_product_ids(products))) == len(products)
    images = _search(client, text="a shape", limit=8, filters={"kinds": ["image"]})["results"]
    assert all(r["variants"] == [] for r in images)


@pytest.mark.parametrize("sort", ["taken_at", "-taken_at", "name", "-price"])
def test_results_above_the_cutoff_sort_by_a_field_with_stable_pages(client: TestClient, sort: str) -> None:
    field = sort.lstrip("-")
    body: dict[str, Any] = {"text": "a red shape", "score_threshold": 0.0, "sort": sort, "group": False}
    if field == "price":
        body["filters"] = PRODUCTS
    everything = _search(client, **body, limit=40)["results"]
    assert len(everything) > 5

    def value(r: dict[str, Any]) -> Any:
        return r["product"]["price"] if field == "price" else r[field]

    present = [value(r) for r in everything if value(r) is not None]
    assert present == sorted(present, reverse=sort.startswith("-"))
    pages = [_search(client, **body, limit=5, offset=o)["results"] for o in (0, 5, 10)]
    assert [r["id"] for p in pages for r in p] == [r["id"] for r in everything[:15]]


def test_a_cutoff_drops_what_scores_below_it_before_sorting(client: TestClient) -> None:
    # the cutoff is on visual similarity, which is the score shown in vector mode (hybrid shows fused ranks)
    ranked = _search(client, text="a red shape", limit=30, mode="vector")["results"]
    cutoff = ranked[9]["score"]
    kept = _search(client, text="a red shape", limit=30, mode="vector", score_threshold=cutoff, sort="-taken_at")["results"]
    assert {r["id"] for r in kept} == {r["id"] for r in ranked if r["score"] >= cutoff}


def test_an_unknown_sort_field_is_a_4xx_listing_the_allowed_ones(client: TestClient) -> None:
    response = client.post("/search", json={"text": "a shape", "sort": "colour"})
    assert 400 <= response.status_code < 500
    message = response.text
    assert "colour" in message and all(f in message for f in ("taken_at", "price", "name"))


# --- facets ---------------------------------------------------------------------------------------


def test_facets_count_the_filtered_candidates_and_a_clicked_value_narrows_them(client: TestClient) -> None:
    every_photo = _search(client, text="a shape", limit=500, filters=PRODUCTS, group=False, dedup=False)["results"]
    page = _search(client, text="a shape", limit=5, filters=PRODUCTS, facets=["category", "brand", "kind"])
    facets = page["facets"]
    assert facets["kind"] == [{"value": "product", "count": len(every_photo)}]
    assert sum(f["count"] for f in facets["category"]) == len(every_photo)
    counts = [f["count"] for f in facets["brand"]]
    assert counts == sorted(counts, reverse=True)
    top = facets["category"][0]
    narrowed = _search(client, text="a shape", limit=5, filters={**PRODUCTS, "categories": [top["value"]]}, facets=["category"])
    assert narrowed["facets"]["category"] == [top]
    assert "facets" not in _search(client, text="a shape", limit=1) or not _search(client, text="a shape", limit=1)["facets"]


def test_a_facet_on_a_field_the_engine_cannot_count_is_a_4xx_listing_the_facetable_ones(client: TestClient) -> None:
    response = client.post("/search", json={"text": "a shape", "facets": ["kind", "price"]})
    assert 400 <= response.status_code < 500
    assert "price" in response.text and all(f in response.text for f in ("category", "brand", "kind", "source"))


# --- feedback -------------------------------------------------------------------------------------


def _colours(ix: Indexed, results: list[dict[str, Any]]) -> list[set[str]]:
    from tests._api_support import corpus

    return [corpus().colours.get(r["path"], set()) for r in results]


def test_liked_and_disliked_results_refine_a_query(client: TestClient, ix: Indexed) -> None:
    images = {"kinds": ["image"]}
    plain = _search(client, text="a shape", limit=20, filters=images)["results"]
    colours = _colours(ix, plain)
    liked = next(r for r, c in zip(plain, colours) if "red" in c and "blue" not in c)
    disliked = next(r for r, c in zip(plain, colours) if "blue" in c and "red" not in c)
    refined = _search(client, text="a shape", limit=10, filters=images, like=[liked["id"]], dislike=[disliked["id"]])["results"]
    red = lambda rs: sum("red" in c for c in _colours(ix, rs))  # noqa: E731
    blue = lambda rs: sum("blue" in c for c in _colours(ix, rs))  # noqa: E731
    assert red(refined) > red(plain[:10]) and blue(refined) < blue(plain[:10])
    alone = _search(client, like=[liked["id"]], limit=5, filters=images)["results"]  # liked results alone: more like these
    assert alone and red(alone) >= 3


def test_feedback_with_unknown_ids_names_each_of_them(client: TestClient) -> None:
    first = _search(client, text="a shape", limit=1)["results"][0]["id"]
    response = client.post("/search", json={"text": "a shape", "like": [first, "nope-1"], "dislike": ["nope-2"]})
    assert response.status_code == 404
    assert "nope-1" in response.text and "nope-2" in response.text and first not in response.text


# --- diversity ------------------------------------------------------------------------------------


def _mean_similarity(ix: Indexed, results: list[dict[str, Any]]) -> float:
    hits = ix.services.store.retrieve([r["id"] for r in results], with_vectors=True)
    m = np.stack([h.vector for h in hits])
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    sims = m @ m.T
    n = len(m)
    return float((sims.sum() - n) / (n * (n - 1)))


def test_diverse_results_are_less_alike_and_keep_the_best_match_first(client: TestClient, ix: Indexed) -> None:
    body = {"text": "a red circle", "limit": 10, "filters": {"kinds": ["image"]}}
    plain = _search(client, **body)["results"]
    diverse = _search(client, **body, diverse=True)["results"]
    assert len(diverse) == 10 and diverse[0]["id"] == plain[0]["id"]
    assert {r["id"] for r in diverse} != {r["id"] for r in plain}
    assert _mean_similarity(ix, diverse) < _mean_similarity(ix, plain)


def test_year_facets_count_the_derived_year_of_taken_at(client: TestClient) -> None:
    every = _search(client, text="a shape", limit=500, filters={"kinds": ["image"]}, group=False)["results"]
    years = Counter(datetime.fromtimestamp(r["taken_at"], timezone.utc).year for r in every)
    page = _search(client, text="a shape", limit=1, filters={"kinds": ["image"]}, facets=["year"])
    assert {f["value"]: f["count"] for f in page["facets"]["year"]} == dict(years)
