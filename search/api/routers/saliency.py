"""The saliency timeline of one video for a query (the curve the UI charts under the player)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from search.api.convert import moment_out
from search.api.deps import MediaLinks, State
from search.api.routers.media import NOT_FOUND
from search.api.schemas import CueScoreOut, CurvePointOut, ErrorOut, FrameScoreOut, SaliencyIn, SaliencyOut
from search.engine.request import SearchRequest
from search.engine.saliency import video_saliency
from search.query import TextTerm

router = APIRouter(tags=["search"])

VideoId = Annotated[str, Path(min_length=1, max_length=200, description="media id of a video")]


@router.post(
    "/videos/{video_id}/saliency",
    response_model=SaliencyOut,
    responses={400: {"model": ErrorOut}, **NOT_FOUND},
    summary="Per-frame and per-cue scores of one video for a text query, with its moments",
)
def saliency(video_id: VideoId, body: SaliencyIn, state: State, links: MediaLinks) -> SaliencyOut:
    """``frames`` and ``cues`` are raw cosines; ``curve`` is what moment search works on (each
    signal rescaled, the stronger at each instant); ``moments`` are this video's moments."""
    request = SearchRequest(terms=(TextTerm(body.text),), signal=body.signal, per_video=body.per_video)
    found = video_saliency(state.services, video_id, request)
    return SaliencyOut(
        video_id=found.video_id,
        duration=found.duration,
        frames=[FrameScoreOut(t=f.t, score=round(f.score, 6)) for f in found.frames],
        cues=[CueScoreOut(start=c.start, end=c.end, score=round(c.score, 6), text=c.text) for c in found.cues],
        curve=[CurvePointOut(t=f.t, score=round(f.score, 6), signal=f.signal) for f in found.curve],
        moments=[moment_out(m, links) for m in found.moments],
    )
