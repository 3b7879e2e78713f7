"""Each hard limit of a query is defined once (``search.bounds``) and every layer enforces that value.

The API's JSON body and query parameters, and the engine's own checks (the CLI and the bench
build requests without the API), must agree: a limit changed in one place changes everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from search import bounds
from search.api import create_app
from search.engine.request import SearchRequest
from search.errors import BadQuery
from search.query import TextTerm, parse_query
from search.settings import load_settings


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("bounds"), model="mmsearch-synthetic")
    return create_app(settings).openapi()


def _query_parameter(document: dict, path: str, method: str, name: str) -> dict:
    parameters = document["paths"][path][method]["parameters"]
    schema = next(p["schema"] for p in parameters if p["name"] == name)
    return next((s for s in schema.get("anyOf", []) if s.get("type") == "integer"), schema)


@pytest.mark.parametrize(
    ("name", "maximum"),
    [("k", bounds.MAX_K), ("per_video", bounds.MAX_PER_VIDEO), ("limit", bounds.MAX_LIMIT), ("offset", bounds.MAX_OFFSET)],
)
def test_the_api_reads_the_bounds_in_bodies_and_query_parameters(openapi: dict, name: str, maximum: int) -> None:
    body = openapi["components"]["schemas"]["SearchIn"]["properties"][name]
    body = next((s for s in body.get("anyOf", []) if s.get("type") == "integer"), body)
    assert body["maximum"] == maximum
    assert _query_parameter(openapi, "/search/image", "post", name)["maximum"] == maximum


def test_the_api_bounds_term_weights_and_query_size(openapi: dict) -> None:
    schemas = openapi["components"]["schemas"]
    assert schemas["TermIn"]["properties"]["weight"]["maximum"] == bounds.MAX_ABS_WEIGHT
    assert schemas["TermIn"]["properties"]["weight"]["minimum"] == -bounds.MAX_ABS_WEIGHT
    terms = next(s for s in schemas["SearchIn"]["properties"]["terms"]["anyOf"] if s.get("type") == "array")
    assert terms["maxItems"] == bounds.MAX_TERMS


@pytest.mark.parametrize(
    ("field", "maximum"), [("k", bounds.MAX_K), ("per_video", bounds.MAX_PER_VIDEO), ("offset", bounds.MAX_OFFSET)]
)
def test_the_engine_enforces_the_same_bounds(field: str, maximum: int) -> None:
    SearchRequest(terms=(TextTerm("red"),), **{field: maximum}).validate(max_limit=bounds.MAX_LIMIT)
    with pytest.raises(BadQuery, match=f"{field} must be between"):
        SearchRequest(terms=(TextTerm("red"),), **{field: maximum + 1}).validate(max_limit=bounds.MAX_LIMIT)


def test_the_parser_enforces_the_weight_and_term_bounds() -> None:
    assert parse_query(f'{bounds.MAX_ABS_WEIGHT:g}*"red"')[0].weight == bounds.MAX_ABS_WEIGHT
    with pytest.raises(BadQuery, match="Weights must be between"):
        parse_query(f'{bounds.MAX_ABS_WEIGHT + 1:g}*"red"')
    with pytest.raises(BadQuery, match=f"at most {bounds.MAX_TERMS} terms"):
        parse_query(" + ".join(['"red"'] * (bounds.MAX_TERMS + 1)))


def test_configured_page_sizes_stay_inside_the_hard_limit(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        load_settings(data_dir=tmp_path, search={"max_limit": bounds.MAX_LIMIT + 1})
