"""Sparse sampling seeks to keyframes and picks the same frames as decoding every frame."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from search.media.video import SamplingPlan, keyframe_spacing, probe_video, sample_frames, should_seek


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 s of 25 fps H.264 with a keyframe every second (a real encoder, a moving pattern)."""
    path = tmp_path_factory.mktemp("seek") / "long.mp4"
    args = [
        "/usr/bin/ffmpeg",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=25:duration=30",
    ]
    subprocess.run([*args, "-c:v", "libx264", "-g", "25", str(path)], check=True, timeout=60, stdin=subprocess.DEVNULL)
    return path


def test_keyframe_spacing_is_measured_from_the_packets(video: Path) -> None:
    assert keyframe_spacing(video) == pytest.approx(1.0)


def test_seeking_yields_the_same_frames_as_sequential_decoding(video: Path) -> None:
    info = probe_video(video)
    sequential = list(sample_frames(video, SamplingPlan(rate=0.25, seek="never"), info))
    seeking = list(sample_frames(video, SamplingPlan(rate=0.25, seek="always"), info))
    assert [f.t for f in seeking] == [f.t for f in sequential] == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0]
    for a, b in zip(sequential, seeking, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_auto_seeks_only_when_samples_are_keyframe_spacings_apart(video: Path) -> None:
    assert should_seek(video, SamplingPlan(seek="auto"), interval=4.0)
    assert not should_seek(video, SamplingPlan(seek="auto"), interval=1.0)
    assert not should_seek(video, SamplingPlan(seek="never"), interval=10.0)


def test_seeking_spreads_max_frames_over_the_whole_video(video: Path) -> None:
    frames = list(sample_frames(video, SamplingPlan(rate=0.25, max_frames=3, seek="always")))
    assert [f.t for f in frames] == [0.0, 10.0, 20.0]  # the rate is lowered so 3 samples span the video
