"""Fixed-length, overlapping time windows over a video's sampled frames.

Segment points let the search side match a query against a few seconds of video at once (the
mean of the window's frame vectors), while frame points serve top-k pooling and precise
moment localisation. Windows start every ``stride`` seconds; the last one is the first that
reaches the end of the video, so every frame is covered and no window repeats another's tail.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    t_start: float
    t_end: float  # exclusive, clipped to the video's end
    indices: tuple[int, ...]  # positions in the frame list whose time lies in [t_start, t_end)


def windows(times: Sequence[float], duration: float, length: float, stride: float) -> list[Window]:
    """Windows over sampled frame ``times`` (ascending); windows holding no frame are left out."""
    if not times:
        return []
    end = max(duration, times[-1] + 1e-3)
    found: list[Window] = []
    start = 0.0
    while True:
        stop = start + length
        inside = tuple(range(bisect_left(times, start - 1e-6), bisect_left(times, stop - 1e-6)))
        if inside:
            found.append(Window(round(start, 3), round(min(stop, end), 3), inside))
        if stop >= end - 1e-6:
            return found
        start += stride
