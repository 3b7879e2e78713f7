"""Sparse sampling seeks to keyframes and picks the same frames as decoding every frame."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from search.media.video import SamplingPlan, keyframe_times, probe_video, sample_frames, seek_keyframes


def _encode(path: Path, gop_frames: int) -> Path:
    """30 s of 25 fps H.264 (a real encoder, a moving pattern), a keyframe every ``gop_frames``."""
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
    subprocess.run([*args, "-c:v", "libx264", "-g", str(gop_frames), str(path)], check=True, timeout=60, stdin=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keyframe every second."""
    return _encode(tmp_path_factory.mktemp("seek") / "long.mp4", 25)


@pytest.fixture(scope="module")
def long_gop_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keyframe every 2.4 s: several one-per-second samples fall in one group of pictures."""
    return _encode(tmp_path_factory.mktemp("seek") / "gop.mp4", 60)


def _same_frames(a: list, b: list) -> bool:
    return [f.t for f in a] == [f.t for f in b] and all(
        np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b, strict=True)
    )


def test_seeking_yields_the_same_frames_as_sequential_decoding(video: Path) -> None:
    info = probe_video(video)
    sequential = list(sample_frames(video, SamplingPlan(rate=0.25, seek="never"), info))
    seeking = list(sample_frames(video, SamplingPlan(rate=0.25, seek="always"), info))
    assert [f.t for f in seeking] == [f.t for f in sequential] == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0]
    for a, b in zip(sequential, seeking, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_auto_samples_by_keyframes_whenever_the_video_has_them(video: Path) -> None:
    assert seek_keyframes(video, SamplingPlan(rate=0.25)) == keyframe_times(video)
    assert seek_keyframes(video, SamplingPlan(rate=1.0)) is not None  # a sample per keyframe: one frame decoded in 25
    assert seek_keyframes(video, SamplingPlan(seek="never")) is None
    assert seek_keyframes(video, SamplingPlan(scene_change=True)) is None  # cuts need every frame


def test_the_keyframes_are_read_from_the_packets(video: Path, long_gop_video: Path) -> None:
    assert keyframe_times(video)[:3] == pytest.approx([0.0, 1.0, 2.0])
    assert len(keyframe_times(video)) == 30
    assert keyframe_times(long_gop_video)[:3] == pytest.approx([0.0, 2.4, 4.8])


@pytest.mark.parametrize("rate", [1.0, 4.0, 0.3])
def test_samples_sharing_a_group_of_pictures_are_the_frames_sequential_decoding_picks(long_gop_video: Path, rate: float) -> None:
    """One or several samples per 2.4 s group: decoding goes on within a group and seeks between."""
    info = probe_video(long_gop_video)
    sequential = list(sample_frames(long_gop_video, SamplingPlan(rate=rate, seek="never"), info))
    by_keyframes = list(sample_frames(long_gop_video, SamplingPlan(rate=rate, seek="always"), info))
    assert len(sequential) == int(30 * rate + 0.999)
    assert _same_frames(sequential, by_keyframes)


def test_one_sample_per_keyframe_matches_sequential_decoding(video: Path) -> None:
    info = probe_video(video)
    sequential = list(sample_frames(video, SamplingPlan(rate=1.0, seek="never"), info))
    assert _same_frames(sequential, list(sample_frames(video, SamplingPlan(rate=1.0), info)))


def test_seeking_spreads_max_frames_over_the_whole_video(video: Path) -> None:
    frames = list(sample_frames(video, SamplingPlan(rate=0.25, max_frames=3, seek="always")))
    assert [f.t for f in frames] == [0.0, 10.0, 20.0]  # the rate is lowered so 3 samples span the video
