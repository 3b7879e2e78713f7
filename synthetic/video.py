"""H.264 MP4 videos in which known objects enter and leave at known times.

Each video is a sequence of "appearances": one object (a colour-shape pair, distinct within the
video) is on screen from ``start`` to ``end`` and drifts slowly; between appearances only the
background is visible. The background switches at its own times, independent of the objects, so
a background change is never a cue for an object change. The returned moments are the truth for
video moment retrieval.

Opt-in extras for the video benchmark: ``aligned_cuts`` also puts a cut (background switch) at
the start of about half the appearances and the end of some, so snapping moment bounds to cuts
has something to find (other cuts stay where they fall); ``subtitles`` writes a sidecar
``.srt`` beside each video (``synthetic.subtitles``).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from synthetic.images import item_rng
from synthetic.render import render_background, render_scene
from synthetic.scene import Background, ObjectSpec, Scene, sample_background, sample_object
from synthetic.subtitles import add_subtitles
from synthetic.truth import VideoMoment, VideoTruth
from synthetic.vocab import ALL_PAIRS, POSITIONS

_STREAM_VIDEOS = 2
_STREAM_CUTS = 6
CUT_CLEARANCE = 1.5  # seconds: a drawn cut this close to an aligned one is dropped
DRIFT = 0.05  # how far (fraction of the frame) an object moves while on screen


def _plan_appearances(rng: np.random.Generator, duration: float) -> list[tuple[ObjectSpec, float, float, float]]:
    """(object, start, end, drift direction in degrees) for sequential, non-overlapping appearances."""
    plans: list[tuple[ObjectSpec, float, float, float]] = []
    t = float(rng.uniform(1.0, 3.0))
    pair_ids = rng.permutation(len(ALL_PAIRS))
    while t + 4.0 <= duration - 1.0 and len(plans) < len(pair_ids):
        length = min(float(rng.uniform(4.0, 9.0)), duration - 1.0 - t)
        obj = sample_object(rng, ALL_PAIRS[int(pair_ids[len(plans)])], str(rng.choice(POSITIONS)))
        plans.append((replace(obj, dx=0.0, dy=0.0), round(t, 3), round(t + length, 3), float(rng.uniform(0, 360))))
        t += length + float(rng.uniform(1.5, 4.0))
    return plans


def _plan_backgrounds(rng: np.random.Generator, duration: float) -> list[tuple[float, Background]]:
    changes = [(0.0, sample_background(rng))]
    t = float(rng.uniform(4.0, 9.0))
    while t < duration - 1.0:
        changes.append((round(t, 3), sample_background(rng)))
        t += float(rng.uniform(4.0, 9.0))
    return changes


def _align_cuts(
    rng: np.random.Generator, plans, backgrounds: list[tuple[float, Background]], duration: float
) -> list[tuple[float, Background]]:
    """Cuts at the start of about half the appearances and the end of a quarter; drawn cuts
    closer than ``CUT_CLEARANCE`` to one of these go, so every cut stays a clean shot change."""
    aligned: set[float] = set()
    for _, start, end, _ in plans:
        if rng.random() < 0.5:
            aligned.add(start)
        if rng.random() < 0.25 and end < duration - 1.0:
            aligned.add(end)
    kept = [(t, b) for t, b in backgrounds[1:] if all(abs(t - a) >= CUT_CLEARANCE for a in aligned)]
    added = [(t, sample_background(rng)) for t in sorted(aligned)]
    return [backgrounds[0], *sorted(kept + added, key=lambda tb: tb[0])]


def _frame_scene(t: float, plans, backgrounds, noise_seed: int) -> Scene:
    background = [b for start, b in backgrounds if start <= t][-1]
    objects = []
    for obj, start, end, direction in plans:
        if start <= t < end:
            progress = (t - start) / (end - start) - 0.5
            a = np.radians(direction)
            objects.append(replace(obj, dx=float(DRIFT * progress * np.cos(a)), dy=float(DRIFT * progress * np.sin(a))))
    return Scene(tuple(objects), background, noise=2.0, noise_seed=noise_seed)


def write_video(path: Path, frames, fps: int, width: int, height: int, crf: int = 23) -> None:
    """Encode RGB uint8 frames as H.264 (yuv420p) MP4 with one frame per 1/fps seconds."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def generate_video(
    path: Path,
    seed: int,
    index: int,
    duration: float | None = None,
    fps: int = 12,
    size: int = 160,
    aligned_cuts: bool = False,
) -> VideoTruth:
    """One video; ``duration`` defaults to a draw between 20 and 40 seconds."""
    if size % 2:
        raise ValueError("video size must be even (H.264 with yuv420p)")
    rng = item_rng(seed, _STREAM_VIDEOS, index)
    duration = float(duration if duration is not None else round(float(rng.uniform(20.0, 40.0)), 1))
    if duration < 6.0:
        raise ValueError("videos must be at least 6 seconds long to hold an appearance")
    plans = _plan_appearances(rng, duration)
    backgrounds = _plan_backgrounds(rng, duration)
    if aligned_cuts:  # its own generator: the video's other draws stay as they are
        backgrounds = _align_cuts(item_rng(seed, _STREAM_CUTS, index), plans, backgrounds, duration)
    n_frames = int(round(duration * fps))
    noise_base = int(rng.integers(0, 2**31 - 1 - n_frames))
    cache: dict[int, np.ndarray] = {}  # one background array per shot, keyed by the Background's id

    def frame(i: int) -> np.ndarray:
        scene = _frame_scene(i / fps, plans, backgrounds, noise_base + i)
        key = id(scene.background)
        if key not in cache:
            cache.clear()
            cache[key] = render_background(scene.background, size, size)
        return np.asarray(render_scene(scene, size, background=cache[key]))

    frames = (frame(i) for i in range(n_frames))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps, size, size)
    moments = tuple(VideoMoment(o.colour, o.shape, s, e, o.position, o.size) for o, s, e, _ in plans)
    return VideoTruth(path.resolve(), n_frames / fps, fps, size, size, moments, tuple(t for t, _ in backgrounds[1:]))


def generate_videos(
    out_dir: Path | str,
    n: int,
    seed: int,
    fps: int = 12,
    size: int = 160,
    duration: float | None = None,
    subtitles: bool = False,
) -> list[VideoTruth]:
    """Write ``n`` MP4 videos (20-40 s unless ``duration`` is given) to ``out_dir``; with
    ``subtitles``, each also gets a sidecar ``.srt`` and cuts aligned with some appearances."""
    if n < 0:
        raise ValueError("n must be >= 0")
    out = Path(out_dir)
    truths = [generate_video(out / f"vid_{i:03d}.mp4", seed, i, duration, fps, size, aligned_cuts=subtitles) for i in range(n)]
    return add_subtitles(truths, seed) if subtitles else truths
