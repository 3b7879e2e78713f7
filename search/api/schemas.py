"""The HTTP API's request and response shapes (OpenAPI), kept apart from the core's types.

Requests forbid unknown fields, so a typo (``"kinds"`` vs ``"kind"``) is a 422 naming the field
instead of a silently ignored filter. Numbers are bounded to what the core and the stores can
hold (``search.bounds``): an integer past 64 bits or an infinite float is a 422, not a 500 in a
store. ``search.api.convert`` maps these to and from the core.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, model_validator

from search import bounds

Kind = Literal["image", "frame", "segment", "product"]
TargetName = Literal["images", "moments", "videos"]
PoolingName = Literal["topk", "mean"]
SignalName = Literal["visual", "speech", "both"]
ShortText = Annotated[str, Field(min_length=1, max_length=1000)]
Identifier = Annotated[str, Field(min_length=1, max_length=200)]
HttpUrlText = Annotated[str, Field(min_length=8, max_length=4096, pattern=r"^https?://")]
Base64Image = Annotated[str, Field(min_length=1, description="image bytes in base64 (a data: URL prefix is accepted)")]
Weight = Annotated[
    float, Field(ge=-bounds.MAX_ABS_WEIGHT, le=bounds.MAX_ABS_WEIGHT, description="term weight; negative pushes away")
]
Int64 = Annotated[StrictInt, Field(ge=bounds.INT64_MIN, le=bounds.INT64_MAX)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=bounds.INT64_MAX)]

_STRICT = ConfigDict(extra="forbid")


# --- requests ------------------------------------------------------------------------------


class TermIn(BaseModel):
    """One weighted query term: exactly one of text, image, url or id."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "sunset", "weight": 1.0}, {"id": "3f0c…", "weight": -0.5}]}
    )

    text: ShortText | None = None
    image: Base64Image | None = None
    url: HttpUrlText | None = Field(None, description="an image on the web (private addresses are refused)")
    id: Identifier | None = Field(None, description="a point id or media id of an indexed item")
    weight: Weight = 1.0

    @model_validator(mode="after")
    def _exactly_one(self) -> TermIn:
        given = [name for name in ("text", "image", "url", "id") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a term needs exactly one of text, image, url or id")
        return self


class RangeIn(BaseModel):
    """A numeric range; either side may be left open."""

    model_config = _STRICT
    gte: FiniteFloat | None = None
    lte: FiniteFloat | None = None

    @model_validator(mode="after")
    def _one_side(self) -> RangeIn:
        if self.gte is None and self.lte is None:
            raise ValueError("a range needs gte, lte or both")
        return self


def _storable(value: Any) -> Any:
    """Refuse, with one clear message, numbers no store can compare (before the union's own checks,
    whose per-member messages would bury the reason)."""
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, int) and not isinstance(v, bool) and not bounds.INT64_MIN <= v <= bounds.INT64_MAX for v in values):
        raise ValueError(f"integers must lie in the signed 64-bit range ({bounds.INT64_MIN} to {bounds.INT64_MAX})")
    if isinstance(value, dict):
        for side in ("gte", "lte"):
            if not _finite_or_not_a_number(value.get(side)):
                raise ValueError(f"{side} must be a finite number")
    return value


