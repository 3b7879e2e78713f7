"""A saliency timeline: how well each instant of one video matches a query.

Lighthouse (and QVHighlights) call the per-clip score curve saliency; here it is every sampled
frame's cosine with the query, every cue's, and the fused curve moment search works on (each
signal rescaled, the stronger at each instant, see ``search.moments``), together with the
video's moments for the same query, so a chart can shade them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from search.engine import search
from search.engine.prepare import prepare
from search.engine.request import SearchRequest
from search.errors import BadQuery, NotFound
from search.filters import FilterSpec
from search.moments import (
    CueScore,
    FrameScore,
    Moment,
    fuse_signals,
    normalised_visual,
    query_words,
    speech_frames,
)
from search.payload import KIND, VIDEO_ID, CuePayload, FramePayload
from search.query import TextTerm
from search.services import Services
from search.store.base import Filter, Match

MAX_CUES = 5000  # cues scored for one video's timeline


@dataclass(frozen=True)
class Saliency:
    """One video's score curves for a query, in time order."""

    video_id: str
    duration: float | None
    frames: tuple[FrameScore, ...]  # raw cosines of the sampled frames
    cues: tuple[CueScore, ...]  # raw cosines of the cues
    curve: tuple[FrameScore, ...]  # fused and rescaled; ``signal`` says which signal won each instant
    moments: tuple[Moment, ...]


def video_saliency(services: Services, video_id: str, request: SearchRequest) -> Saliency:
    """The timeline of ``video_id`` for the request's query; NotFound for a video not indexed."""
    if not any(isinstance(t, TextTerm) for t in request.terms):
        raise BadQuery("A saliency timeline needs a text query.")
    request = replace(request, target="moments", filters=FilterSpec(video_ids=(video_id,)), limit=request.per_video)
    request.validate(services.settings.search.max_limit)
    prepared = prepare(services, request)
    assert prepared.vector is not None, "text queries search with a vector"
    store = services.store
    frame_hits = store.query(prepared.vector, _of(video_id, "frame"), limit=services.settings.ingest.max_frames_per_video)
    signal = request.signal or services.settings.search.moment_signal
    cue_hits = store.query(prepared.vector, _of(video_id, "cue"), limit=MAX_CUES) if signal != "visual" else []
    if not frame_hits and not cue_hits:
        raise NotFound(f"No indexed video with id {video_id!r}.")
    frame_payloads = [(h, FramePayload.from_payload(h.payload)) for h in frame_hits]
    frames = sorted((FrameScore(video_id, p.t, h.score, h.id) for h, p in frame_payloads), key=lambda f: f.t)
    cue_payloads = [(h, CuePayload.from_payload(h.payload)) for h in cue_hits]
    cues = sorted((CueScore(video_id, p.t_start, p.t_end, h.score, p.text, h.id) for h, p in cue_payloads), key=lambda c: c.start)
    step = 1.0 / services.settings.ingest.frame_rate
    text = " ".join(t.text for t in request.terms if isinstance(t, TextTerm) and t.weight > 0)
    visual = normalised_visual(frames) if signal != "speech" else []
    curve = sorted(fuse_signals(visual, speech_frames(cues, query_words(text), step), step), key=lambda f: f.t)
    moments = tuple(item.moment for item in search(services, request).items if item.moment is not None)
    duration = frame_payloads[0][1].duration if frame_payloads else cue_payloads[0][1].duration
    return Saliency(video_id, duration, tuple(frames), tuple(cues), tuple(curve), moments)


def _of(video_id: str, kind: str) -> Filter:
    return Filter((Match(KIND, (kind,)), Match(VIDEO_ID, (video_id,))))
