"""Between the API's schemas and the core's types, both ways; no business rules here."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from search.api.links import PLAIN, Links
from search.api.schemas import (
    ContributionOut,
    FacetOut,
    FailureOut,
    FiltersIn,
    JobOut,
    LocationOut,
    MediaOut,
    MomentOut,
    ProductOut,
    QueryOptions,
    RangeIn,
    ResultOut,
    SearchIn,
    SearchOut,
    TermOut,
    TimingsOut,
    VariantOut,
)
from search.engine import SearchRequest, SearchResults
from search.engine.media import MediaInfo
from search.engine.results import ResultItem
from search.errors import MediaError, TooLarge
from search.filters import Area, FieldFilter, FilterSpec, Near
from search.moments import Moment
from search.payload import VIDEO_KINDS, FramePayload, Payload, ProductPayload, SegmentPayload
from search.query import IdTerm, ImageTerm, Term, TextTerm, UrlTerm, parse_search

# --- requests -------------------------------------------------------------------------------


def search_request(body: SearchIn, max_upload_bytes: int) -> SearchRequest:
    """The core request for a JSON search body (the body has already been shape-validated)."""
    terms: tuple[Term, ...] = ()
    if body.text is not None:
        terms = (TextTerm(body.text),)
    elif body.query is not None:
        terms = tuple(parse_search(body.query))
    elif body.terms is not None:
        terms = tuple(_term(t, max_upload_bytes) for t in body.terms)
    elif body.image is not None:
        terms = (ImageTerm(decode_base64_image(body.image, max_upload_bytes)),)
    elif body.url is not None:
        terms = (UrlTerm(body.url),)
    elif body.id is not None:
        terms = (IdTerm(body.id),)
    typed = body.query  # the keyword syntax ("quoted phrases") applies to the query syntax; text is literal
    request = SearchRequest(
        terms=terms,
        positive=tuple(body.positive),
        negative=tuple(body.negative),
        like=tuple(body.like),
        dislike=tuple(body.dislike),
        query_text=typed,
    )
    return with_options(request, body)


def with_options(request: SearchRequest, options: QueryOptions) -> SearchRequest:
    """Copy the shaping options (target, pooling, paging, filters, …) onto a request."""
    return replace(
        request,
        target=options.target,
        pooling=options.pooling,
        k=options.k,
        per_video=options.per_video,
        signal=options.signal,
        limit=options.limit,
        offset=options.offset,
        score_threshold=options.score_threshold,
        dedup=options.dedup,
        dedup_threshold=options.dedup_threshold,
        group=options.group,
        sort=options.sort,
        diverse=options.diverse,
        facets=tuple(options.facets),
        mode=options.mode,
        keywords=options.keywords,
        explain=options.explain,
        ensemble=options.ensemble,
        filters=filter_spec(options.filters),
    )


def _term(term: Any, max_upload_bytes: int) -> Term:
    if term.text is not None:
        return TextTerm(term.text, term.weight)
    if term.image is not None:
        return ImageTerm(decode_base64_image(term.image, max_upload_bytes), term.weight)
    if term.url is not None:
        return UrlTerm(term.url, term.weight)
    return IdTerm(term.id, term.weight)


def decode_base64_image(text: str, max_upload_bytes: int) -> bytes:
    """Bytes of a base64 image (``data:`` URLs accepted); MediaError if it is not base64."""
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    if len(payload) * 3 // 4 > max_upload_bytes + 3:
        raise TooLarge(f"The image is larger than the {max_upload_bytes // 1024} KiB upload limit.")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError("The image is not valid base64.") from exc
    if not data:
        raise MediaError("The image is empty (0 bytes).")
    return data


def filter_spec(filters: FiltersIn | None) -> FilterSpec:
    if filters is None:
        return FilterSpec()
    return FilterSpec(
        kinds=tuple(filters.kinds),
        sources=tuple(filters.sources),
        path_prefix=filters.path_prefix,
        taken_after=_unix(filters.taken_after),
        taken_before=_unix(filters.taken_before),
        min_size=filters.min_size,
        max_size=filters.max_size,
        min_width=filters.min_width,
        min_height=filters.min_height,
        categories=tuple(filters.categories),
        brands=tuple(filters.brands),
        min_price=filters.min_price,
        max_price=filters.max_price,
        fields=tuple(_field(key, value) for key, value in filters.fields.items()),
        near=Near(filters.near.lat, filters.near.lon, filters.near.km) if filters.near else None,
        area=Area(filters.area.north, filters.area.west, filters.area.south, filters.area.east) if filters.area else None,
    )


def _unix(value: float | datetime | None) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    return aware.timestamp()


def _field(key: str, value: Any) -> FieldFilter:
    if isinstance(value, RangeIn):
        return FieldFilter(key, gte=value.gte, lte=value.lte)
    values = tuple(value) if isinstance(value, list) else (value,)
    return FieldFilter(key, values)


# --- responses ------------------------------------------------------------------------------


def search_out(results: SearchResults, links: Links = PLAIN) -> SearchOut:
    t = results.timings
    return SearchOut(
        target=results.target,
        query_type=results.query_type,
        terms=[TermOut(kind=i.kind, label=i.label, weight=i.weight) for i in results.terms],
        results=[result_out(item, links) for item in results.items],
        offset=results.offset,
        limit=results.limit,
        next_offset=results.next_offset,
        timings=TimingsOut(encode_ms=round(t.encode_ms, 3), store_ms=round(t.store_ms, 3), total_ms=round(t.total_ms, 3)),
        facets={name: [FacetOut(value=c.value, count=c.count) for c in counts] for name, counts in results.facets.items()},
    )


def result_out(item: ResultItem, links: Links = PLAIN) -> ResultOut:
    p = item.payload
    moment = moment_out(item.moment, links) if item.moment else None
    moments = [moment_out(m, links) for m in item.moments]
    thumb = _result_thumbnail(item, links)
    t = p.t if item.kind == "frame" and isinstance(p, FramePayload) else None
    return ResultOut(
        id=item.point_id,
        media_id=item.media_id,
        kind=item.kind,
        score=round(item.score, 6),
        name=p.name or None,
        uri=p.uri or None,
        thumbnail_url=thumb,
        file_url=moment.file_url if moment else _file_url(links, item.media_id, t),
        width=p.width,
        height=p.height,
        taken_at=p.taken_at,
        size_bytes=p.size_bytes,
        source=p.source or None,
        path=p.path,
        duration=_duration(p),
        t=t,
        product=product_out(p),
        moment=moment,
        moments=moments,
        duplicates=list(item.duplicates),
        variants=[variant_out(v, links) for v in item.variants],
        contributions=[
            ContributionOut(term=c.label, weight=c.weight, similarity=c.similarity, contribution=c.contribution)
            for c in item.contributions
        ]
        or None,
        location=location_out(p),
        metadata=p.details(),
    )


def variant_out(item: ResultItem, links: Links = PLAIN) -> VariantOut:
    p = item.payload
    return VariantOut(
        id=item.point_id,
        media_id=item.media_id,
        score=round(item.score, 6),
        name=p.name or None,
        path=p.path,
        thumbnail_url=links.media_thumbnail(item.media_id),
    )


def location_out(p: Payload | None) -> LocationOut | None:
    """The payload's geo point (images with an EXIF GPS position), else None."""
    geo = getattr(p, "geo", None)
    return LocationOut(lat=geo.lat, lon=geo.lon) if geo is not None else None


