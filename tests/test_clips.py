"""Clip export: GET /media/{id}/clip cuts a real H.264+AAC file by stream copy or re-encoding."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient

from ingest.jobs import run_ingest
from search.api import create_app
from search.embedder import load_embedder
from search.media.clip import ClipError, ClipPlan, export_clip
from search.services import IngestRequest
from tests._ingest_support import SharedModelServices, base_settings

FFMPEG = "/usr/bin/ffmpeg"


def _source(path: Path, seconds: int = 12) -> Path:
    """25 fps H.264 with a keyframe every 2 s, and an AAC tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        FFMPEG,
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=160x120:rate=25:duration={seconds}",
    ]
    args += [
        "-f",
        "lavfi",
        "-i",
        f"sine=duration={seconds}",
        "-c:v",
        "libx264",
        "-g",
        "50",
        "-c:a",
        "aac",
        "-shortest",
        str(path),
    ]
    subprocess.run(args, check=True, timeout=60, stdin=subprocess.DEVNULL)
    return path


def _facts(data: bytes) -> tuple[int, float, list[str]]:
    with av.open(io.BytesIO(data)) as clip:
        frames = sum(1 for _ in clip.decode(clip.streams.video[0]))
        return frames, clip.duration / av.time_base, sorted(s.type for s in clip.streams)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str, Path]]:
    root = tmp_path_factory.mktemp("clips")
    _source(root / "media" / "talk.mp4")
    settings = base_settings(root / "data")
    services = SharedModelServices(settings, load_embedder(settings))
    run_ingest(services, IngestRequest(paths=[str(root / "media")]))
    with TestClient(create_app(settings, services=services)) as client:
        video = client.post("/search", json={"text": "a test pattern", "target": "videos"}).json()["results"][0]
        yield client, video["media_id"], root / "data"
    services.close()


def test_a_span_starting_on_a_keyframe_is_stream_copied_with_its_audio(tmp_path: Path) -> None:
    source = _source(tmp_path / "s.mp4")
    clip = export_clip(source, 4.0, 8.0, tmp_path / "out" / "c.mp4", ClipPlan())
    assert (clip.method, clip.start, clip.end) == ("copy", 4.0, 8.0)
    frames, duration, streams = _facts(clip.path.read_bytes())
    assert frames == 100 and abs(duration - 4.0) < 0.1 and streams == ["audio", "video"]


def test_a_span_far_from_a_keyframe_is_re_encoded_from_its_exact_start(tmp_path: Path) -> None:
    source = _source(tmp_path / "s.mp4")
    clip = export_clip(source, 5.2, 7.0, tmp_path / "c.mp4", ClipPlan(keyframe_tolerance=0.5))
    assert clip.method == "encode" and abs(clip.start - 5.2) < 0.05
    frames, duration, streams = _facts(clip.path.read_bytes())
    assert frames == 45 and abs(duration - 1.8) < 0.1 and streams == ["video"]
    assert not list(tmp_path.glob(".*.part"))


def test_a_clip_over_the_cap_or_backwards_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClipError, match="at most 10"):
        export_clip(tmp_path / "none.mp4", 0.0, 11.0, tmp_path / "c.mp4", ClipPlan(max_seconds=10))
    with pytest.raises(ClipError, match="start < end"):
        export_clip(tmp_path / "none.mp4", 5.0, 5.0, tmp_path / "c.mp4", ClipPlan())


def test_the_clip_endpoint_serves_mp4_with_ranges_from_the_data_dirs_tmp_area(api: tuple[TestClient, str, Path]) -> None:
    client, video, data_dir = api
    whole = client.get(f"/media/{video}/clip", params={"start": 2, "end": 6})
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert _facts(whole.content)[0] == 100
    part = client.get(f"/media/{video}/clip", params={"start": 2, "end": 6}, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
    assert [p.parent for p in data_dir.rglob("*.mp4")] == [data_dir / "tmp" / "clips"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": 5, "end": 2}, "end"),
        ({"start": 0, "end": 400}, "end"),
        ({"start": -1, "end": 2}, "start"),
        ({"end": 2}, "start"),
    ],
)
def test_bad_spans_are_4xx_naming_the_field(api: tuple[TestClient, str, Path], params: dict, field: str) -> None:
    client, video, _ = api
    response = client.get(f"/media/{video}/clip", params=params)
    assert response.status_code == 422 and field in response.text


def test_an_unknown_video_is_404(api: tuple[TestClient, str, Path]) -> None:
    client, _, _ = api
    assert client.get("/media/nope/clip", params={"start": 0, "end": 1}).status_code == 404
