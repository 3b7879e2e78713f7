"""Shot boundaries: found while a real video is ingested, exact to a frame, and moments snap to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.jobs import run_ingest
from search.engine import search
from search.engine.request import SearchRequest
from search.media import probe_video, sample_frames
from search.media.shots import ShotTracker, refine_cuts, snap, snap_span
from search.media.video import SamplingPlan
from search.query import TextTerm
from search.services import IngestRequest, Services
from synthetic.video import write_video
from tests._ingest_support import COLOURS

FPS = 10
SCENES = [("red", 2.4), ("blue", 1.8), ("green", 2.8)]  # cuts at 2.4 s and 4.2 s, between samples


def _video(path: Path) -> Path:
    frames = []
    for colour, seconds in SCENES:
        pixels = np.zeros((48, 64, 3), np.uint8)
        pixels[:] = COLOURS[colour]
        frames += [pixels] * int(round(seconds * FPS))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, FPS, 64, 48)
    return path


def test_cuts_between_samples_are_found_and_refined_to_the_exact_frame(tmp_path: Path) -> None:
    video = _video(tmp_path / "cuts.mp4")
    tracker = ShotTracker()
    for frame in sample_frames(video, SamplingPlan(rate=1.0), probe_video(video)):
        tracker.add(frame.t, frame.image)
    assert tracker.pairs == [(2.0, 3.0), (4.0, 5.0)]
    assert refine_cuts(video, tracker.pairs) == [2.4, 4.2]


def test_snapping_moves_only_bounds_within_the_tolerance() -> None:
    assert snap(3.0, [2.4, 4.2], 1.0) == 2.4 and snap(3.0, [2.4, 4.2], 0.5) == 3.0 and snap(3.0, [], 1.0) == 3.0
    assert snap_span(3.0, 5.0, [2.4, 4.2], 1.0) == (2.4, 4.2)
    assert snap_span(2.5, 2.6, [2.4], 1.0) == (2.5, 2.6)  # would collapse: kept


def test_ingest_stores_the_cuts_and_moments_start_and_end_on_them(services: Services, tmp_path: Path) -> None:
    _video(tmp_path / "media" / "cuts.mp4")
    run_ingest(services, IngestRequest(paths=[str(tmp_path / "media")]))
    request = SearchRequest(terms=(TextTerm("a blue square"),), target="moments", signal="visual", limit=3)
    top = search(services, request).items[0].moment
    assert top is not None
    assert services.catalog.get_media(top.video_id).metadata["shots"] == [2.4, 4.2]
    assert (top.start, top.end) == (2.4, 4.2)
