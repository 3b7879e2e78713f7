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

import math
import re
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
    signal: str = "visual"  # what scored it: visual (a frame), speech (a cue) — fused curves mix both
    cue: tuple[float, float] | None = None  # speech: the start and end of the cue that scored this instant


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
    signal: str | None = None  # which signal carried the moment's best instant (visual or speech)


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
    its best frame for the thumbnail. A run of speech instants is its cues instead: it spans
    them exactly and scores the best one's relevance (a cue is one piece of evidence, however
    many instants it covers, so a short cue saying every word is not outscored by a longer one
    saying fewer).
    """
    inside = sorted((f for f in frames if span.start <= f.t < span.end), key=lambda f: f.t)
    if not inside:
        return [Moment(span.video_id, span.start, span.end, span.score)]
    cut = high_threshold(max(f.score for f in inside), floor, params.high_fraction)
    return [_run_moment(run, span, params, windows) for run in _strong_runs(inside, cut, params.frame_step)]


def _strong_runs(frames: Sequence[FrameScore], cut: float, step: float) -> list[list[FrameScore]]:
    """Consecutive (in time) frames scoring at least ``cut``; a weaker frame splits runs, and so
    does a missing one (more than a step between two scores): a frame the store did not return
    scores at most the floor, an instant no cue covers has nothing said."""
    runs: list[list[FrameScore]] = []
    current: list[FrameScore] = []
    for frame in frames:
        if current and frame.t - current[-1].t > 1.5 * step:
            runs.append(current)
            current = []
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
    cues = [f.cue for f in run if f.cue is not None]
    if len(cues) == len(run):  # speech: the moment is its cues, their bounds and the best one's relevance
        start, end = min(c[0] for c in cues), max(c[1] for c in cues)
        return Moment(span.video_id, start, end, best.score, best.t, best.point_id, best.signal)
    start = run[0].t
    end = max(min(run[-1].t + params.frame_step, span.end), start)
    overlapping = [w.score for w in windows if w.start < end and w.end > start]
    score = max(overlapping) if overlapping else span.score
    return Moment(span.video_id, start, end, score, best.t, best.point_id, best.signal)


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


# --- speech: cue scores on the frames' time axis, and fusion ----------------------------------

SIGNALS = ("visual", "speech", "both")
SPEECH_DENSE_WEIGHT = 0.5  # a cue's relevance: its normalised dense similarity times this, plus
SPEECH_WORDS_WEIGHT = 1.5  # the squared share of the query's words it says times this (see speech_frames)
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset({"a", "an", "the", "of", "in", "on", "at", "to", "and", "or", "is", "are", "was", "were", "be", "it"})


@dataclass(frozen=True)
class CueScore:
    """One subtitle cue's similarity to the query (its text embedding's cosine)."""

    video_id: str
    start: float
    end: float
    score: float
    text: str = ""
    point_id: str = ""


def query_words(text: str) -> set[str]:
    """The content words of a query, lower-cased (what a cue must say to match it by keyword)."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def keyword_overlap(words: set[str], text: str) -> float:
    """Share of the query's content words the cue says, 0..1 (0 without query words)."""
    if not words:
        return 0.0
    return len(words & set(_WORD.findall(text.lower()))) / len(words)


def _minmax(values: Sequence[float]) -> tuple[float, float]:
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    return low, (high - low if high - low > 1e-9 else 1.0)


def normalised_visual(frames: Sequence[FrameScore]) -> list[FrameScore]:
    """Frame scores rescaled to 0..1 over all candidates (weakest 0, best 1), so that cosines of
    images with text and of texts with text, which live on different scales, can be compared."""
    low, span = _minmax([f.score for f in frames])
    return [FrameScore(f.video_id, f.t, (f.score - low) / span, f.point_id, "visual") for f in frames]


