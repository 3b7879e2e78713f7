"""target=moments and target=videos: frame and segment hits pooled into moments and videos.

One nearest query scores the best ``moment_candidates`` frames; under ``pooling=mean`` a
second one scores segment points (ingest's mean-pooled windows). ``search.moments`` turns
those scores into moments. Videos rank by top-k pooling of their frames, or by the cosine
with the mean of all their segment vectors (CLIP4Clip's mean pooling), fetched for the best
candidate videos only. Scores here are pooled values, so ``score_threshold`` applies to them
after pooling, not to single frames in the store.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from search.engine.images import ResultPage, explain_hit
from search.engine.prepare import PreparedQuery
from search.engine.request import SearchRequest
from search.engine.results import ResultItem
from search.filters import BadFilter, FilterSpec, to_store_filter
from search.media.shots import snap_span
from search.moments import (
    CueScore,
    FrameScore,
    Moment,
    MomentParams,
    WindowScore,
    frames_by_video,
    fuse_signals,
    mean_pooled_score,
    merge_signal_moments,
    normalised_visual,
    query_words,
    rank_moments,
    score_floor,
    speech_frames,
    topk_windows,
    video_moments,
    video_topk_score,
)
from search.payload import KIND, MEDIA_ID, VIDEO_ID, CuePayload, FramePayload, Payload, SegmentPayload
from search.query import TextTerm
from search.services import Services
from search.store.base import Filter, Hit, Match

T = TypeVar("T")
V = TypeVar("V", FramePayload, SegmentPayload, CuePayload)
VideoPointPayload = FramePayload | SegmentPayload | CuePayload
MEAN_CANDIDATE_VIDEOS = 50  # videos whose segments are all fetched for whole-video mean pooling
SCROLL_PAGE = 1024


class _Timer:
    def __init__(self) -> None:
        self.ms = 0.0

    def run(self, action: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return action()
        finally:
            self.ms += (time.perf_counter() - started) * 1000


def moment_params(services: Services, request: SearchRequest) -> MomentParams:
    """Window grid and sampling step as ingest used them; k and per-video from the request."""
    ingest, search = services.settings.ingest, services.settings.search
    return MomentParams(
        segment_seconds=ingest.segment_seconds,
        segment_stride=ingest.segment_stride,
        frame_step=1.0 / ingest.frame_rate,
        k=request.k or search.topk_frames,
        high_fraction=search.moment_high_fraction,
        per_video=request.per_video,
    )


def video_results(
    services: Services, request: SearchRequest, prepared: PreparedQuery, spec: FilterSpec, limit: int
) -> ResultPage:
    """A page of moments or videos for the prepared query vector."""
    vector = prepared.vector
    assert vector is not None, "video targets always search with a vector"
    store, timer = services.store, _Timer()
    params = moment_params(services, request)
    exclude = tuple(request.exclude_media) + prepared.example_media
    candidates = services.settings.search.moment_candidates
    frame_hits = timer.run(lambda: store.query(vector, _filter(spec, "frame", exclude), limit=candidates))
    frame_points = _with_payloads(frame_hits, FramePayload)
    frames = [FrameScore(p.video_id, p.t, h.score, h.id) for h, p in frame_points]
    frame_floor = score_floor(f.score for f in frames)
    payloads: dict[str, VideoPointPayload] = dict(_video_payloads(frame_points))
    signal = request.signal or services.settings.search.moment_signal
    cues = _cue_hits(services, timer, vector, spec, exclude) if signal != "visual" else []
    fused = bool(cues) or signal == "speech"
    segments: list[tuple[Hit, SegmentPayload]] = []
    if fused:  # each signal on its own normalised curve (search.moments), pooled top-k
        payloads = {**_video_payloads(cues), **payloads}
        cue_scores = [CueScore(p.video_id, p.t_start, p.t_end, h.score, p.text) for h, p in cues]
        speech = speech_frames(cue_scores, query_words(_query_text(request)), params.frame_step)
        visual = normalised_visual(frames) if signal == "both" else []
        moments = _fused_moments(visual, speech, payloads, params)
        frames, frame_floor = fuse_signals(visual, speech, params.frame_step), 0.0
        by_video = frames_by_video(frames)
    else:
        by_video = frames_by_video(frames)
        if request.pooling == "mean":
            seg_hits = timer.run(lambda: store.query(vector, _filter(spec, "segment", exclude), limit=candidates))
            segments = _with_payloads(seg_hits, SegmentPayload)
            windows = _segment_windows(segments)
            window_floor = score_floor(h.score for h in seg_hits)
            payloads = {**_video_payloads(segments), **payloads}
        else:
            windows = {v: topk_windows(fs, payloads[v].duration or 0.0, params, frame_floor) for v, fs in by_video.items()}
            window_floor = frame_floor
        moments = {v: video_moments(ws, by_video.get(v, []), params, window_floor, frame_floor) for v, ws in windows.items()}
    moments = _snapped(services, moments)
    frame_payloads = {h.id: p for h, p in frame_points}
    if request.target == "moments":
        ranked = [m for m in rank_moments(moments) if _above(m.score, request.score_threshold)]
        page = ranked[request.offset : request.offset + limit]
        items = [_moment_item(m, frame_payloads.get(m.best_point_id or "") or payloads[m.video_id]) for m in page]
        more = len(ranked) > request.offset + limit
    else:
        if request.pooling == "mean" and not fused:
            scores = _mean_video_scores(store, timer, vector, segments, request.offset + limit)
        else:
            scores = {v: video_topk_score(fs, params.k, frame_floor) for v, fs in by_video.items()}
        ranked_videos = sorted(
            ((v, s) for v, s in scores.items() if _above(s, request.score_threshold)), key=lambda vs: (-vs[1], vs[0])
        )
        page_v = ranked_videos[request.offset : request.offset + limit]
        items = [_video_item(v, s, moments.get(v, []), payloads[v]) for v, s in page_v]
        more = len(ranked_videos) > request.offset + limit
    if request.explain:
        items = _explained(store, timer, prepared, items)
    return ResultPage(tuple(items), request.offset + limit if more else None, timer.ms)


def _snapped(services: Services, moments: dict[str, list[Moment]]) -> dict[str, list[Moment]]:
    """Visual moments' bounds moved to the video's nearest cut within ``search.snap_tolerance``
    (the cuts ingest found, in the catalog's ``shots``): frames are samples, so a run of them
    starts up to a sampling step after its shot does. Speech moments keep their cues' bounds,
    and a video without shots keeps its moments as they are."""
    tolerance = services.settings.search.snap_tolerance
    if tolerance <= 0 or not moments:
        return moments
    records = services.catalog.get_media_many(moments)
    out = {}
    for video, found in moments.items():
        record = records.get(video)
        cuts = record.metadata.get("shots") if record is not None else None
        if not isinstance(cuts, list) or not cuts:
            out[video] = found
            continue
        out[video] = [m if m.signal == "speech" else _snap(m, cuts, tolerance) for m in found]
    return out


def _snap(moment: Moment, cuts: Sequence[float], tolerance: float) -> Moment:
    start, end = snap_span(moment.start, moment.end, cuts, tolerance)
    return replace(moment, start=start, end=end)


def _fused_moments(
    visual: Sequence[FrameScore], speech: Sequence[FrameScore], payloads: dict[str, VideoPointPayload], params: MomentParams
) -> dict[str, list[Moment]]:
    """Moments found by each signal on its own curve, merged per video (``merge_signal_moments``)."""

    def found(frames: Sequence[FrameScore]) -> dict[str, list[Moment]]:
        out = {}
        for video, fs in frames_by_video(frames).items():
            windows = topk_windows(fs, payloads[video].duration or 0.0, params, 0.0)
            out[video] = video_moments(windows, fs, params, 0.0, 0.0)
        return out

    by_visual, by_speech = found(visual), found(speech)
    videos = by_visual.keys() | by_speech.keys()
    return {v: merge_signal_moments(by_visual.get(v, []), by_speech.get(v, []), params.per_video) for v in videos}


def _cue_hits(
    services: Services, timer: _Timer, vector: np.ndarray, spec: FilterSpec, exclude: Sequence[str]
) -> list[tuple[Hit, CuePayload]]:
    """The cues nearest the query: text-text cosines for a text query (cue vectors are text
    embeddings), image-text for an image query."""
    limit = services.settings.search.cue_candidates
    hits = timer.run(lambda: services.store.query(vector, _filter(spec, "cue", exclude), limit=limit))
    return _with_payloads(hits, CuePayload)


def _query_text(request: SearchRequest) -> str:
    """The words of the query's positive text terms (what a cue's words are matched against)."""
    return " ".join(t.text for t in request.terms if isinstance(t, TextTerm) and t.weight > 0)


def video_filter_spec(spec: FilterSpec) -> FilterSpec:
    """Video targets choose frames and segments themselves; a kind filter may only allow them."""
    if spec.kinds and not {"frame", "segment", "cue"} & set(spec.kinds):
        raise BadFilter(
            f"The kind filter {list(spec.kinds)} excludes video frames and segments, which moments and videos are made of."
        )
    to_store_filter(replace(spec, kinds=()))  # every other condition is checked up front
    return replace(spec, kinds=())


def _filter(spec: FilterSpec, kind: str, exclude: Sequence[str]) -> Filter:
    flt = to_store_filter(spec, kinds=(kind,))
    return flt.excluding(Match(MEDIA_ID, tuple(exclude))) if exclude else flt


def _above(score: float, threshold: float | None) -> bool:
    return threshold is None or score >= threshold


def _with_payloads(hits: Sequence[Hit], kind: type[V]) -> list[tuple[Hit, V]]:
    """Hits of one video point kind with their typed payloads; a hit naming no video is dropped."""
    pairs = [(hit, kind.from_payload(hit.payload)) for hit in hits]
    return [(hit, p) for hit, p in pairs if p.video_id]


def _video_payloads(points: Sequence[tuple[Hit, V]]) -> dict[str, VideoPointPayload]:
    """One payload per video (the best-scoring hit's), for names, URIs and durations."""
    out: dict[str, VideoPointPayload] = {}
    for _, p in points:
        out.setdefault(p.video_id, p)
    return out


def _segment_windows(segments: Sequence[tuple[Hit, SegmentPayload]]) -> dict[str, list[WindowScore]]:
    windows: dict[str, list[WindowScore]] = defaultdict(list)
    for hit, p in segments:
        windows[p.video_id].append(WindowScore(p.video_id, p.t_start, p.t_end, hit.score))
    return windows


def _mean_video_scores(
    store: Any, timer: _Timer, vector: np.ndarray, segments: Sequence[tuple[Hit, SegmentPayload]], wanted: int
) -> dict[str, float]:
    """Whole-video mean pooling for the best candidate videos (by their best segment)."""
    best: dict[str, float] = {}
    for hit, p in segments:
        best[p.video_id] = max(best.get(p.video_id, -2.0), hit.score)
    chosen = sorted(best, key=lambda v: -best[v])[: max(MEAN_CANDIDATE_VIDEOS, 2 * wanted)]
    if not chosen:
        return {}
    vectors = timer.run(lambda: _segment_vectors(store, chosen))
    return {v: mean_pooled_score(vector, np.stack(vs)) for v, vs in vectors.items() if vs}


def _segment_vectors(store: Any, videos: Sequence[str]) -> dict[str, list[np.ndarray]]:
    flt = Filter((Match(KIND, ("segment",)), Match(VIDEO_ID, tuple(videos))))
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    cursor: str | None = None
    while True:
        page = store.scroll(flt, limit=SCROLL_PAGE, offset=cursor, with_vectors=True)
        for hit in page.hits:
            if hit.vector is not None:
                out[SegmentPayload.from_payload(hit.payload).video_id].append(hit.vector)
        if page.next_offset is None:
            return out
        cursor = page.next_offset


def _moment_item(moment: Moment, payload: Payload) -> ResultItem:
    return ResultItem(
        point_id=moment.best_point_id,
        media_id=moment.video_id,
        kind="moment",
        score=moment.score,
        payload=payload,
        moment=moment,
    )


def _video_item(video: str, score: float, moments: Sequence[Moment], payload: Payload) -> ResultItem:
    best = moments[0].best_point_id if moments else None
    return ResultItem(point_id=best, media_id=video, kind="video", score=score, payload=payload, moments=tuple(moments))


def _explained(store: Any, timer: _Timer, prepared: PreparedQuery, items: list[ResultItem]) -> list[ResultItem]:
    """Contributions measured on each result's best frame (the frame its thumbnail shows)."""
    ids = [i.point_id for i in items if i.point_id]
    found = {h.id: h.vector for h in timer.run(lambda: store.retrieve(ids, with_vectors=True))} if ids else {}
    return [replace(i, contributions=explain_hit(prepared, found.get(i.point_id or ""))) for i in items]
