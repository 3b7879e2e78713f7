"""Searching: JSON queries, image uploads, and "more like this"."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Response, UploadFile

from search import engine
from search.api import convert
from search.api.deps import MediaLinks, State, filter_query, options_query
from search.api.limits import UrlAdmission
from search.api.links import Links
from search.api.schemas import ErrorOut, FiltersIn, QueryOptions, SearchIn, SearchOut, TargetName
from search.engine import SearchRequest
from search.errors import MediaError, TooLarge
from search.query import ImageTerm, Term, parse_query

router = APIRouter(tags=["search"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "bad query (with the position of a syntax error) or unusable image"},
    404: {"model": ErrorOut, "description": "an id in the query is not indexed"},
    413: {"model": ErrorOut, "description": "upload larger than the limit"},
    415: {"model": ErrorOut, "description": "the upload is not an image"},
    422: {"model": ErrorOut, "description": "malformed request or filter, or an image URL too slow to fetch (fetch_timeout)"},
    429: {"model": ErrorOut, "description": "too many searches with image URLs at once; see Retry-After"},
    503: {"model": ErrorOut, "description": "model or store unavailable"},
}


def _run(state: State, request: SearchRequest, links: Links, admit: UrlAdmission) -> Response:
    with admit(request.terms):  # searches with image URLs: capped, and under one deadline
        results = engine.search(state.services, request)
    state.metrics.observe_search(results)
    return _json(convert.search_out(results, links))


def _json(out: SearchOut) -> Response:
    """The response, serialised once: returning the model would make FastAPI validate it again
    against ``response_model``, which costs more than the search itself on a small index."""
    return Response(out.model_dump_json(), media_type="application/json")


@router.post("/search", response_model=SearchOut, responses=ERRORS, summary="Search by text, image, id, arithmetic or examples")
def search(body: SearchIn, state: State, links: MediaLinks, admit: UrlAdmission) -> Response:
    """Run a search described in JSON; see the request schema's examples."""
    return _run(state, convert.search_request(body, state.settings.api.max_upload_bytes), links, admit)


@router.post("/search/image", response_model=SearchOut, responses=ERRORS, summary="Search with an uploaded image")
def search_image(
    state: State,
    links: MediaLinks,
    admit: UrlAdmission,
    options: Annotated[QueryOptions, Depends(options_query)],
    file: Annotated[UploadFile, File(description="the query image")],
    query: Annotated[str | None, Form(max_length=2000, description='terms added to the image, e.g. + "night" - "day"')] = None,
    image_weight: Annotated[float, Form(ge=-100, le=100)] = 1.0,
) -> Response:
    """Multipart upload (field ``file``); options and filters are query parameters."""
    data = _read_upload(file, state.settings.api.max_upload_bytes)
    terms: list[Term] = [ImageTerm(data, image_weight, name=file.filename or "upload")]
    if query and query.strip():
        terms += parse_query(query)  # positions in errors point into the form field as sent
    return _run(state, convert.with_options(SearchRequest(terms=tuple(terms)), options), links, admit)


def _read_upload(file: UploadFile, limit: int) -> bytes:
    if file.size is not None and file.size > limit:
        raise TooLarge(f"The upload is larger than the {limit // 1024} KiB limit.")
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"The upload is larger than the {limit // 1024} KiB limit.")
    if not data:
        raise MediaError("The uploaded file is empty.")
    return data


@router.get("/similar/{item_id}", response_model=SearchOut, responses=ERRORS, summary="More like this item")
def similar(
    state: State,
    links: MediaLinks,
    item_id: Annotated[str, Path(min_length=1, max_length=200, description="point id or media id")],
    filters: Annotated[FiltersIn, Depends(filter_query)],
    same_category: Annotated[bool, Query(description="products: only the item's own category")] = False,
    target: TargetName | None = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    score_threshold: Annotated[float | None, Query(ge=-1, le=1)] = None,
    dedup: bool | None = None,
) -> Response:
    """Items closest to ``item_id``, never the item itself; products compare with products."""
    results = engine.similar(
        state.services,
        item_id,
        same_category=same_category,
        filters=convert.filter_spec(filters),
        target=target,
        limit=limit,
        offset=offset,
        score_threshold=score_threshold,
        dedup=dedup,
    )
    state.metrics.observe_search(results)
    return _json(convert.search_out(results, links))