def speech_frames(cues: Sequence[CueScore], words: set[str], step: float) -> list[FrameScore]:
    """Speech on the frames' time axis: each sampling instant a cue covers takes the cue's
    relevance, the best cue's where several overlap.

    Relevance is ``SPEECH_DENSE_WEIGHT`` x its dense score rescaled over the candidates plus
    ``SPEECH_WORDS_WEIGHT`` x the square of the share of the query's words it says. Visual
    scores are rescaled to 0..1, so a cue saying every word of the query outranks any frame
    (saying the words is the stronger evidence: the best frame is only the best of what was
    seen), most of the words competes with the best frame, and half the words or fewer, or a
    cue merely close in meaning (at most 0.5), never outranks the best-looking instant: a cue
    saying "red" is no evidence of the red star a frame shows (bench/quality.py's shown-only
    queries, which a linear share let such cues win).

    Instants are multiples of ``step`` (the frame sampling step), so a fused curve lines up
    with the frames: a cue marks the instants it covers (``start <= t < end``), as a frame
    shows its instant; a cue between two instants marks the one it starts in.
    """
    low, span = _minmax([c.score for c in cues])
    best: dict[tuple[str, float], FrameScore] = {}
    for cue in cues:
        said = keyword_overlap(words, cue.text)
        relevance = SPEECH_DENSE_WEIGHT * (cue.score - low) / span + SPEECH_WORDS_WEIGHT * said * said
        first = math.ceil(cue.start / step - 1e-6)
        last = math.ceil(cue.end / step - 1e-6) - 1
        if last < first:  # no instant inside the cue
            first = last = math.floor(cue.start / step + 1e-6)
        for i in range(first, last + 1):
            key = (cue.video_id, round(i * step, 3))
            if key not in best or best[key].score < relevance:
                best[key] = FrameScore(cue.video_id, key[1], relevance, cue.point_id, "speech", (cue.start, cue.end))
    return list(best.values())


def fuse_signals(visual: Sequence[FrameScore], speech: Sequence[FrameScore], step: float) -> list[FrameScore]:
    """One curve per video from normalised visual and speech scores: at each instant the stronger
    signal's score, and its name, so a moment says which signal carried it. A visual frame and
    a speech instant within half a step of each other are the same instant."""
    fused: dict[tuple[str, float], FrameScore] = {}
    for frame in speech:
        fused[(frame.video_id, round(frame.t / step))] = frame
    for frame in visual:
        key = (frame.video_id, round(frame.t / step))
        other = fused.get(key)
        if other is None or frame.score >= other.score:
            fused[key] = frame
        else:  # speech wins here, at the frame's own time (and with its thumbnail)
            fused[key] = FrameScore(frame.video_id, frame.t, other.score, frame.point_id, "speech", other.cue)
    return list(fused.values())


def merge_signal_moments(visual: Sequence[Moment], speech: Sequence[Moment], limit: int) -> list[Moment]:
    """One video's moments found by each signal, as one list: best first, and a moment that
    overlaps a better one by half of the shorter is the same moment: the better one stays,
    with its bounds and its signal (the one that carried it).

    Each signal finds its moments on its own curve, so a moment's edges are its own signal's
    (a cue's start and end, or a run of frames), not a blend of two curves' noise.
    """
    kept: list[Moment] = []
    for moment in sorted([*visual, *speech], key=lambda m: (-m.score, m.start)):
        if not any(_same_moment(k, moment) for k in kept):
            kept.append(moment)
    return kept[:limit]


def _same_moment(a: Moment, b: Moment) -> bool:
    overlap = min(a.end, b.end) - max(a.start, b.start)
    shorter = min(a.end - a.start, b.end - b.start)
    return overlap > 0 and overlap >= 0.5 * shorter


def rank_moments(per_video: dict[str, list[Moment]]) -> list[Moment]:
    """All videos' moments in one list, best first (ties broken by video and time)."""
    flat = [m for moments in per_video.values() for m in moments]
    return sorted(flat, key=lambda m: (-m.score, m.video_id, m.start))