def _finite_or_not_a_number(value: Any) -> bool:
    """False only for what reads as infinity or NaN; anything else is left to the type checks."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return True
    try:
        return math.isfinite(float(value))
    except (ValueError, OverflowError):
        return True


Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class NearIn(BaseModel):
    """Taken within ``km`` kilometres of a place (EXIF GPS position, decimal degrees)."""

    model_config = _STRICT
    lat: Latitude
    lon: Longitude
    km: float = Field(gt=0, le=20_038, allow_inf_nan=False, description="radius in kilometres")


class AreaIn(BaseModel):
    """Taken inside a latitude/longitude box; ``west`` greater than ``east`` crosses the antimeridian."""

    model_config = _STRICT
    north: Latitude
    west: Longitude
    south: Latitude
    east: Longitude

    @model_validator(mode="after")
    def _north_of_south(self) -> AreaIn:
        if self.north < self.south:
            raise ValueError("north must not be south of south")
        return self


class LocationOut(BaseModel):
    lat: float
    lon: float


FieldValue = Annotated[Union[StrictStr, Int64, list[StrictStr | Int64], RangeIn], BeforeValidator(_storable)]
Timestamp = Union[FiniteFloat, datetime]


class FiltersIn(BaseModel):
    """Restrictions applied inside the vector store; empty fields restrict nothing.

    Dates accept ISO 8601 (naive means UTC) or unix seconds; ``taken_at`` is the EXIF date
    taken, else the file's modification time. ``fields`` matches any other payload field, e.g.
    a manifest column: ``{"color": "red"}``, ``{"color": ["red", "blue"]}``, ``{"rating": {"gte": 4}}``.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"kinds": ["product"], "categories": ["shoes"], "max_price": 80}]},
    )

    kinds: list[Kind] = Field(default_factory=list, max_length=4)
    sources: list[Identifier] = Field(default_factory=list, max_length=256)
    path_prefix: str | None = Field(None, max_length=4096, description="absolute folder; files anywhere below match")
    taken_after: Timestamp | None = None
    taken_before: Timestamp | None = None
    min_size: Count | None = Field(None, description="file size in bytes")
    max_size: Count | None = None
    min_width: Count | None = None
    min_height: Count | None = None
    categories: list[ShortText] = Field(default_factory=list, max_length=256)
    brands: list[ShortText] = Field(default_factory=list, max_length=256)
    min_price: FiniteFloat | None = None
    max_price: FiniteFloat | None = None
    fields: dict[str, FieldValue] = Field(default_factory=dict, max_length=32)
    near: NearIn | None = Field(None, description="taken near a place (media without a GPS position never match)")
    area: AreaIn | None = Field(None, description="taken inside a latitude/longitude box")


class QueryOptions(BaseModel):
    """How results are shaped; shared by every search endpoint."""

    model_config = _STRICT

    target: TargetName = Field("images", description="images: points; moments: video stretches; videos: whole videos")
    pooling: PoolingName = Field("topk", description="video pooling: mean of top-k frame scores, or mean-pooled segment vectors")
    k: int | None = Field(None, ge=1, le=bounds.MAX_K, description="frames averaged by top-k pooling (default from settings)")
    per_video: int = Field(bounds.DEFAULT_PER_VIDEO, ge=1, le=bounds.MAX_PER_VIDEO, description="moments kept per video")
    signal: SignalName | None = Field(
        None, description="moments by frames (visual), subtitle cues (speech) or both fused; default from settings (both)"
    )
    limit: int | None = Field(None, ge=1, le=bounds.MAX_LIMIT, description="results per page (default and maximum from settings)")
    offset: int = Field(0, ge=0, le=bounds.MAX_OFFSET)
    score_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="drop results whose visual (cosine) similarity is below this; in hybrid mode too, where the score shown is the fused rank score",
    )
    dedup: bool | None = Field(None, description="collapse near-duplicates; default: on when every hit is a product")
    dedup_threshold: float | None = Field(None, gt=0, le=1)
    group: bool | None = Field(
        None, description="one result per product, its other photos as variants; default: on when every hit is a product"
    )
    sort: str | None = Field(
        None,
        max_length=40,
        description="after the score_threshold cutoff, order by taken_at, price, name or size_bytes; prefix - for descending",
    )
    diverse: bool = Field(False, description="MMR-diversified results: near-identical shots do not fill the page")
    facets: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list,
        max_length=10,
        description="fields to count values of among the filtered candidates, e.g. category, brand, kind, source, year",
    )
    mode: Literal["hybrid", "vector", "keyword"] | None = Field(
        None,
        description="text queries: visual similarity and keyword relevance (file names, titles, SKUs, captions) fused, "
        'or either alone; "quoted phrases" rank their matches first; default from settings (hybrid)',
    )
    keywords: bool = Field(False, description="arithmetic queries: their text terms count as keywords too")
    explain: bool = Field(False, description="report each term's contribution to each result's score")
    ensemble: bool | None = Field(None, description="prompt ensembling for text terms (default from settings)")
    filters: FiltersIn | None = None


