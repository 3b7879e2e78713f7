"""Stage 2b/4c: a video's subtitle cues, read beside its frames and written as ``cue`` points.

The prefetch thread reads the cues (sidecar files next to a local video, text streams inside
the container) once the frames are decoded; the embedding thread embeds their text with the
model's text encoder, so a cue is found by dense search like a frame, and stores the text in
the payload's full-text field for keyword search. Subtitles never fail a video: a bad source
is one "subtitles of X: reason" line on the job, and the video is indexed visually all the
same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ingest.stages.load import Loaded
from ingest.stages.points import video_fields
from search.ids import point_id
from search.media import VideoInfo
from search.media.subtitles import Cue, Subtitles, read_subtitles
from search.payload import CuePayload
from search.store import Point

log = logging.getLogger(__name__)

NO_SUBTITLES = Subtitles((), ())


def read_cues(loaded: Loaded, enabled: bool = True) -> Subtitles:
    """The video's cues and subtitle problems (a downloaded video has its streams' cues only:
    no sidecar lies beside its temporary copy)."""
    if not enabled:
        return NO_SUBTITLES
    try:
        return read_subtitles(loaded.path)
    except Exception as exc:  # a subtitle reader bug must not cost the video its frames
        log.exception("reading subtitles of %s failed", loaded.item.uri)
        return Subtitles((), (f"subtitles of {loaded.item.name}: internal error ({type(exc).__name__})",))


def embed_cues(embedder: Any, cues: Sequence[Cue]) -> np.ndarray | None:
    """Text vectors of the cues, or None when the embedder encodes images only (a test fake)."""
    encode = getattr(embedder, "encode_texts", None)
    if encode is None or not cues:
        return None
    return np.asarray(encode([c.text for c in cues], ensemble=False), dtype=np.float32)


def video_cue_points(embedder: Any, loaded: Loaded, info: VideoInfo, subtitles: Subtitles, model: str) -> list[Point]:
    """The video's cue points, embedded; none when the embedder has no text encoder."""
    vectors = embed_cues(embedder, subtitles.cues)
    return [] if vectors is None else cue_points(loaded, info, subtitles, vectors, model)


def cue_points(loaded: Loaded, info: VideoInfo, subtitles: Subtitles, vectors: np.ndarray, model: str) -> list[Point]:
    """One point per cue (in ``subtitles.cues`` order, matching ``vectors``)."""
    video_id = loaded.item.media_id
    fields = video_fields(loaded, info, model)
    points = []
    cues = subtitles.cues
    for index, (cue, vector) in enumerate(zip(cues, vectors, strict=True)):
        track = _track_of(subtitles, cue)
        payload = CuePayload(**fields, t_start=cue.start, t_end=cue.end, text=cue.text, lang=cue.lang, track=track)
        pid = point_id(model, video_id, f"cue:{index}", t=cue.start, t_end=cue.end)  # two tracks may share times
        points.append(Point(pid, vector, payload.to_payload()))
    return points


def _track_of(subtitles: Subtitles, cue: Cue) -> str | None:
    for track in subtitles.tracks:
        if cue in track.cues:
            return track.source
    return None
