"""Shot boundaries (cuts) of a video, from the frames ingest samples anyway, and snapping to them.

Two detectors over consecutive *sampled* frames, so neither decodes anything more:

- ``embedding_cuts``: the cosine between consecutive frame embeddings (the vectors ingest has
  just computed) drops at a cut; free, and it ignores what a histogram is fooled by (a
  light change within a shot) but needs a change of content;
- ``histogram_cuts``: the total-variation distance between HSV colour histograms of
  consecutive frames (the classic detector, PySceneDetect's ``HistogramDetector`` family).

With frames sampled every ``step`` seconds a cut is only known to lie between two samples
(the pure functions place it half-way). Ingest therefore finds the pairs of samples a cut lies
between with the histogram detector while the frames are decoded (``ShotTracker``), then
``refine_cuts`` decodes just the frames between each such pair and takes the frame that differs
most from its predecessor: exact to one frame, for about one keyframe interval of decoding per
cut, all in the decode thread. Moment bounds snap to these cuts (``snap_span``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import av
import av.error
import numpy as np
from PIL import Image

EMBEDDING_CUT = 0.80  # consecutive frames less similar than this (cosine) are a cut
HISTOGRAM_CUT = 0.35  # total-variation distance of HSV histograms above this is a cut
_BINS = (16, 4, 4)


def embedding_cuts(times: Sequence[float], vectors: Sequence[np.ndarray], threshold: float = EMBEDDING_CUT) -> list[float]:
    """Cut times between consecutive sampled frames whose embeddings' cosine is below ``threshold``."""
    if len(times) < 2:
        return []
    stacked = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(stacked, axis=1, keepdims=True)
    unit = stacked / np.maximum(norms, 1e-12)
    similarity = np.sum(unit[1:] * unit[:-1], axis=1)
    return [round((times[int(i)] + times[int(i) + 1]) / 2, 3) for i in np.flatnonzero(similarity < threshold)]


def hsv_histogram(image: Image.Image) -> np.ndarray:
    """A normalised 16x4x4 HSV histogram of a 64x36 thumbnail of ``image``."""
    hsv = np.asarray(image.convert("RGB").resize((64, 36)).convert("HSV"), dtype=np.int32)
    index = (hsv[..., 0] * _BINS[0] // 256) * _BINS[1] * _BINS[2]
    index += (hsv[..., 1] * _BINS[1] // 256) * _BINS[2] + hsv[..., 2] * _BINS[2] // 256
    counts = np.bincount(index.ravel(), minlength=int(np.prod(_BINS))).astype(np.float32)
    return counts / counts.sum()


def histogram_cuts(times: Sequence[float], histograms: Sequence[np.ndarray], threshold: float = HISTOGRAM_CUT) -> list[float]:
    """Cut times between consecutive frames whose histograms differ by more than ``threshold``."""
    cuts = []
    for i in range(1, len(times)):
        if 0.5 * float(np.abs(histograms[i] - histograms[i - 1]).sum()) > threshold:
            cuts.append(round((times[i - 1] + times[i]) / 2, 3))
    return cuts


def snap(t: float, cuts: Sequence[float], tolerance: float) -> float:
    """``t`` moved to the nearest cut when one lies within ``tolerance`` seconds, else ``t``."""
    if not cuts or tolerance <= 0:
        return t
    nearest = min(cuts, key=lambda c: abs(c - t))
    return nearest if abs(nearest - t) <= tolerance else t


def snap_span(start: float, end: float, cuts: Sequence[float], tolerance: float) -> tuple[float, float]:
    """A moment's bounds snapped to cuts; a span that would collapse keeps its own bounds."""
    snapped = snap(start, cuts, tolerance), snap(end, cuts, tolerance)
    return snapped if snapped[1] > snapped[0] else (start, end)


class ShotTracker:
    """Collects the colour histograms of sampled frames as they go by (in the decode thread) and
    says between which consecutive samples a cut lies."""

    def __init__(self, threshold: float = HISTOGRAM_CUT) -> None:
        self.threshold = threshold
        self._previous: tuple[float, np.ndarray] | None = None
        self.pairs: list[tuple[float, float]] = []  # (last sample before, first sample after) per cut

    def add(self, t: float, image: Image.Image) -> None:
        histogram = hsv_histogram(image)
        if self._previous is not None:
            before, previous = self._previous
            if 0.5 * float(np.abs(histogram - previous).sum()) > self.threshold:
                self.pairs.append((before, t))
        self._previous = (t, histogram)


def refine_cuts(path: Path, pairs: Sequence[tuple[float, float]], deadline_s: float = 30.0, limit: int = 2000) -> list[float]:
    """Exact cut times: for each pair of samples a cut lies between, the frame in (a, b] that
    differs most from the one before it (decoded from the keyframe before ``a``).

    Bounded: at most ``limit`` cuts and ``deadline_s`` seconds are refined; the rest, and any the
    decoder cannot reach, keep ``b`` (the first sample of the new shot). Never raises for a
    damaged stream: a cut that cannot be refined is simply not refined.
    """
    if not pairs:
        return []
    stop = time.monotonic() + deadline_s
    out: list[float] = []
    try:
        container = av.open(str(path), mode="r")
    except (OSError, av.error.FFmpegError):
        return [b for _, b in pairs]
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
        for index, (a, b) in enumerate(pairs):
            if index >= limit or time.monotonic() > stop:
                out.append(b)
                continue
            try:
                out.append(_refine_one(container, stream, origin, a, b))
            except av.error.FFmpegError:
                out.append(b)
    return out


def _refine_one(container: av.container.InputContainer, stream: av.VideoStream, origin: float, a: float, b: float) -> float:
    container.seek(int((a + origin) / (stream.time_base or 1)), stream=stream, backward=True, any_frame=False)
    previous: np.ndarray | None = None
    best_t, best_diff = b, -1.0
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        t = frame.time - origin
        if t < a - 1e-6:
            continue
        small = frame.reformat(width=32, height=18, format="rgb24").to_ndarray().astype(np.float32)
        if previous is not None:
            diff = float(np.abs(small - previous).mean())
            if diff > best_diff:
                best_t, best_diff = t, diff
        previous = small
        if t >= b - 1e-6:
            break
    return round(best_t, 3)