class SearchIn(QueryOptions):
    """A search. Ask in exactly one way: ``text`` (literal text), ``query`` (the arithmetic
    syntax), ``terms``, ``image`` (base64), ``url``, ``id``, or ``positive``/``negative`` examples.

    Arithmetic: each term's embedding is normalised, the weighted sum is taken and renormalised;
    with ``explain`` each result lists every term's share of its score (the shares add up to it).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "a red circle"},
                {"query": '"beach" + id:3f0c2a52-4d0e-5b7e-9a61-3c2f1d8e0b47 - 0.5*"people"', "explain": True},
                {"terms": [{"text": "sunset"}, {"text": "people", "weight": -0.5}], "filters": {"kinds": ["image"]}},
                {"text": "a dog running", "target": "moments", "pooling": "topk", "k": 3},
                {"positive": ["3f0c2a52-4d0e-5b7e-9a61-3c2f1d8e0b47"], "negative": []},
            ]
        },
    )

    text: ShortText | None = None
    query: Annotated[str, Field(min_length=1, max_length=bounds.MAX_QUERY_CHARS)] | None = Field(
        None, description='compact arithmetic, e.g. "beach" + id:42 - 0.5*"people"'
    )
    terms: list[TermIn] | None = Field(None, min_length=1, max_length=bounds.MAX_TERMS)
    image: Base64Image | None = None
    url: HttpUrlText | None = None
    id: Identifier | None = None
    positive: list[Identifier] = Field(default_factory=list, max_length=bounds.MAX_EXAMPLES, description="example ids to be like")
    negative: list[Identifier] = Field(
        default_factory=list, max_length=bounds.MAX_EXAMPLES, description="example ids to be unlike"
    )
    like: list[Identifier] = Field(
        default_factory=list, max_length=bounds.MAX_EXAMPLES, description="feedback: results marked liked refine the query"
    )
    dislike: list[Identifier] = Field(
        default_factory=list, max_length=bounds.MAX_EXAMPLES, description="feedback: results marked disliked refine the query"
    )

    @model_validator(mode="after")
    def _one_way_of_asking(self) -> SearchIn:
        given = [n for n in ("text", "query", "terms", "image", "url", "id") if getattr(self, n) is not None]
        if self.positive:
            given.append("positive")
        if not given and self.like:
            return self  # liked results alone: "more like these"
        if len(given) != 1:
            raise ValueError(
                "ask in exactly one way: text, query, terms, image, url, id or positive examples"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.negative and not self.positive:
            raise ValueError("negative examples need at least one positive example")
        return self


class IngestOptionsIn(BaseModel):
    """Per-job overrides of the ingest settings; an unknown or mistyped option is a 422 naming it.

    The same options as ``ingest.sources.OPTION_TYPES`` (a test keeps the two lists equal).
    """

    model_config = _STRICT

    crawl_max_depth: int | None = Field(default=None, ge=0, le=bounds.INT64_MAX, description="links followed from a start page")
    crawl_max_pages: int | None = Field(default=None, ge=1, le=bounds.INT64_MAX, description="pages fetched per crawl")
    crawl_delay: float | None = Field(
        default=None, ge=0, le=3600, description="seconds between requests to one host (at most an hour)"
    )
    crawl_same_host: bool | None = Field(default=None, description="stay on the start page's host")
    include_hidden: bool | None = Field(default=None, description="also index hidden files and folders")


class IngestIn(BaseModel):
    """What to index; at least one of paths, url_lists, crawl or manifests.

    Local paths are absolute paths on the server, inside the folders it is allowed to read (the
    data dir, ``MMSEARCH_INGEST__ALLOWED_ROOTS``, ``mmsearch serve --root``); http(s) URLs may be
    given instead in ``paths``, ``url_lists`` and ``manifests``.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"paths": ["/data/photos"], "include": ["*.jpg"]}]})

    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(default_factory=list, max_length=1000)
    url_lists: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(default_factory=list, max_length=100)
    crawl: list[HttpUrlText] = Field(default_factory=list, max_length=100)
    manifests: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(default_factory=list, max_length=100)
    include: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list, max_length=100)
    exclude: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list, max_length=100)
    options: IngestOptionsIn = Field(default_factory=IngestOptionsIn, description="per-job overrides, e.g. crawl depth")

    @model_validator(mode="after")
    def _something(self) -> IngestIn:
        if not (self.paths or self.url_lists or self.crawl or self.manifests):
            raise ValueError("nothing to ingest: give paths, url_lists, crawl or manifests")
        return self


