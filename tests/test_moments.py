"""Pooling frame scores into windows, windows into moments, moments into ranked videos."""

from __future__ import annotations

import numpy as np
import pytest

from search.moments import (
    FrameScore,
    MomentParams,
    WindowScore,
    mean_pooled_score,
    merge_windows,
    rank_moments,
    topk_mean,
    topk_windows,
    video_moments,
    video_topk_score,
    window_grid,
)

PARAMS = MomentParams(segment_seconds=4.0, segment_stride=2.0, frame_step=1.0, k=3)


def scene_frames(video: str, scores: list[float], step: float = 1.0) -> list[FrameScore]:
    return [FrameScore(video, i * step, s, f"{video}-{i}") for i, s in enumerate(scores)]


def test_topk_mean_averages_only_the_k_best_scores():
    assert topk_mean([0.1, 0.9, 0.5, 0.7], k=2) == pytest.approx(0.8)


def test_topk_mean_counts_unseen_frames_as_the_floor():
    # one strong frame in a window of four: the three unseen frames score at most the floor
    assert topk_mean([0.9], k=3, pad_to=4, floor=0.3) == pytest.approx((0.9 + 0.3 + 0.3) / 3)


def test_window_grid_follows_segment_length_and_stride_and_covers_the_end():
    assert window_grid(10.0, 4.0, 2.0) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert window_grid(11.0, 4.0, 2.0)[-1] == (8, 11)
    assert window_grid(3.0, 4.0, 2.0) == [(0, 3)]


def test_a_single_bright_frame_does_not_outscore_a_scene_of_good_frames_under_topk():
    spike = scene_frames("a", [0.2, 0.2, 0.9, 0.2, 0.2, 0.2])
    scene = scene_frames("b", [0.2, 0.6, 0.6, 0.6, 0.6, 0.2])
    assert video_topk_score(scene, 3, 0.2) > video_topk_score(spike, 3, 0.2)


def test_mean_pooled_score_is_cosine_with_the_mean_of_segment_vectors():
    q = np.array([1.0, 0.0], dtype=np.float32)
    segs = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert mean_pooled_score(q, segs) == pytest.approx(1 / np.sqrt(2))


def test_adjacent_high_windows_merge_and_low_ones_split_moments():
    windows = [
        WindowScore("v", 0, 4, 0.9),
        WindowScore("v", 2, 6, 0.8),
        WindowScore("v", 4, 8, 0.1),
        WindowScore("v", 6, 10, 0.7),
    ]
    merged = merge_windows(windows, threshold=0.5)
    assert [(w.start, w.end, w.score) for w in merged] == [(0, 6, 0.9), (6, 10, 0.7)]


def test_a_scene_in_the_middle_becomes_one_moment_with_frame_accurate_edges():
    # 12 s at 1 fps; the query matches the scene [4, 8)
    frames = scene_frames("v", [0.2] * 4 + [0.3] * 4 + [0.2] * 4)
    windows = topk_windows(frames, 12.0, PARAMS, floor=0.2)
    moments = video_moments(windows, frames, PARAMS, floor=0.2)
    assert len(moments) == 1
    m = moments[0]
    assert (m.start, m.end) == (4.0, 8.0)
    assert m.best_t is not None and 4.0 <= m.best_t < 8.0
    assert m.score == pytest.approx(0.3)


def test_two_separate_scenes_become_two_moments_best_first():
    frames = scene_frames("v", [0.2] * 4 + [0.28] * 4 + [0.2] * 6 + [0.32] * 4 + [0.2] * 2)
    moments = video_moments(topk_windows(frames, 20.0, PARAMS, 0.2), frames, PARAMS, 0.2)
    assert [(m.start, m.end) for m in moments] == [(14.0, 18.0), (4.0, 8.0)]


def test_moments_are_accurate_to_one_sampling_step_at_half_a_frame_per_second():
    params = MomentParams(segment_seconds=4.0, segment_stride=2.0, frame_step=2.0, k=2)
    # frames every 2 s over 20 s; the scene covers [8, 14)
    frames = scene_frames("v", [0.2, 0.2, 0.2, 0.2, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2], step=2.0)
    (m,) = video_moments(topk_windows(frames, 20.0, params, 0.2), frames, params, 0.2)
    assert abs(m.start - 8.0) <= 2.0 and abs(m.end - 14.0) <= 2.0


def test_mean_pooled_windows_merge_and_are_refined_by_frames():
    frames = scene_frames("v", [0.2] * 4 + [0.3] * 4 + [0.2] * 4)
    segment_scores = [0.2, 0.25, 0.3, 0.25, 0.2]  # what segment points would score
    windows = [WindowScore("v", s, s + 4, sc) for s, sc in zip(range(0, 10, 2), segment_scores)]
    (m,) = video_moments(windows, frames, PARAMS, 0.2)
    assert (m.start, m.end) == (4.0, 8.0)


def test_per_video_limit_keeps_only_the_best_moments():
    frames = scene_frames("v", [0.5, 0.2, 0.2, 0.2, 0.2, 0.6, 0.2, 0.2, 0.2, 0.2, 0.7])
    params = MomentParams(segment_seconds=1.0, segment_stride=1.0, frame_step=1.0, k=1, per_video=2)
    moments = video_moments(topk_windows(frames, 11.0, params, 0.2), frames, params, 0.2)
    assert [m.start for m in moments] == [10.0, 5.0]


def test_rank_moments_orders_all_videos_by_score():
    from search.moments import Moment

    ranked = rank_moments({"a": [Moment("a", 0, 1, 0.4)], "b": [Moment("b", 0, 1, 0.6), Moment("b", 5, 6, 0.1)]})
    assert [(m.video_id, m.score) for m in ranked] == [("b", 0.6), ("a", 0.4), ("b", 0.1)]


def test_windows_without_any_candidate_frame_are_not_invented():
    frames = scene_frames("v", [0.5, 0.5])  # only the first two seconds came back
    windows = topk_windows(frames, 30.0, PARAMS, 0.1)
    assert all(w.start < 2.0 for w in windows)


def test_a_bright_background_and_a_short_gap_do_not_glue_two_scenes_together():
    # measured shape from the bundled model: the video's background scores far above other
    # videos' frames (the global floor), and two scenes are two frames apart
    scores = [0.46] * 2 + [0.63] * 7 + [0.467] * 2 + [0.67] * 8 + [0.46] * 7
    frames = scene_frames("v", scores)
    windows = topk_windows(frames, 26.0, PARAMS, floor=0.13)
    moments = video_moments(windows, frames, PARAMS, floor=0.13)
    assert sorted((m.start, m.end) for m in moments) == [(2.0, 9.0), (11.0, 19.0)]
    assert moments[0].start == 11.0  # the stronger scene first


def test_frames_that_half_match_at_a_scene_edge_are_left_out():
    # measured with the retrained model: the backdrop before the object appears is already dark,
    # so "a black square" scores those frames halfway between the background and the scene
    scores = [0.2] * 13 + [0.44] * 2 + [0.49] * 2 + [0.72] * 6 + [0.49] + [0.2] * 6
    frames = scene_frames("v", scores)
    moments = video_moments(topk_windows(frames, 30.0, PARAMS, 0.1), frames, PARAMS, 0.1)
    assert (moments[0].start, moments[0].end) == (17.0, 23.0)
