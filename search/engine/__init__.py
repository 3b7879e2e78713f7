"""The search service: plain functions over ``Services``, shared by the API, the CLI and the bench.

``search(services, request)`` runs any query (text, image, id, arithmetic, examples) for any
target (images, moments, videos); ``similar(services, item_id)`` is "more like this". Both
raise ``search.errors`` types (BadQuery, BadFilter, NotFound, MediaError, ...) and never
print; the outer layer decides how a user sees them.
"""

from __future__ import annotations

import time
from dataclasses import replace

from search.engine.facets import facet_counts
from search.engine.feedback import with_feedback
from search.engine.images import image_results
from search.engine.prepare import prepare
from search.engine.request import Pooling, SearchRequest, Target
from search.engine.results import Contribution, ResultItem, SearchResults, TermInfo, Timings
from search.engine.terms import UnsupportedImage, resolve_item
from search.engine.videos import video_filter_spec, video_results
from search.errors import BadQuery
from search.filters import FilterSpec, to_store_filter
from search.payload import MEDIA_ID, VIDEO_KINDS, ProductPayload
from search.query import IdTerm
from search.services import Services
from search.store.base import Match

__all__ = [
    "Contribution",
    "FilterSpec",
    "Pooling",
    "ResultItem",
    "SearchRequest",
    "SearchResults",
    "Target",
    "TermInfo",
    "Timings",
    "UnsupportedImage",
    "search",
    "similar",
]

IMAGE_KINDS = ("image", "product")  # what target=images returns unless kinds are asked for


def search(services: Services, request: SearchRequest) -> SearchResults:
    """Run one search and return a page of typed results (see ``SearchRequest``)."""
    started = time.perf_counter()
    settings = services.settings.search
    request.validate(settings.max_limit)
    request = with_feedback(services, request)  # liked/disliked ids join the query (terms or examples)
    limit = request.limit or settings.default_limit
    if request.target == "images":  # filters are checked before any encoding work
        flt = to_store_filter(request.filters, kinds=() if request.filters.kinds else IMAGE_KINDS)
        if request.exclude_media:
            flt = flt.excluding(Match(MEDIA_ID, tuple(request.exclude_media)))
        prepared = prepare(services, request)
        page = image_results(services, request, prepared, flt, limit)
    else:
        spec = video_filter_spec(request.filters)
        prepared = prepare(services, request)
        page = video_results(services, request, prepared, spec, limit)
        flt = to_store_filter(spec, kinds=("frame",))  # facets count frames: one per sampled moment
    facets = facet_counts(services.store, flt, request.facets) if request.facets else {}
    total_ms = (time.perf_counter() - started) * 1000
    return SearchResults(
        target=request.target,
        query_type=request.query_type,
        items=page.items,
        offset=request.offset,
        limit=limit,
        next_offset=page.next_offset,
        terms=prepared.terms,
        timings=Timings(prepared.encode_ms, prepared.store_ms + page.store_ms, total_ms),
        facets=facets,
    )


def similar(
    services: Services,
    item_id: str,
    *,
    same_category: bool = False,
    filters: FilterSpec | None = None,
    target: Target | None = None,
    limit: int | None = None,
    offset: int = 0,
    score_threshold: float | None = None,
    dedup: bool | None = None,
) -> SearchResults:
    """More like ``item_id`` (a point or media id), never returning the item itself.

    Products are compared with products (near-duplicates collapsed unless ``dedup=False``),
    optionally only within the item's own category; a video is compared with other videos.
    """
    spec = filters or FilterSpec()
    to_store_filter(spec)  # a bad filter is the client's mistake whether or not the id exists
    source = resolve_item(services, item_id)
    kind = source.kind
    if same_category:
        category = source.payload.category if isinstance(source.payload, ProductPayload) else None
        if not category:
            raise BadQuery(f"Item {item_id!r} has no category, so same_category cannot apply.")
        spec = replace(spec, categories=(category,))
    if kind == "product" and not spec.kinds:
        spec = replace(spec, kinds=("product",))
    chosen = target or ("videos" if kind == "video" or kind in VIDEO_KINDS else "images")
    request = SearchRequest(
        terms=(IdTerm(item_id),),
        target=chosen,
        filters=spec,
        limit=limit,
        offset=offset,
        score_threshold=score_threshold,
        dedup=dedup,
        exclude_media=(source.media_id,),
    )
    return search(services, request)
