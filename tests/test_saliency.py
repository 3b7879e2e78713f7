"""POST /videos/{id}/saliency: the score curve of one real video (frames and subtitle cues)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ingest.jobs import run_ingest
from search.api import create_app
from search.embedder import load_embedder
from search.services import IngestRequest
from tests._ingest_support import SharedModelServices, base_settings, make_video

SRT = "1\n00:00:05,000 --> 00:00:07,000\nthank you so much\n"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    root = tmp_path_factory.mktemp("saliency")
    make_video(root / "media" / "talk.mp4", ["red", "blue", "green", "yellow"], seconds_each=2.0)
    (root / "media" / "talk.srt").write_text(SRT)
    settings = base_settings(root / "data")
    services = SharedModelServices(settings, load_embedder(settings))
    run_ingest(services, IngestRequest(paths=[str(root / "media")]))
    with TestClient(create_app(settings, services=services)) as client:
        video = client.post("/search", json={"text": "a red square", "target": "videos", "signal": "visual"}).json()
        yield client, video["results"][0]["media_id"]
    services.close()


def test_the_curve_covers_every_frame_and_peaks_where_the_words_are_said(api: tuple[TestClient, str]) -> None:
    client, video = api
    body = client.post(f"/videos/{video}/saliency", json={"text": "thank you so much"}).json()
    assert [f["t"] for f in body["frames"]] == [float(t) for t in range(8)]
    assert [(c["start"], c["end"], c["text"]) for c in body["cues"]] == [(5.0, 7.0, "thank you so much")]
    peak = max(body["curve"], key=lambda p: p["score"])
    assert peak["signal"] == "speech" and 5.0 <= peak["t"] < 7.0
    top = body["moments"][0]
    assert (top["start"], top["end"], top["signal"]) == (5.0, 7.0, "speech")  # HIT@1: the peak lies in the top moment


def test_a_visual_query_peaks_on_its_frames(api: tuple[TestClient, str]) -> None:
    client, video = api
    body = client.post(f"/videos/{video}/saliency", json={"text": "a red square", "signal": "visual"}).json()
    assert body["cues"] == [] and {p["signal"] for p in body["curve"]} == {"visual"}
    best = max(body["frames"], key=lambda f: f["score"])
    assert best["t"] < 2.0  # red is shown for the first two seconds


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/videos/{v}/saliency", {"text": ""}, 422, "text"),
        ("/videos/{v}/saliency", {"text": "x", "signal": "smell"}, 422, "signal"),
        ("/videos/nope/saliency", {"text": "x"}, 404, "nope"),
    ],
)
def test_bad_requests_are_4xx_naming_the_problem(
    api: tuple[TestClient, str], path: str, body: dict, status: int, field: str
) -> None:
    client, video = api
    response = client.post(path.format(v=video), json=body)
    assert response.status_code == status and field in response.text
