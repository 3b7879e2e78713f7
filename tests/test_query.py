"""The query core: the compact syntax, composition, explanation, duplicates and filters."""

from __future__ import annotations

import numpy as np
import pytest

from search.dedup import collapse, duplicate_groups
from search.errors import BadQuery
from search.filters import BadFilter, FieldFilter, FilterSpec, to_store_filter
from search.query import (
    FileTerm,
    IdTerm,
    TextTerm,
    UrlTerm,
    compose,
    contributions,
    examples_vector,
    format_query,
    parse_query,
)
from search.store.base import Filter, Match, Range

# --- parser -----------------------------------------------------------------------------


def test_parses_the_issue_example_into_weighted_terms():
    terms = parse_query('"beach" + id:42 - 0.5*"people"')
    assert terms == [
        TextTerm("beach", 1.0, 0),
        IdTerm("42", 1.0, 10),
        TextTerm("people", -0.5, 22),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("red car", [TextTerm("red car", 1.0, 0)]),
        ("t-shirt - logo", [TextTerm("t-shirt", 1.0, 0), TextTerm("logo", -1.0, 10)]),
        ("beach -people", [TextTerm("beach", 1.0, 0), TextTerm("people", -1.0, 7)]),
        ("-people", [TextTerm("people", -1.0, 1)]),
        ("sunset × 2 − 'people' * 0.5", [TextTerm("sunset", 2.0, 0), TextTerm("people", -0.5, 13)]),
        ("2*beach*0.5", [TextTerm("beach", 1.0, 2)]),
        ("3 dogs", [TextTerm("3 dogs", 1.0, 0)]),
        ('"say \\"cheese\\""', [TextTerm('say "cheese"', 1.0, 0)]),
        ("https://example.com/a.jpg + night", [UrlTerm("https://example.com/a.jpg", 1.0, 0), TextTerm("night", 1.0, 28)]),
        ("url:http://x.org/b.png", [UrlTerm("http://x.org/b.png", 1.0, 0)]),
        ("file:/tmp/a b.jpg", None),  # a space ends an unquoted path: "b.jpg" is a stray term
        ('file:"/tmp/a b.jpg" + dusk', [FileTerm("/tmp/a b.jpg", 1.0, 0), TextTerm("dusk", 1.0, 22)]),
        ("img:/tmp/x.png", [FileTerm("/tmp/x.png", 1.0, 0)]),
        ("猫 + 夜", [TextTerm("猫", 1.0, 0), TextTerm("夜", 1.0, 4)]),
    ],
)
def test_parses_valid_forms(text, expected):
    if expected is None:
        with pytest.raises(BadQuery):
            parse_query(text)
    else:
        assert parse_query(text) == expected


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("beach +", 7, "after '+'"),
        ('"beach', 0, "Unterminated quote"),
        ('sea + "sky', 6, "Unterminated quote"),
        ('a "b"', 2, "between terms"),
        ("0.5*", 4, "after '*'"),
        ("people *", 8, "number after '*'"),
        ("people * x", 9, "number after '*'"),
        ("a + * b", 4, "Expected a term"),
        ("id:", 0, "needs a value"),
        ("sea + id: 4", 6, "needs a value"),
        ("url:ftp://x", 0, "http"),
        ('""', 0, "Empty quoted"),
        ("a * 1000", 0, "Weights"),
        ('"red" + 500*"blue"', 8, "Weights"),  # where the weighted term starts, weight included
    ],
)
def test_syntax_errors_report_their_position(text, position, words):
    with pytest.raises(BadQuery) as info:
        parse_query(text)
    assert info.value.position == position
    assert words in str(info.value)
    if text.strip():
        assert f"position {position}" in str(info.value)


def test_a_query_with_too_many_terms_is_refused():
    with pytest.raises(BadQuery, match="at most"):
        parse_query(" + ".join(["cat"] * 40))


@pytest.mark.parametrize("text", ['"beach" + id:42 - 0.5*"people"', "-2*a + b", "url:https://e.org/x.jpg - 'q\"t'"])
def test_format_query_round_trips(text):
    terms = parse_query(text)
    again = parse_query(format_query(terms))
    assert [(type(t), t.label, t.weight) for t in again] == [(type(t), t.label, t.weight) for t in terms]


# --- composition --------------------------------------------------------------------------


def test_compose_normalises_each_term_before_weighting():
    # a long vector must not outweigh a short one: weights alone decide
    big = np.array([10.0, 0.0, 0.0])
    small = np.array([0.0, 0.1, 0.0])
    comp = compose([big, small], [1.0, 1.0])
    assert comp.vector == pytest.approx(np.array([1, 1, 0]) / np.sqrt(2), abs=1e-6)
    assert np.linalg.norm(comp.vector) == pytest.approx(1.0)


