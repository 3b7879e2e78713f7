"""Subtitle cues are indexed with their video, and moment search finds what is said."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ingest.jobs import run_ingest
from search.engine import search
from search.engine.request import SearchRequest
from search.errors import BadQuery
from search.moments import (
    CueScore,
    FrameScore,
    MomentParams,
    fuse_signals,
    keyword_overlap,
    query_words,
    speech_frames,
    topk_windows,
    video_moments,
)
from search.payload import KIND, CuePayload
from search.query import TextTerm
from search.services import IngestRequest, Services
from search.store import Filter, Match
from synthetic import generate_videos
from tests._ingest_support import make_video

FFMPEG = "/usr/bin/ffmpeg"
STREAM_SRT = "1\n00:00:01,000 --> 00:00:02,500\nthe old lighthouse keeper\n"
SIDECAR_SRT = "1\n00:00:05,000 --> 00:00:07,000\nthank you so much\n"


def _with_subtitle_stream(plain: Path, out: Path, srt_text: str) -> Path:
    srt = plain.with_suffix(".txt")
    srt.write_text(srt_text)
    args = [FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-i", str(plain), "-f", "srt", "-i", str(srt)]
    args += ["-map", "0:v", "-map", "1", "-c:v", "copy", "-c:s", "mov_text", "-metadata:s:s:0", "language=eng", str(out)]
    subprocess.run(args, check=True, timeout=60, stdin=subprocess.DEVNULL)
    srt.unlink()
    plain.unlink()
    return out


def _cues(services: Services) -> list[CuePayload]:
    hits = services.store.scroll(Filter((Match(KIND, ("cue",)),)), limit=1000).hits
    return sorted((CuePayload.from_payload(h.payload) for h in hits), key=lambda c: c.t_start)


def test_embedded_and_sidecar_cues_become_points_and_a_bad_sidecar_is_recorded(services: Services, tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    plain = make_video(tmp_path / "plain.mp4", ["red", "blue", "green", "yellow"], seconds_each=2.0)
    _with_subtitle_stream(plain, media / "movie.mp4", STREAM_SRT)
    (media / "movie.en.srt").write_text(SIDECAR_SRT)
    (media / "movie.ja.srt").write_bytes(b"\x00\x01 not subtitles \x00")

    job = run_ingest(services, IngestRequest(paths=[str(media)]))

    assert job.indexed == 1 and job.failed == 0
    cues = _cues(services)
    assert [(c.t_start, c.t_end, c.text, c.lang) for c in cues] == [
        (1.0, 2.5, "the old lighthouse keeper", "eng"),
        (5.0, 7.0, "thank you so much", "en"),
    ]
    assert {c.video_id for c in cues} == {cues[0].media_id}
    assert cues[1].track == "movie.en.srt"
    reasons = [f.reason for f in services.catalog.job_failures(job.id)]
    assert reasons == ["subtitles of movie.ja.srt: not a text file (it holds NUL bytes)"]
    assert services.catalog.get_media(cues[0].media_id).status == "indexed"


def _moments(services: Services, text: str, signal: str | None) -> list:
    request = SearchRequest(terms=(TextTerm(text),), target="moments", signal=signal, limit=5)
    return [item.moment for item in search(services, request).items]


def test_moment_search_finds_what_is_said_and_says_which_signal_carried_it(services: Services, tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    make_video(media / "movie.mp4", ["red", "blue", "green", "yellow"], seconds_each=2.0)
    (media / "movie.srt").write_text(SIDECAR_SRT)
    run_ingest(services, IngestRequest(paths=[str(media)]))

    speech = _moments(services, "thank you so much", "speech")
    assert speech and speech[0].signal == "speech"
    assert (speech[0].start, speech[0].end) == (5.0, 7.0)
    fused = _moments(services, "thank you so much", "both")
    assert (fused[0].start, fused[0].end, fused[0].signal) == (5.0, 7.0, "speech")
    visual = _moments(services, "a red square", "visual")
    assert visual and all(m.signal == "visual" for m in visual)
    with pytest.raises(BadQuery, match="signal"):
        _moments(services, "x", "smell")


def test_speech_scores_lie_on_the_frame_grid_and_the_stronger_signal_wins_each_instant() -> None:
    cues = [CueScore("v", 2.0, 4.0, 0.9, "thank you"), CueScore("v", 6.5, 7.0, 0.5, "goodbye")]
    speech = sorted(speech_frames(cues, query_words("thank you"), step=1.0), key=lambda f: f.t)
    assert [(f.t, round(f.score, 3)) for f in speech] == [(2.0, 2.0), (3.0, 2.0), (6.0, 0.0)]
    visual = [FrameScore("v", 3.0, 0.4, "f3"), FrameScore("v", 6.0, 0.8, "f6")]
    fused = {f.t: (f.signal, f.score, f.point_id) for f in fuse_signals(visual, speech, 1.0)}
    assert fused == {2.0: ("speech", 2.0, ""), 3.0: ("speech", 2.0, "f3"), 6.0: ("visual", 0.8, "f6")}
    assert keyword_overlap(query_words("The red car"), "a RED bus") == 0.5


def test_a_world_video_is_found_by_what_its_subtitles_say_and_by_what_it_shows(services: Services, tmp_path: Path) -> None:
    (truth,) = generate_videos(tmp_path / "media", 1, seed=0, fps=6, size=64, duration=16.0, subtitles=True)
    run_ingest(services, IngestRequest(paths=[str(tmp_path / "media")]))
    said = next(c for c in truth.cues if c.kind == "mentions")  # a pair the video never shows
    (top,) = _moments(services, said.text, "speech")[:1]
    assert (top.start, top.end, top.signal) == (said.start, said.end, "speech")
    described = next(c for c in truth.cues if c.kind == "describes")
    for signal in ("speech", "both"):
        top = _moments(services, f"a {described.colour} {described.shape}", signal)[0]
        assert (top.start, top.end) == (described.start, described.end)
    unsaid = next(m for m in truth.moments if not any(c.pair == m.pair for c in truth.cues))
    top = _moments(services, f"a {unsaid.colour} {unsaid.shape}", "both")[0]
    assert top.signal == "visual" and top.start < unsaid.end and unsaid.start < top.end


def test_a_cue_saying_half_the_words_never_outranks_the_best_frame_and_a_speech_moment_is_its_cue() -> None:
    cues = [CueScore("v", 1.856, 6.807, 0.9, "a red circle appears"), CueScore("v", 12.25, 14.5, 0.2, "look, a red star")]
    speech = sorted(speech_frames(cues, query_words("a red star"), step=1.0), key=lambda f: f.t)
    assert [f.t for f in speech] == [2.0, 3.0, 4.0, 5.0, 6.0, 13.0, 14.0]  # the instants each cue covers
    assert max(f.score for f in speech if f.t < 10) < 1.0  # "red" alone: below any best frame (1 after rescaling)
    params = MomentParams(k=3)
    windows = topk_windows(speech, 16.0, params, 0.0)
    best = video_moments(windows, speech, params, 0.0, 0.0)[0]
    assert (best.start, best.end, best.score) == (12.25, 14.5, 1.5)  # the cue's own bounds and relevance


def test_two_cues_with_silence_between_them_are_two_moments() -> None:
    cues = [CueScore("v", 3.0, 5.0, 0.9, "a red star appears"), CueScore("v", 5.6, 8.0, 0.9, "look, a red star")]
    speech = speech_frames(cues, query_words("a red star"), step=1.0)
    params = MomentParams(k=3)
    found = video_moments(topk_windows(speech, 12.0, params, 0.0), speech, params, 0.0, 0.0)
    assert sorted((m.start, m.end) for m in found) == [(3.0, 5.0), (5.6, 8.0)]
