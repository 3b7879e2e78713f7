"""Video moments: from per-frame (or per-window) scores to ranked moments and videos.

Two poolings, as in the video-retrieval literature:

- ``topk`` (X-Pool's observation): a window scores the mean of its k best frame scores, so
  frames unrelated to the query no longer dilute the score;
- ``mean`` (CLIP4Clip's parameter-free baseline): a window scores the cosine of the query with
  its mean-pooled segment vector, which ingest stores as a ``segment`` point.

Windows follow the ingest grid (``segment_seconds`` long, every ``segment_stride`` seconds).
Adjacent windows that score high for their video merge into spans; each span is then cut into
its runs of high-scoring frames (one moment per run), so a moment is accurate to one sampling
step even though windows are several seconds long and overlap. "High" is relative to the
video's own background level (``background_level``), not to other videos.

Only the top ``moment_candidates`` frames come back from the store. A frame that did not come
back scores at most the lowest candidate score (the *floor*), so the floor stands in for the
frames we did not see: a window with one strong frame and nothing else is not mistaken for a
window of several strong frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from search.grouping import group_by

BACKGROUND_QUANTILE = 25  # percentile of a video's own scores taken as its background level
HIGH_FRACTION = 0.6  # a window/frame is "high" above floor + HIGH_FRACTION * (best - floor)


@dataclass(frozen=True)
class FrameScore:
    """One sampled frame's similarity to the query."""

    video_id: str
    t: float
    score: float
    point_id: str = ""


@dataclass(frozen=True)
class WindowScore:
    """A pooled window [start, end) of one video."""

    video_id: str
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class Moment:
    """A stretch of a video that matches the query, with its best frame for the thumbnail."""

    video_id: str
    start: float
    end: float
    score: float
    best_t: float | None = None
    best_point_id: str | None = None


@dataclass(frozen=True)
class MomentParams:
    """Knobs of moment detection; defaults come from the ingest and search settings."""

    segment_seconds: float = 4.0
    segment_stride: float = 2.0
    frame_step: float = 1.0  # seconds between sampled frames (1 / frame_rate)
    k: int = 3
    high_fraction: float = HIGH_FRACTION
    per_video: int = 3


# --- pooling --------------------------------------------------------------------------------


def topk_mean(scores: Iterable[float], k: int, pad_to: int = 0, floor: float = 0.0) -> float:
    """Mean of the k best scores; missing scores (fewer than ``pad_to``) count as ``floor``."""
    ordered = sorted(scores, reverse=True)[:k]
    want = min(k, max(pad_to, len(ordered)))
    ordered += [floor] * (want - len(ordered))
    return float(np.mean(ordered)) if ordered else floor


def window_grid(duration: float, seconds: float, stride: float) -> list[tuple[float, float]]:
    """Windows [start, end) every ``stride`` seconds, stopping once one reaches the end."""
    if duration <= 0:
        return [(0.0, seconds)]
    grid: list[tuple[float, float]] = []
    start = 0.0
    while start < duration:
        end = min(start + seconds, duration)
        grid.append((round(start, 6), round(end, 6)))
        if end >= duration:
            break
        start += stride
    return grid


def frames_by_video(frames: Iterable[FrameScore]) -> dict[str, list[FrameScore]]:
    """Group frame scores per video, each list sorted by time."""
    groups = group_by(frames, lambda f: f.video_id)  # the same grouping as products' (search.grouping)
    return {video: sorted(items, key=lambda f: f.t) for video, items in groups.items()}


def topk_windows(frames: Sequence[FrameScore], duration: float, params: MomentParams, floor: float) -> list[WindowScore]:
    """Score every grid window of one video by top-k pooling of the frames inside it."""
    if not frames:
        return []
    video = frames[0].video_id
    duration = max(duration, frames[-1].t + params.frame_step)
    per_window = max(1, int(round(params.segment_seconds / params.frame_step)))
    out: list[WindowScore] = []
    for start, end in window_grid(duration, params.segment_seconds, params.segment_stride):
        inside = [f.score for f in frames if start <= f.t < end]
        if inside:
            expected = min(per_window, max(1, int(round((end - start) / params.frame_step))))
            out.append(WindowScore(video, start, end, topk_mean(inside, params.k, expected, floor)))
    return out


def video_topk_score(frames: Sequence[FrameScore], k: int, floor: float) -> float:
    """Whole-video score under top-k pooling: the mean of its k best frames (padded by floor)."""
    return topk_mean((f.score for f in frames), k, pad_to=k, floor=floor)