def test_compose_negative_weight_pushes_away():
    a, b = np.eye(3)[0], np.eye(3)[1]
    comp = compose([a, b], [1.0, -0.5])
    assert comp.vector @ b < 0 < comp.vector @ a


def test_compose_refuses_terms_that_cancel_out():
    a = np.array([0.3, 0.4, 0.0])
    with pytest.raises(BadQuery, match="cancel"):
        compose([a, a], [1.0, -1.0])


def test_contributions_sum_exactly_to_the_cosine_score():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, 16))
    comp = compose(vecs, [1.0, -0.4, 0.7])
    x = rng.normal(size=16)
    x /= np.linalg.norm(x)
    parts = contributions(comp, x)
    assert parts.sum() == pytest.approx(float(comp.vector @ x), abs=1e-5)
    assert parts[1] * np.sign(comp.units[1] @ x) <= 0  # a negative term subtracts its similarity


def test_examples_vector_is_qdrants_average_vector_strategy():
    pos = np.array([[1.0, 0.0], [0.0, 1.0]])
    neg = np.array([[1.0, 0.0]])
    v = examples_vector(pos, neg)
    expected = 2 * pos.mean(axis=0) - neg[0]
    assert v == pytest.approx(expected / np.linalg.norm(expected))


# --- near-duplicates ----------------------------------------------------------------------


def test_near_duplicates_collapse_into_connected_groups_keeping_the_best_ranked():
    base = np.eye(4)
    a = base[0]
    a2 = a + 0.05 * base[1]  # close to a
    a3 = a2 + 0.05 * base[2]  # close to a2 (and so grouped with a even if further from it)
    b = base[3]
    groups = duplicate_groups(np.stack([a, b, a2, a3]), threshold=0.995)
    assert [(g.keep, g.duplicates) for g in groups] == [(0, (2, 3)), (1, ())]
    shown = collapse(["a", "b", "a2", "a3"], np.stack([a, b, a2, a3]), 0.995)
    assert shown == [("a", ["a2", "a3"]), ("b", [])]


def test_distinct_items_are_never_collapsed():
    assert len(duplicate_groups(np.eye(5), threshold=0.94)) == 5
    assert duplicate_groups(np.zeros((0, 3)), 0.9) == []


# --- filters -------------------------------------------------------------------------------


def test_filter_spec_translates_to_store_conditions():
    spec = FilterSpec(
        kinds=("product",),
        sources=("shop",),
        path_prefix="/data/photos/",
        taken_after=100.0,
        taken_before=200.0,
        min_size=10,
        categories=("shoes",),
        brands=("acme", "zeta"),
        min_price=5,
        max_price=50,
        fields=(FieldFilter("color", ("red",)), FieldFilter("rating", gte=4.0)),
    )
    flt = to_store_filter(spec)
    assert set(flt.must) == {
        Match("kind", ("product",)),
        Match("source", ("shop",)),
        Match("dirs", ("/data/photos",)),
        Range("taken_at", gte=100.0, lte=200.0),
        Range("size_bytes", gte=10.0),
        Match("category", ("shoes",)),
        Match("brand", ("acme", "zeta")),
        Range("price", gte=5.0, lte=50.0),
        Match("color", ("red",)),
        Range("rating", gte=4.0),
    }


def test_empty_filter_spec_is_an_empty_filter():
    assert to_store_filter(FilterSpec()) == Filter()


def test_target_kinds_intersect_with_asked_kinds():
    assert to_store_filter(FilterSpec(kinds=("image", "frame")), kinds=("frame",)).must == (Match("kind", ("frame",)),)
    assert to_store_filter(FilterSpec(), kinds=("image", "product")).must == (Match("kind", ("image", "product")),)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (FilterSpec(kinds=("video",)), "Unknown kind"),
        (FilterSpec(path_prefix="photos"), "absolute"),
        (FilterSpec(min_price=10, max_price=1), "greater than"),
        (FilterSpec(taken_after=float("nan")), "finite"),
        (FilterSpec(fields=(FieldFilter("bad name", ("x",)),)), "not valid"),
        (FilterSpec(fields=(FieldFilter("color"),)), "either"),
        (FilterSpec(fields=(FieldFilter("n", (1.5,)),)), "gte/lte"),
        (FilterSpec(fields=(FieldFilter("n", ("a", 1)),)), "must all be strings"),
        (FilterSpec(sources=("",)), "non-empty"),
    ],
)
def test_bad_filters_are_refused_with_a_reason(spec, words):
    with pytest.raises(BadFilter, match=words):
        to_store_filter(spec)


def test_kind_filter_that_excludes_the_target_is_an_error_not_an_empty_result():
    with pytest.raises(BadFilter, match="excludes"):
        to_store_filter(FilterSpec(kinds=("product",)), kinds=("frame",))


