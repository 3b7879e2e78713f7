"""Subtitles: sidecar SRT/WebVTT files and subtitle streams muxed by FFmpeg, read into cues."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from search.media.subtitles import read_sidecar, read_subtitles, sidecar_paths

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>hello</i> there

2
00:00:03,000 --> 00:00:04,000
thank you
"""

VTT = """WEBVTT

NOTE a comment block

intro
00:01.000 --> 00:02.500 align:start
Hello &amp; <v Ann>welcome</v>

00:00:03.000 --> 00:00:04.000
a red car
"""


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _video(tmp_path: Path, name: str = "movie.mp4") -> Path:
    return _write(tmp_path / name, b"not decoded by these tests")


def test_a_sidecar_srt_becomes_cues_with_times_text_and_the_language_suffix(tmp_path: Path) -> None:
    video = _video(tmp_path)
    _write(tmp_path / "movie.ja.srt", SRT)
    subs = read_subtitles(video, embedded=False)
    assert subs.problems == ()
    assert [(c.start, c.end, c.text, c.lang) for c in subs.cues] == [
        (1.0, 2.5, "hello there", "ja"),
        (3.0, 4.0, "thank you", "ja"),
    ]


def test_a_webvtt_sidecar_skips_notes_and_drops_markup(tmp_path: Path) -> None:
    track = read_sidecar(_write(tmp_path / "clip.en.vtt", VTT), "en")
    assert [(c.start, c.end, c.text) for c in track.cues] == [(1.0, 2.5, "Hello & welcome"), (3.0, 4.0, "a red car")]


def test_only_sidecars_named_after_the_video_belong_to_it(tmp_path: Path) -> None:
    video = _video(tmp_path)
    for name in ("movie.srt", "movie.en.vtt", "movie.pt-BR.srt", "movie2.srt", "other.srt", "movie.final.cut.srt"):
        _write(tmp_path / name, SRT)
    assert [p.name for p in sidecar_paths(video)] == ["movie.en.vtt", "movie.pt-BR.srt", "movie.srt"]


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8-sig", "こんにちは"),
        ("utf-16", "grüß dich"),
        ("shift_jis", "ありがとうございます"),
        ("cp1252", "café déjà vu"),
    ],
)
def test_common_encodings_are_read(tmp_path: Path, encoding: str, text: str) -> None:
    body = f"1\n00:00:01,000 --> 00:00:02,000\n{text}\n"
    track = read_sidecar(_write(tmp_path / "v.srt", body.encode(encoding)))
    assert [c.text for c in track.cues] == [text]


def test_bad_times_are_dropped_with_a_note_and_overlaps_are_kept(tmp_path: Path) -> None:
    body = (
        "1\n00:00:05,000 --> 00:00:04,000\nbackwards\n\n"
        "2\n-00:00:01,000 --> 00:00:01,000\nnegative\n\n"
        "3\n00:00:01,000 --> 00:00:03,000\nfirst\n\n"
        "4\n00:00:02,000 --> 00:00:04,000\nsecond\n\n"
        "a block with no timing\n"
    )
    video = _video(tmp_path)
    _write(tmp_path / "movie.srt", body)
    subs = read_subtitles(video, embedded=False)
    assert [c.text for c in subs.cues] == ["first", "second"]
    assert "subtitles of movie.srt: 2 cue(s) with negative or reversed times dropped" in subs.problems
    assert "subtitles of movie.srt: 1 block(s) without a timing line dropped" in subs.problems
    assert "subtitles of movie.srt: 1 cue(s) overlap the one before (kept)" in subs.problems


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("movie.srt", b"\x00\x01\x02binary\xff\x00", "not a text file"),
        ("movie.srt", b"just some words, no timing at all", "not an SRT file"),
        ("movie.vtt", b"1\n00:00:01.000 --> 00:00:02.000\nno header\n", "missing the WEBVTT header"),
        ("movie.srt", b"", "empty file"),
        ("movie.srt", b"1\n00:00:03,000 --> 00:00:01,000\nsecret words\n", "no usable cue"),
    ],
)
def test_a_bad_sidecar_gives_a_reason_that_never_quotes_its_content(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    video = _video(tmp_path)
    _write(tmp_path / name, content)
    _write(tmp_path / "movie.en.srt", SRT)  # a good sidecar beside it still counts
    subs = read_subtitles(video, embedded=False)
    assert len(subs.problems) == 1 and subs.problems[0].startswith(f"subtitles of {name}: ")
    assert reason in subs.problems[0]
    assert "secret" not in subs.problems[0] and "words" not in subs.problems[0]
    assert [c.text for c in subs.cues] == ["hello there", "thank you"]


def _mux(tmp_path: Path, name: str, codec: str, vcodec: str = "libx264", lang: str | None = None) -> Path:
    srt = _write(tmp_path / "source.txt", SRT)
    out = tmp_path / name
    args = [FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=5"]
    args += ["-f", "srt", "-i", str(srt), "-map", "0:v", "-map", "1", "-c:v", vcodec, "-c:s", codec]
    if lang:
        args += ["-metadata:s:s:0", f"language={lang}"]
    subprocess.run([*args, str(out)], check=True, timeout=60, stdin=subprocess.DEVNULL)
    return out


@pytest.mark.parametrize(
    ("name", "codec", "vcodec", "lang"),
    [
        ("a.mp4", "mov_text", "libx264", "eng"),
        ("a.mkv", "ass", "libx264", None),
        ("b.mkv", "srt", "libx264", "jpn"),
        ("c.webm", "webvtt", "libvpx", None),
    ],
)
def test_subtitle_streams_inside_the_container_are_read(tmp_path: Path, name: str, codec: str, vcodec: str, lang: str) -> None:
    video = _mux(tmp_path, name, codec, vcodec, lang)
    subs = read_subtitles(video)
    assert subs.problems == ()
    assert [(c.start, c.end, c.text, c.lang) for c in subs.cues] == [
        (1.0, 2.5, "hello there", lang),
        (3.0, 4.0, "thank you", lang),
    ]


def test_a_video_without_subtitles_has_no_cues_and_no_problems(tmp_path: Path) -> None:
    out = tmp_path / "plain.mp4"
    subprocess.run(
        [FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=1", str(out)],
        check=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    subs = read_subtitles(out)
    assert subs.cues == [] and subs.problems == ()