# --- responses ------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Every 4xx/5xx body: ``detail`` is the message to show a user."""

    detail: str
    error: str = Field(description="machine-readable kind: bad_query, bad_filter, not_found, too_large, …")
    position: int | None = Field(None, description="offset of a syntax error in the query string")
    errors: list[dict[str, Any]] | None = Field(None, description="per-field problems (validation errors)")


class ContributionOut(BaseModel):
    term: str
    weight: float
    similarity: float = Field(description="cosine of the term's own embedding with the result")
    contribution: float = Field(description="weight × similarity / |weighted sum|; these add up to the score")


_SIGNED = "signed (exp, sig query parameters) when reads are protected, so a browser loads it without the key"


class MomentOut(BaseModel):
    video_id: str
    start: float = Field(description="seconds")
    end: float
    score: float
    best_t: float | None = Field(None, description="time of the best-matching frame")
    best_point_id: str | None = None
    signal: str | None = Field(None, description="which signal carried the moment: visual (frames) or speech (subtitles)")
    thumbnail_url: str | None = Field(None, description=_SIGNED)
    file_url: str = Field(description=f"the video, with a #t=start,end media fragment; {_SIGNED}")
    clip_url: str | None = Field(None, description=f"the moment as its own MP4 (GET /media/{{id}}/clip); {_SIGNED}")


class SaliencyIn(BaseModel):
    """A text query scored against every instant of one video."""

    model_config = _STRICT

    text: str = Field(min_length=1, max_length=2000, description="what to look and listen for")
    signal: SignalName | None = Field(None, description="visual, speech or both (default from settings)")
    per_video: int = Field(bounds.DEFAULT_PER_VIDEO, ge=1, le=bounds.MAX_PER_VIDEO, description="moments to shade")


class FrameScoreOut(BaseModel):
    t: float = Field(description="seconds")
    score: float = Field(description="cosine of the frame with the query")


class CueScoreOut(BaseModel):
    start: float
    end: float
    score: float = Field(description="cosine of the cue's text embedding with the query")
    text: str


class CurvePointOut(BaseModel):
    t: float
    score: float = Field(description="fused and rescaled: 0..1 visual, up to 2 for a cue saying the query's words")
    signal: str = Field(description="the signal that scored this instant: visual or speech")


class SaliencyOut(BaseModel):
    """Lighthouse's saliency: the per-instant score curve of one video, and its moments."""

    video_id: str
    duration: float | None
    frames: list[FrameScoreOut]
    cues: list[CueScoreOut]
    curve: list[CurvePointOut]
    moments: list[MomentOut]


class ProductOut(BaseModel):
    product_id: str | None = None
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="every other manifest column")


class VariantOut(BaseModel):
    """Another photo of a grouped product."""

    id: str | None
    media_id: str
    score: float
    name: str | None = None
    path: str | None = None
    thumbnail_url: str | None = Field(None, description=_SIGNED)