def _result_thumbnail(item: ResultItem, links: Links) -> str:
    if item.moment is not None or item.kind == "video":
        best = item.moment.best_point_id if item.moment else (item.moments[0].best_point_id if item.moments else None)
        return links.point_thumbnail(best) if best else links.media_thumbnail(item.media_id)
    if item.kind in VIDEO_KINDS and item.point_id and item.payload.thumb:
        return links.point_thumbnail(item.point_id)
    return links.media_thumbnail(item.media_id)


def moment_out(m: Moment, links: Links = PLAIN) -> MomentOut:
    return MomentOut(
        video_id=m.video_id,
        start=round(m.start, 3),
        end=round(m.end, 3),
        score=round(m.score, 6),
        best_t=m.best_t,
        best_point_id=m.best_point_id or None,
        signal=m.signal,
        thumbnail_url=links.point_thumbnail(m.best_point_id) if m.best_point_id else links.media_thumbnail(m.video_id),
        file_url=f"{links.media_file(m.video_id)}#t={m.start:g},{m.end:g}",
        clip_url=links.clip(m.video_id, m.start, m.end),
    )


def product_out(p: Payload | None) -> ProductOut | None:
    if not isinstance(p, ProductPayload):
        return None
    return ProductOut(
        product_id=p.product_id or None,
        title=p.title,
        category=p.category,
        brand=p.brand,
        price=p.price,
        fields=p.details(),
    )


def _duration(p: Payload) -> float | None:
    return p.duration if isinstance(p, (FramePayload, SegmentPayload)) else None


def media_out(info: MediaInfo, links: Links = PLAIN) -> MediaOut:
    p, r = info.payload, info.record
    return MediaOut(
        id=info.media_id,
        kind=info.kind,
        uri=info.uri,
        name=info.name,
        thumbnail_url=links.media_thumbnail(info.media_id),
        file_url=links.media_file(info.media_id),
        points=info.points,
        status=r.status if r else None,
        error=r.error if r else None,
        width=(p.width if p else None) or (r.width if r else None),
        height=(p.height if p else None) or (r.height if r else None),
        duration=(_duration(p) if p else None) or (r.duration if r else None),
        size_bytes=(p.size_bytes if p else None) or (r.size_bytes if r else None),
        taken_at=p.taken_at if p else None,
        source=(p.source if p else None) or (r.source_id if r else None),
        indexed_at=r.indexed_at if r else None,
        product=product_out(p),
        location=location_out(p),
        metadata={**(r.metadata if r else {}), **(p.details() if p else {})},
    )


def job_out(job: Any, failures: Sequence[Any] = ()) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        params=job.params,
        discovered=job.discovered,
        indexed=job.indexed,
        skipped=job.skipped,
        failed=job.failed,
        processed=job.processed,
        finished=job.finished,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        failures=[FailureOut(uri=f.uri, reason=f.reason, at=f.at) for f in failures],
        owner=job.owner,
        heartbeat_at=job.heartbeat_at,
        resumed_from=job.resumed_from,
        resumed_by=job.resumed_by,
    )


# --- URLs ----------------------------------------------------------------------------------------


def _file_url(links: Links, media_id: str, t: float | None) -> str:
    url = links.media_file(media_id)
    return f"{url}#t={t:g}" if t is not None else url