# --- filters restrict results inside both store backends -------------------------------------

import math  # noqa: E402

from search.ids import media_id, point_id  # noqa: E402
from search.settings import load_settings  # noqa: E402
from search.store import Point, open_store  # noqa: E402

DIM = 32
N = 240
T0 = 1_600_000_000.0


def _payload(i: int) -> dict:
    kind = ("image", "frame", "segment", "product")[i % 4]
    folder = ["/data/photos", "/data/photos/2021", "/srv/shop"][i % 3]
    uri = f"file://{folder}/item{i}.jpg"
    payload = {
        "kind": kind,
        "media_id": media_id(uri),
        "source": f"src{i % 2}",
        "uri": uri,
        "path": f"{folder}/item{i}.jpg",
        "dirs": ["/data", "/data/photos", "/data/photos/2021"][: folder.count("/")]
        if folder.startswith("/data")
        else ["/srv", "/srv/shop"],
        "taken_at": T0 + i * 3600.0,
        "size_bytes": 1000 + 10 * i,
        "width": 100 + i,
        "height": 80 + i,
    }
    if kind == "product":
        payload.update(
            category=["shoes", "hats", "bags"][i % 3],
            brand=["acme", "zeta"][(i // 4) % 2],
            price=float(i % 50),
            color=["red", "blue"][(i // 8) % 2],
            rating=i % 5,
        )
    return payload


@pytest.fixture(scope="module", params=["edge", "server"])
def filled_store(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    url = f"edge://{root}" if request.param == "edge" else f"local://{root}"
    store = open_store(load_settings(data_dir=root, store_url=url), dim=DIM, model="filters-test")
    rng = np.random.default_rng(3)
    points = [
        Point(point_id("filters-test", _payload(i)["media_id"], _payload(i)["kind"]), rng.normal(size=DIM), _payload(i))
        for i in range(N)
    ]
    store.upsert(points)
    yield store, [p.payload for p in points]
    store.close()


FILTER_CASES = {
    "kind": (FilterSpec(kinds=("product",)), lambda p: p["kind"] == "product"),
    "source": (FilterSpec(sources=("src1",)), lambda p: p["source"] == "src1"),
    "folder": (FilterSpec(path_prefix="/data/photos"), lambda p: p["path"].startswith("/data/photos/")),
    "subfolder": (FilterSpec(path_prefix="/data/photos/2021/"), lambda p: p["path"].startswith("/data/photos/2021/")),
    "dates": (
        FilterSpec(taken_after=T0 + 50 * 3600, taken_before=T0 + 120 * 3600),
        lambda p: T0 + 50 * 3600 <= p["taken_at"] <= T0 + 120 * 3600,
    ),
    "size": (FilterSpec(min_size=1500, max_size=2500), lambda p: 1500 <= p["size_bytes"] <= 2500),
    "width": (FilterSpec(min_width=300), lambda p: p["width"] >= 300),
    "category_brand": (
        FilterSpec(categories=("shoes", "bags"), brands=("acme",)),
        lambda p: p.get("category") in ("shoes", "bags") and p.get("brand") == "acme",
    ),
    "price": (FilterSpec(min_price=10, max_price=20), lambda p: "price" in p and 10 <= p["price"] <= 20),
    "manifest_field": (FilterSpec(fields=(FieldFilter("color", ("red",)),)), lambda p: p.get("color") == "red"),
    "manifest_range": (FilterSpec(fields=(FieldFilter("rating", gte=3),)), lambda p: p.get("rating", -1) >= 3),
    "combined": (
        FilterSpec(kinds=("product",), path_prefix="/srv/shop", min_price=5),
        lambda p: p["kind"] == "product" and p["path"].startswith("/srv/shop/") and p["price"] >= 5,
    ),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filters_restrict_results_inside_the_store(filled_store, case):
    store, payloads = filled_store
    spec, predicate = FILTER_CASES[case]
    expected = sum(1 for p in payloads if predicate(p))
    assert 0 < expected < N, "each case must keep some points and drop others"
    flt = to_store_filter(spec)
    assert store.count(flt) == expected
    hits = store.query(np.ones(DIM), flt, limit=N)
    assert len(hits) == expected  # pushed into the store: the full count comes back, not a post-filtered page
    assert all(predicate(h.payload) for h in hits)


def test_a_selective_filter_still_fills_the_page(filled_store):
    store, payloads = filled_store
    spec = FilterSpec(kinds=("product",), categories=("hats",))
    expected = sum(1 for p in payloads if p.get("category") == "hats")
    hits = store.query(np.ones(DIM), to_store_filter(spec), limit=10)
    assert len(hits) == min(10, expected) and not math.isnan(hits[0].score)
