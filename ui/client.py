"""The one module of the UI that talks HTTP to the mmsearch API.

Everything the pages show comes through ``ApiClient``: requests go out as the API's JSON,
answers come back as the typed records below, and every failure (API down, too slow, a 4xx
with the server's message) is raised as an ``ApiError`` the pages can show as one sentence.
Nothing here imports ``search`` or ``ingest``: the UI runs anywhere the API URL is reachable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_URL_ENV = "MMSEARCH_API_URL"
API_KEY_ENV = "MMSEARCH_API_KEY"

Target = Literal["images", "moments", "videos"]
Pooling = Literal["topk", "mean"]


def api_url_from_env() -> str:
    """The UI's first setting: where the API listens (also the address the browser uses)."""
    return (os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")


def api_key_from_env() -> str | None:
    """The key sent with every request (``X-API-Key``) when the API protects reads; None: none sent."""
    return os.environ.get(API_KEY_ENV) or None


# --- errors -----------------------------------------------------------------------------


class ApiError(Exception):
    """A request the API refused or could not answer; ``message`` is written for the user."""

    def __init__(self, message: str, status: int | None = None, position: int | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.position = position  # offset of a query syntax error, when the API reports one
        self.kind = kind  # the API's machine-readable error kind: bad_query, not_found, …


class ApiUnavailable(ApiError):
    """Nothing answers at the API URL (not started, wrong port, crashed)."""


class ApiTimeout(ApiError):
    """The API accepted the connection but did not answer in time."""


# --- what goes out ------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Restrictions pushed into the store; an empty field leaves that dimension open."""

    kinds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    path_prefix: str | None = None
    taken_after: float | None = None  # unix seconds
    taken_before: float | None = None
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON ``filters`` object: only the fields that restrict something."""
        raw = {
            "kinds": list(self.kinds),
            "sources": list(self.sources),
            "path_prefix": self.path_prefix,
            "taken_after": self.taken_after,
            "taken_before": self.taken_before,
            "categories": list(self.categories),
            "brands": list(self.brands),
            "min_price": self.min_price,
            "max_price": self.max_price,
        }
        return {key: value for key, value in raw.items() if value not in (None, [])}

    def to_params(self) -> list[tuple[str, str]]:
        """The same filters as query parameters (GET /similar and multipart uploads)."""
        params: list[tuple[str, str]] = []
        for name, values in (
            ("kind", self.kinds),
            ("source", self.sources),
            ("category", self.categories),
            ("brand", self.brands),
        ):
            params += [(name, value) for value in values]
        for name, value in (
            ("path_prefix", self.path_prefix),
            ("taken_after", self.taken_after),
            ("taken_before", self.taken_before),
            ("min_price", self.min_price),
            ("max_price", self.max_price),
        ):
            if value is not None:
                params.append((name, str(value)))
        return params


@dataclass(frozen=True)
class SearchOptions:
    """How results are shaped; the same for every way of asking."""

    target: Target = "images"
    pooling: Pooling = "topk"
    k: int | None = None
    per_video: int = 3
    signal: str | None = None  # moments by visual, speech or both (None: the API's default)
    limit: int = 24
    offset: int = 0
    score_threshold: float | None = None
    dedup: bool | None = None
    explain: bool = False
    filters: Filters = field(default_factory=Filters)
    mode: str | None = None  # hybrid, vector or keyword (None: the API's default)
    group: bool | None = None  # one card per product (None: the API's rule, on for products)
    sort: str | None = None  # after the cutoff: taken_at, price, name, size_bytes; "-" prefix descending
    diverse: bool = False  # MMR-diversified results
    facets: tuple[str, ...] = ()  # fields to count values of among the filtered candidates
    like: tuple[str, ...] = ()  # feedback: liked result ids
    dislike: tuple[str, ...] = ()  # feedback: disliked result ids

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"target": self.target, "limit": self.limit, "offset": self.offset}
        if self.target != "images":
            body.update(pooling=self.pooling, per_video=self.per_video)
            if self.signal is not None:
                body["signal"] = self.signal
            if self.k is not None:
                body["k"] = self.k
        for name, value in (("score_threshold", self.score_threshold), ("dedup", self.dedup)):
            if value is not None:
                body[name] = value
        if self.explain:
            body["explain"] = True
        for name, choice in (("mode", self.mode), ("group", self.group), ("sort", self.sort)):
            if choice is not None:
                body[name] = choice
        if self.diverse:
            body["diverse"] = True
        for name, ids in (("facets", self.facets), ("like", self.like), ("dislike", self.dislike)):
            if ids:
                body[name] = list(ids)
        filters = self.filters.to_json()
        if filters:
            body["filters"] = filters
        return body

    def to_params(self) -> list[tuple[str, str]]:
        """Query parameters for the upload endpoint (feedback ids and facets are body-only)."""
        params = [(key, _param(value)) for key, value in self.to_json().items() if key not in _BODY_ONLY]
        return params + self.filters.to_params()


@dataclass(frozen=True)
class IngestJobRequest:
    """What to index; mirrors the CLI's ``mmsearch ingest`` arguments."""

    paths: tuple[str, ...] = ()
    crawl: tuple[str, ...] = ()
    url_lists: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        raw = {
            "paths": self.paths,
            "crawl": self.crawl,
            "url_lists": self.url_lists,
            "manifests": self.manifests,
            "include": self.include,
            "exclude": self.exclude,
        }
        return {key: list(value) for key, value in raw.items() if value}


# --- what comes back ------------------------------------------------------------------------


@dataclass(frozen=True)
class Contribution:
    """One query term's share of a hit's score (``explain``); the shares add up to the score."""

    term: str
    weight: float
    similarity: float
    contribution: float


@dataclass(frozen=True)
class Variant:
    """Another photo of a product shown as one card."""

    id: str
    score: float
    name: str | None = None
    thumbnail_url: str | None = None


@dataclass(frozen=True)
class Product:
    product_id: str | None
    title: str | None
    category: str | None
    brand: str | None
    price: float | None
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class MomentHit:
    """A stretch [start, end) of one video that matches the query."""

    video_id: str
    start: float
    end: float
    score: float
    best_t: float | None
    thumbnail_url: str | None
    signal: str | None = None  # which signal carried it: visual (frames) or speech (subtitles)
    clip_url: str | None = None  # the API's link to the span as an MP4 (signed when reads are private)


@dataclass(frozen=True)
class Saliency:
    """One video's score curve for a query: (t, score, signal) instants and its moments."""

    video_id: str
    curve: tuple[tuple[float, float, str], ...]
    cues: tuple[tuple[float, float, str], ...]  # (start, end, text)
    moments: tuple[MomentHit, ...]


@dataclass(frozen=True)
class Hit:
    """One result: an image, a video frame or segment, a product photo, a moment or a video."""

    id: str  # point id (the best frame's for moments and videos); the media id when there is none
    media_id: str
    kind: str
    score: float
    name: str | None = None
    thumbnail_url: str | None = None
    file_url: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: float | None = None
    size_bytes: int | None = None
    source: str | None = None
    duration: float | None = None
    t: float | None = None
    product: Product | None = None
    moment: MomentHit | None = None
    moments: tuple[MomentHit, ...] = ()
    duplicates: tuple[str, ...] = ()
    contributions: tuple[Contribution, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()  # grouped by product: its other matching photos

    @property
    def title(self) -> str:
        """What a person calls the item: a product's title, else the file name."""
        if self.product is not None and self.product.title:
            return self.product.title
        return self.name or self.media_id[:8]


@dataclass(frozen=True)
class QueryTerm:
    """How the API read one term of the query (echoed back with the results)."""

    kind: str
    label: str
    weight: float


@dataclass(frozen=True)
class SearchPage:
    """One page of results plus what the pager and the summary line need."""

    hits: tuple[Hit, ...]
    offset: int
    limit: int
    next_offset: int | None
    took_ms: float | None
    query_type: str = ""
    terms: tuple[QueryTerm, ...] = ()
    facets: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)  # field → (value, count), most first

    @property
    def has_more(self) -> bool:
        return self.next_offset is not None

    @property
    def collapsed(self) -> int:
        return sum(len(hit.duplicates) for hit in self.hits)


@dataclass(frozen=True)
class VideoGroup:
    """A video with its matching moments, best first (moments grouped per video)."""

    video_id: str
    name: str
    score: float
    file_url: str
    thumbnail_url: str | None
    duration: float | None
    moments: tuple[MomentHit, ...]


@dataclass(frozen=True)
class Stats:
    """``GET /stats``: what is indexed and how the API is built."""

    points: Mapping[str, int]
    total_points: int
    model: str
    dim: int
    store_backend: str
    collection: str
    catalog: Mapping[str, Mapping[str, int]]
    running_jobs: int
    index: Mapping[str, Any] | None = None  # points, indexed, unindexed, optimizing, auto, last_run_*


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    ms: float


@dataclass(frozen=True)
class Health:
    """``GET /readyz``: whether each part the API depends on answers."""

    ready: bool
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class JobFailure:
    uri: str
    reason: str


@dataclass(frozen=True)
class Job:
    """An ingest job's state and counters, as ``GET /jobs/{id}`` reports them."""

    id: str
    status: str
    discovered: int
    indexed: int
    skipped: int
    failed: int
    processed: int
    finished: bool
    error: str | None
    created_at: str
    params: Mapping[str, Any]
    failures: tuple[JobFailure, ...] = ()

    @property
    def fraction(self) -> float:
        """Share of discovered items processed (discovery may still be finding more)."""
        if self.finished:
            return 1.0
        return min(1.0, self.processed / self.discovered) if self.discovered else 0.0


@dataclass(frozen=True)
class WatchedSource:
    """A watched folder (``/sources``): its excludes and how the watcher finds it."""

    id: str
    path: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    state: str  # starting | watching | scanning | missing | empty
    detail: str
    last_job: str | None = None


@dataclass(frozen=True)
class Source:
    id: str
    kind: str
    uri: str
    last_scan_at: str | None
    watch: WatchedSource | None


@dataclass(frozen=True)
class DuplicateMember:
    media_id: str
    uri: str
    kind: str
    size_bytes: int | None
    taken_at: float | None
    width: int | None
    height: int | None
    similarity: float


@dataclass(frozen=True)
class DuplicateGroup:
    kind: str  # exact | near
    key: str
    reclaimable_bytes: int
    members: tuple[DuplicateMember, ...]


@dataclass(frozen=True)
class Duplicates:
    """``GET /duplicates``: the groups, largest savings first, and the run's figures."""

    groups: tuple[DuplicateGroup, ...]
    exact_groups: int
    near_groups: int
    media_checked: int
    reclaimable_bytes: int
    seconds: float
    document: Mapping[str, Any]  # the answer as sent, for a JSON export


# --- the client -------------------------------------------------------------------------------


class ApiClient:
    """Typed access to the API; one instance per base URL, safe to share between reruns."""

    def __init__(
        self, base_url: str | None = None, timeout: float = 30.0, connect_timeout: float = 3.0, api_key: str | None = None
    ) -> None:
        self.base_url = (base_url or api_url_from_env()).rstrip("/")
        key = api_key or api_key_from_env()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            headers={"X-API-Key": key} if key else None,
        )

    def close(self) -> None:
        self._http.close()

    # searching
    def search(self, query: str, options: SearchOptions, literal: bool = False) -> SearchPage:
        """Text (``literal``) or the arithmetic syntax; a syntax error carries its position."""
        body = {("text" if literal else "query"): query, **options.to_json()}
        return self._page(self._request("POST", "/search", json=body))

    def search_image(
        self, image: bytes, filename: str, options: SearchOptions, query: str | None = None, image_weight: float = 1.0
    ) -> SearchPage:
        """An uploaded image, plus optional terms in the arithmetic syntax added to it."""
        form = {"image_weight": str(image_weight)}
        if query and query.strip():
            form["query"] = query.strip()
        files = {"file": (filename or "upload", image, "application/octet-stream")}
        data = self._request("POST", "/search/image", params=options.to_params(), data=form, files=files)
        return self._page(data)

    def similar(self, item_id: str, options: SearchOptions, same_category: bool = False) -> SearchPage:
        """ "More like this": the item's neighbours, never the item itself."""
        params = [(k, v) for k, v in options.to_params() if k in ("limit", "offset", "score_threshold", "dedup")]
        params += options.filters.to_params()
        if same_category:
            params.append(("same_category", "true"))
        return self._page(self._request("GET", f"/similar/{quote(item_id, safe='')}", params=params))

    def videos(self, query: str, options: SearchOptions) -> tuple[tuple[VideoGroup, ...], float | None]:
        """``target=moments`` (grouped here by video) or ``videos``, best video first."""
        page = self.search(query, options)
        groups = _group_by_video(page.hits) if options.target == "moments" else tuple(_video_group(h) for h in page.hits)
        return groups, page.took_ms

    def saliency(self, video_id: str, query: str, signal: str | None = None, per_video: int = 3) -> Saliency:
        """The per-instant score curve of one video for a text query, and its moments."""
        body: dict[str, Any] = {"text": query, "per_video": per_video, **({"signal": signal} if signal else {})}
        data = self._request("POST", f"/videos/{quote(video_id, safe='')}/saliency", json=body)
        return Saliency(
            video_id=str(data["video_id"]),
            curve=tuple((float(p["t"]), float(p["score"]), str(p["signal"])) for p in data["curve"]),
            cues=tuple((float(c["start"]), float(c["end"]), str(c["text"])) for c in data["cues"]),
            moments=tuple(self._moment(m) for m in data["moments"]),
        )

    def clip_url(self, video_id: str, start: float, end: float, signed: str | None = None) -> str:
        """Where the browser downloads a moment as its own MP4 (GET /media/{id}/clip): the API's
        own link when it gave one (``MomentHit.clip_url``, signed when reads are private, for the
        browser cannot send the key), else built here (an API that predates it; reads open)."""
        if signed:
            return signed
        return f"{self.base_url}/media/{quote(video_id, safe='')}/clip?start={start:g}&end={end:g}"

    # operations
    def alive(self) -> bool:
        try:
            self._request("GET", "/healthz", timeout=3.0)
        except ApiError:
            return False
        return True

    def health(self) -> Health:
        """``/readyz`` answers 503 while a part is down; both answers are a Health."""
        data = self._request("GET", "/readyz", ok=(200, 503), timeout=10.0)
        checks = tuple(
            Check(str(c["name"]), bool(c["ok"]), str(c.get("detail", "")), float(c.get("ms", 0.0)))
            for c in data.get("checks", [])
        )
        return Health(ready=bool(data.get("ready")), checks=checks)

    def stats(self) -> Stats:
        d = self._request("GET", "/stats", timeout=10.0)
        return Stats(
            points={str(k): int(v) for k, v in (d.get("points") or {}).items()},
            total_points=int(d.get("total_points", 0)),
            model=str(d.get("model", "")),
            dim=int(d.get("dim", 0)),
            store_backend=str(d.get("store_backend", "")),
            collection=str(d.get("collection", "")),
            catalog=d.get("catalog") or {},
            running_jobs=int(d.get("running_jobs", 0)),
            index=d.get("index"),
        )

    # ingestion
    def start_ingest(self, request: IngestJobRequest, api_key: str | None = None) -> str:
        headers = {"X-API-Key": api_key} if api_key else None
        data = self._request("POST", "/ingest", json=request.to_json(), headers=headers, ok=(202,))
        return str(data["job_id"])

    def jobs(self, limit: int = 20) -> list[Job]:
        data = self._request("GET", "/jobs", params={"limit": limit})
        return [_job(item) for item in data.get("jobs", [])]

    def job(self, job_id: str) -> Job:
        return _job(self._request("GET", f"/jobs/{quote(job_id, safe='')}"))

    # sources, watched folders, duplicates
    def sources(self) -> tuple[list[Source], bool]:
        """Every source, and whether the server watches folders at all."""
        data = self._request("GET", "/sources")
        return [_source(item) for item in data.get("sources", [])], bool(data.get("watching"))

    def watch(
        self, path: str, include: Sequence[str] = (), exclude: Sequence[str] = (), api_key: str | None = None
    ) -> WatchedSource:
        headers = {"X-API-Key": api_key} if api_key else None
        body = {"path": path, "include": list(include), "exclude": list(exclude)}
        return _watched(self._request("POST", "/sources/watch", json=body, headers=headers, ok=(201,)))

    def unwatch(self, source_id: str, api_key: str | None = None) -> None:
        headers = {"X-API-Key": api_key} if api_key else None
        self._request("DELETE", f"/sources/{quote(source_id, safe='')}/watch", headers=headers, ok=(204,))

    def duplicates(self, threshold: float = 0.95, kind: str = "all", timeout: float = 600.0) -> Duplicates:
        """Compares the whole archive on the server: slow on a large one, hence the long timeout."""
        data = self._request("GET", "/duplicates", params={"threshold": threshold, "kind": kind}, timeout=timeout)
        return _duplicates(data)

    # plumbing
    def _request(self, method: str, path: str, ok: Sequence[int] = (200,), timeout: float | None = None, **kwargs: Any) -> Any:
        """Send one request; every way it can fail becomes an ApiError with a readable message."""
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 3.0))
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ApiUnavailable(f"Cannot reach the mmsearch API at {self.base_url}. Is `mmsearch serve` running?") from exc
        except httpx.TimeoutException as exc:
            raise ApiTimeout(
                f"The API at {self.base_url} did not answer in time; it may be busy. Try again in a moment."
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"The connection to the API at {self.base_url} failed ({type(exc).__name__}).") from exc
        if response.status_code not in ok:
            raise _error_from(response)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"The API answered {path} with something that is not JSON.", response.status_code) from exc

    def _url(self, path: str | None) -> str | None:
        """API paths in responses ("/media/…/thumbnail") as URLs the browser can load."""
        if not path:
            return None
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _page(self, data: Mapping[str, Any]) -> SearchPage:
        return SearchPage(
            hits=tuple(self._hit(item) for item in data.get("results", [])),
            offset=int(data.get("offset", 0)),
            limit=int(data.get("limit", 0)),
            next_offset=data.get("next_offset"),
            took_ms=(data.get("timings") or {}).get("total_ms"),
            query_type=str(data.get("query_type", "")),
            terms=tuple(QueryTerm(str(t["kind"]), str(t["label"]), float(t["weight"])) for t in data.get("terms", [])),
            facets={
                str(name): tuple((str(c["value"]), int(c["count"])) for c in counts)
                for name, counts in (data.get("facets") or {}).items()
            },
        )

    def _hit(self, d: Mapping[str, Any]) -> Hit:
        moment = self._moment(d["moment"]) if d.get("moment") else None
        return Hit(
            id=str(d.get("id") or d["media_id"]),
            media_id=str(d["media_id"]),
            kind=str(d.get("kind", "")),
            score=float(d.get("score", 0.0)),
            name=d.get("name"),
            thumbnail_url=self._url(d.get("thumbnail_url")),
            file_url=self._url(d.get("file_url")),
            width=d.get("width"),
            height=d.get("height"),
            taken_at=d.get("taken_at"),
            size_bytes=d.get("size_bytes"),
            source=d.get("source"),
            duration=d.get("duration"),
            t=d.get("t"),
            product=_product(d.get("product")),
            moment=moment,
            moments=tuple(self._moment(m) for m in d.get("moments") or ()),
            duplicates=tuple(d.get("duplicates") or ()),
            variants=tuple(
                Variant(str(v.get("id") or v["media_id"]), float(v["score"]), v.get("name"), self._url(v.get("thumbnail_url")))
                for v in d.get("variants") or ()
            ),
            contributions=tuple(_contribution(c) for c in d.get("contributions") or ()),
            metadata=d.get("metadata") or {},
        )

    def _moment(self, d: Mapping[str, Any]) -> MomentHit:
        return MomentHit(
            video_id=str(d["video_id"]),
            start=float(d["start"]),
            end=float(d["end"]),
            score=float(d["score"]),
            best_t=d.get("best_t"),
            thumbnail_url=self._url(d.get("thumbnail_url")),
            signal=d.get("signal"),
            clip_url=self._url(d.get("clip_url")),
        )