def mean_pooled_score(query: np.ndarray, segment_vectors: np.ndarray) -> float:
    """Whole-video score under mean pooling: cosine of the query with the mean of its windows."""
    mean = np.asarray(segment_vectors, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return float(np.dot(query, mean) / norm) if norm > 1e-9 else 0.0


# --- moments -----------------------------------------------------------------------------------


def merge_windows(windows: Sequence[WindowScore], threshold: float) -> list[WindowScore]:
    """Merge runs of consecutive windows scoring at least ``threshold``; a low window splits runs.

    Grid windows overlap (stride < length), so overlap alone would glue two scenes together
    across a low window between them; a run therefore ends at the first low window, and a high
    window joins the run only if it overlaps or touches it. The merged score is the run's best.
    """
    merged: list[WindowScore] = []
    run_open = False
    for window in sorted(windows, key=lambda w: w.start):
        if window.score < threshold:
            run_open = False
            continue
        last = merged[-1] if merged else None
        if run_open and last is not None and window.start <= last.end + 1e-6:
            merged[-1] = WindowScore(last.video_id, last.start, max(last.end, window.end), max(last.score, window.score))
        else:
            merged.append(window)
        run_open = True
    return merged


def high_threshold(best: float, floor: float, fraction: float = HIGH_FRACTION) -> float:
    """The score a window or frame needs to count as part of a moment, relative to its video."""
    return floor + fraction * (best - floor)


def refine(
    span: WindowScore,
    frames: Sequence[FrameScore],
    params: MomentParams,
    floor: float,
    windows: Sequence[WindowScore] = (),
) -> list[Moment]:
    """Tighten a merged span to its runs of high-scoring frames, one moment per run.

    Overlapping windows can bridge a short gap between two scenes (a window holding the end of
    one and the start of the next pools high), so the frames decide the edges: a weak frame
    between strong ones ends a run. Each run scores the best window overlapping it, and keeps
    its best frame for the thumbnail.
    """
    inside = sorted((f for f in frames if span.start <= f.t < span.end), key=lambda f: f.t)
    if not inside:
        return [Moment(span.video_id, span.start, span.end, span.score)]
    cut = high_threshold(max(f.score for f in inside), floor, params.high_fraction)
    return [_run_moment(run, span, params, windows) for run in _strong_runs(inside, cut)]


def _strong_runs(frames: Sequence[FrameScore], cut: float) -> list[list[FrameScore]]:
    """Consecutive (in time) frames scoring at least ``cut``; a weaker frame splits runs."""
    runs: list[list[FrameScore]] = []
    current: list[FrameScore] = []
    for frame in frames:
        if frame.score >= cut:
            current.append(frame)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _run_moment(run: Sequence[FrameScore], span: WindowScore, params: MomentParams, windows: Sequence[WindowScore]) -> Moment:
    best = max(run, key=lambda f: f.score)
    start = run[0].t
    end = max(min(run[-1].t + params.frame_step, span.end), start)
    overlapping = [w.score for w in windows if w.start < end and w.end > start]
    score = max(overlapping) if overlapping else span.score
    return Moment(span.video_id, start, end, score, best.t, best.point_id)


def video_moments(
    windows: Sequence[WindowScore],
    frames: Sequence[FrameScore],
    params: MomentParams,
    floor: float,
    frame_floor: float | None = None,
) -> list[Moment]:
    """The best moments of one video, best first: merge high windows, then refine each span.

    ``floor`` is the window scores' floor; ``frame_floor`` the frames' (they differ under mean
    pooling, where windows are segment vectors and frames are scored separately). "High" is
    judged against the video itself (``background_level``), so a video's background, which may
    score far above other videos' frames, does not count as part of a moment.
    """
    if not windows:
        return []
    best = max(w.score for w in windows)
    w_floor = background_level((w.score for w in windows), floor)
    spans = merge_windows(windows, high_threshold(best, w_floor, params.high_fraction))
    f_floor = background_level((f.score for f in frames), floor if frame_floor is None else frame_floor)
    moments = [m for span in spans for m in refine(span, frames, params, f_floor, windows)]
    moments.sort(key=lambda m: (-m.score, m.start))
    return moments[: params.per_video]


def background_level(scores: Iterable[float], floor: float) -> float:
    """What "not matching" scores in one video: the lower quartile of its scores, or ``floor``.

    The global floor is the weakest candidate of *all* videos, often far below a given video's
    background (a green backdrop scores well for "a green star"), which would make the whole
    video look high. A video's minimum is no better: a few dark frames drag it down just the
    same. The lower quartile is the background level as long as a moment covers less than
    three quarters of the video.
    """
    values = list(scores)
    return max(floor, float(np.percentile(values, BACKGROUND_QUANTILE))) if values else floor


def score_floor(scores: Iterable[float]) -> float:
    """The lowest candidate score: an upper bound for every frame the store did not return."""
    values = list(scores)
    return min(values) if values else 0.0


def rank_moments(per_video: dict[str, list[Moment]]) -> list[Moment]:
    """All videos' moments in one list, best first (ties broken by video and time)."""
    flat = [m for moments in per_video.values() for m in moments]
    return sorted(flat, key=lambda m: (-m.score, m.video_id, m.start))
