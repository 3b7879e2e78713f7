"""What a search returns, in core types; the API's schemas and the CLI's output are built from these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from search.engine.facets import FacetCount
from search.moments import Moment
from search.payload import Payload


@dataclass(frozen=True)
class Contribution:
    """One query term's share of a hit's score (the shares add up to the score)."""

    label: str  # the term as the compact syntax writes it: "beach", id:…, url:…
    weight: float
    similarity: float  # cosine of the term's own embedding with the hit
    contribution: float  # weight * similarity / |weighted sum|


@dataclass(frozen=True)
class TermInfo:
    """A resolved query term, echoed back so a user sees how their query was read."""

    kind: str  # text | image | url | id | file | positive | negative
    label: str
    weight: float


@dataclass(frozen=True)
class ResultItem:
    """One result: an image, frame or product point, a video moment, or a whole video.

    ``point_id`` is the stored point (for a moment: its best frame; for a video: its best
    moment's best frame, when known); ``media_id`` is the file the point came from (for
    moments and videos: the video). ``payload`` is the point's payload (for a moment: its best
    frame's; for a video: its best-scoring frame's or segment's), typed by ``search.payload``.
    """

    point_id: str | None
    media_id: str
    kind: str  # image | frame | segment | product | moment | video
    score: float
    payload: Payload
    duplicates: tuple[str, ...] = ()  # point ids of near-duplicates collapsed into this one
    variants: tuple[ResultItem, ...] = ()  # grouped by product: the product's other matching photos, best first
    contributions: tuple[Contribution, ...] = ()
    moment: Moment | None = None  # target=moments: the moment itself
    moments: tuple[Moment, ...] = ()  # target=videos: the video's best moments


@dataclass(frozen=True)
class Timings:
    """Where the time went: ``encode_ms`` is the model (and any image fetch/decode)."""

    encode_ms: float = 0.0
    store_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class SearchResults:
    """A page of results plus how the query was understood and what it cost."""

    target: str
    query_type: str
    items: tuple[ResultItem, ...]
    offset: int
    limit: int
    next_offset: int | None  # pass as ``offset`` for the next page; None when there is none
    terms: tuple[TermInfo, ...] = ()
    timings: Timings = field(default_factory=Timings)
    facets: Mapping[str, tuple[FacetCount, ...]] = field(default_factory=dict)  # field → value counts, when asked