_BODY_ONLY = ("filters", "facets", "like", "dislike")


def _param(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _group_by_video(hits: Sequence[Hit]) -> tuple[VideoGroup, ...]:
    """Moments arrive best first across videos; a video ranks by its best moment."""
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(hit.media_id, []).append(hit)
    return tuple(
        VideoGroup(
            video_id=video_id,
            name=members[0].name or video_id[:8],
            score=max(h.score for h in members),
            file_url=_without_fragment(members[0].file_url),
            thumbnail_url=members[0].thumbnail_url,
            duration=members[0].duration,
            moments=tuple(h.moment for h in members if h.moment is not None),
        )
        for video_id, members in groups.items()
    )


def _video_group(hit: Hit) -> VideoGroup:
    return VideoGroup(
        video_id=hit.media_id,
        name=hit.name or hit.media_id[:8],
        score=hit.score,
        file_url=_without_fragment(hit.file_url),
        thumbnail_url=hit.thumbnail_url,
        duration=hit.duration,
        moments=hit.moments,
    )


def _without_fragment(url: str | None) -> str:
    """The player seeks with ``start_time``; a ``#t=`` fragment would fight it."""
    return (url or "").split("#", 1)[0]


def _product(d: Mapping[str, Any] | None) -> Product | None:
    if not d:
        return None
    return Product(d.get("product_id"), d.get("title"), d.get("category"), d.get("brand"), d.get("price"), d.get("fields") or {})


def _contribution(d: Mapping[str, Any]) -> Contribution:
    return Contribution(str(d["term"]), float(d["weight"]), float(d["similarity"]), float(d["contribution"]))


def _job(d: Mapping[str, Any]) -> Job:
    return Job(
        id=str(d["id"]),
        status=str(d.get("status", "unknown")),
        discovered=int(d.get("discovered", 0)),
        indexed=int(d.get("indexed", 0)),
        skipped=int(d.get("skipped", 0)),
        failed=int(d.get("failed", 0)),
        processed=int(d.get("processed", 0)),
        finished=bool(d.get("finished")),
        error=d.get("error"),
        created_at=str(d.get("created_at", "")),
        params=d.get("params") or {},
        failures=tuple(JobFailure(str(f.get("uri", "")), str(f.get("reason", ""))) for f in d.get("failures") or ()),
    )


def _watched(d: Mapping[str, Any]) -> WatchedSource:
    return WatchedSource(
        id=str(d["id"]),
        path=str(d.get("path", "")),
        include=tuple(d.get("include") or ()),
        exclude=tuple(d.get("exclude") or ()),
        state=str(d.get("state", "")),
        detail=str(d.get("detail", "")),
        last_job=d.get("last_job"),
    )


def _source(d: Mapping[str, Any]) -> Source:
    watch = d.get("watch")
    return Source(
        str(d["id"]), str(d.get("kind", "")), str(d.get("uri", "")), d.get("last_scan_at"), _watched(watch) if watch else None
    )


def _duplicates(d: Mapping[str, Any]) -> Duplicates:
    groups = tuple(
        DuplicateGroup(
            kind=str(g.get("kind", "")),
            key=str(g.get("key", "")),
            reclaimable_bytes=int(g.get("reclaimable_bytes") or 0),
            members=tuple(
                DuplicateMember(
                    media_id=str(i.get("media_id", "")),
                    uri=str(i.get("uri", "")),
                    kind=str(i.get("kind", "")),
                    size_bytes=i.get("size_bytes"),
                    taken_at=i.get("taken_at"),
                    width=i.get("width"),
                    height=i.get("height"),
                    similarity=float(i.get("similarity") or 0.0),
                )
                for i in g.get("items") or ()
            ),
        )
        for g in d.get("groups") or ()
    )
    return Duplicates(
        groups=groups,
        exact_groups=int(d.get("exact_groups") or 0),
        near_groups=int(d.get("near_groups") or 0),
        media_checked=int(d.get("media_checked") or 0),
        reclaimable_bytes=int(d.get("reclaimable_bytes") or 0),
        seconds=float(d.get("seconds") or 0.0),
        document=d,
    )


def _error_from(response: httpx.Response) -> ApiError:
    """The server's own message (``detail``), never raw JSON; 5xx say the fault is the server's."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    detail = body.get("detail")
    message = detail if isinstance(detail, str) and detail else (response.reason_phrase or f"HTTP {status}")
    position = body.get("position")
    if status >= 500:
        message = f"The API could not answer ({status}): {message}"
    return ApiError(
        message, status=status, position=position if isinstance(position, int) else None, kind=str(body.get("error", ""))
    )