class ResultOut(BaseModel):
    """One result. ``kind`` is the point kind for target=images, else ``moment`` or ``video``."""

    id: str | None = Field(description="point id (moments: the best frame's; videos: the best moment's frame)")
    media_id: str
    kind: str
    score: float
    name: str | None = None
    uri: str | None = None
    thumbnail_url: str | None = Field(None, description=_SIGNED)
    file_url: str | None = Field(None, description=_SIGNED)
    width: int | None = None
    height: int | None = None
    taken_at: float | None = Field(None, description="unix seconds")
    size_bytes: int | None = None
    source: str | None = None
    path: str | None = None
    duration: float | None = Field(None, description="video seconds")
    t: float | None = Field(None, description="frame time, for frame points")
    product: ProductOut | None = None
    moment: MomentOut | None = None
    moments: list[MomentOut] = Field(default_factory=list, description="target=videos: the video's best moments")
    duplicates: list[str] = Field(default_factory=list, description="point ids of near-duplicates collapsed into this one")
    variants: list[VariantOut] = Field(
        default_factory=list, description="grouped by product: its other matching photos, best first"
    )
    contributions: list[ContributionOut] | None = None
    location: LocationOut | None = Field(None, description="where it was taken (EXIF GPS), decimal degrees")
    metadata: dict[str, Any] = Field(default_factory=dict, description="other payload fields (EXIF, camera, GPS, …)")


class TermOut(BaseModel):
    kind: str
    label: str
    weight: float


class TimingsOut(BaseModel):
    encode_ms: float = Field(description="model time (text/image encoding, image fetch and decode)")
    store_ms: float = Field(description="vector store time")
    total_ms: float


class FacetOut(BaseModel):
    value: str | int | bool
    count: int


class SearchOut(BaseModel):
    target: str
    query_type: str = Field(description="text, image, id, arithmetic or examples")
    terms: list[TermOut]
    results: list[ResultOut]
    offset: int
    limit: int
    next_offset: int | None = Field(description="pass as offset for the next page; null on the last page")
    timings: TimingsOut
    facets: dict[str, list[FacetOut]] = Field(default_factory=dict, description="asked facets: value counts, most frequent first")


class MediaOut(BaseModel):
    id: str
    kind: str = Field(description="image, video or product")
    uri: str | None = None
    name: str | None = None
    thumbnail_url: str = Field(description=_SIGNED)
    file_url: str = Field(description=_SIGNED)
    points: int
    status: str | None = Field(None, description="catalog status: pending, indexed, failed, deleted")
    error: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    size_bytes: int | None = None
    taken_at: float | None = None
    source: str | None = None
    indexed_at: datetime | None = None
    product: ProductOut | None = None
    location: LocationOut | None = Field(None, description="where it was taken (EXIF GPS), decimal degrees")
    metadata: dict[str, Any] = Field(default_factory=dict)


class DeletedOut(BaseModel):
    id: str
    points_deleted: int


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str
    ms: float


class ReadyOut(BaseModel):
    ready: bool
    checks: list[CheckOut]


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class StatsOut(BaseModel):
    model: str
    dim: int
    store_backend: str
    collection: str
    points: dict[str, int] = Field(description="points per kind: image, frame, segment, product")
    total_points: int
    catalog: dict[str, dict[str, int]] = Field(description="media per kind and status")
    running_jobs: int
    interrupted_jobs: int = Field(0, description="jobs whose runner died, not yet resumed")
    index: IndexOut | None = None


class IndexOut(BaseModel):
    points: int
    indexed: int = Field(description="points in the HNSW graph; the rest are searched exactly")
    unindexed: int
    optimizing: bool = Field(description="an index build runs now")
    auto: bool = Field(description="the store keeps itself indexed in the background")
    last_run_seconds: float | None = None
    last_run_ok: bool | None = None
    last_run_detail: str | None = None


class FailureOut(BaseModel):
    uri: str
    reason: str
    at: datetime


class JobOut(BaseModel):
    id: str
    kind: str
    status: str = Field(description="queued, running, done, failed, cancelled or interrupted (its runner died)")
    params: dict[str, Any]
    discovered: int
    indexed: int
    skipped: int
    failed: int
    processed: int
    finished: bool
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    failures: list[FailureOut] = Field(default_factory=list, description="why items were not indexed (first ones)")
    owner: str | None = Field(None, description="the process running an embedded job")
    heartbeat_at: datetime | None = None
    resumed_from: str | None = Field(None, description="the interrupted or cancelled job this run continues")
    resumed_by: str | None = Field(None, description="the later run that continued this one")


class JobsOut(BaseModel):
    jobs: list[JobOut]


class IngestAccepted(BaseModel):
    job_id: str
    status_url: str
