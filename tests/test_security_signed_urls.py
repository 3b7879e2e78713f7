"""Signed media URLs: a private API whose pictures and videos a browser can still load.

With ``MMSEARCH_API__PROTECT_READS`` every read needs ``X-API-Key``, which a browser cannot add
to an ``<img>`` or ``<video>``. So the media URLs in the API's answers carry ``exp`` and ``sig``,
and the media endpoints accept them instead of the header, for exactly the item, endpoint and
span they were signed for, until they expire. These tests run the real app over a real embedded
store indexed with the bundled model: two pictures and a short video.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ingest.jobs import run_ingest
from search.api import create_app
from search.api.signing import UrlSigner
from search.embedder import Embedder
from search.services import IngestRequest, Services
from tests import ui_live
from tests._ingest_support import SharedModelServices, base_settings, make_image, make_video
from ui.client import ApiClient, SearchOptions

KEY = "correct horse battery staple"
TTL = 600
HEADER = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[tuple[Services, Path]]:
    root = tmp_path_factory.mktemp("signed")
    make_image(root / "media" / "red.png", "red", size=(160, 120))
    make_image(root / "media" / "blue.png", "blue", size=(160, 120))
    make_video(root / "media" / "clip.mp4", ["green", "yellow", "green"], seconds_each=2.0)
    services = SharedModelServices(base_settings(root / "data"), embedder)
    run_ingest(services, IngestRequest(paths=(str(root / "media"),)))
    yield services, root / "media"
    services.close()


def client_for(services: Services, **api: Any) -> TestClient:
    settings = base_settings(services.settings.data_dir, api=api)
    return TestClient(create_app(settings, services=services))


@pytest.fixture(scope="module")
def private(world: tuple[Services, Path]) -> Iterator[TestClient]:
    with client_for(world[0], api_key=KEY, protect_reads=True, media_url_ttl=TTL) as client:
        yield client


@pytest.fixture(scope="module")
def image_hit(private: TestClient) -> dict[str, Any]:
    found = private.post("/search", json={"text": "red", "target": "images", "filters": {"kinds": ["image"]}}, headers=HEADER)
    assert found.status_code == 200, found.text
    return next(r for r in found.json()["results"] if r["name"] == "red.png")


@pytest.fixture(scope="module")
def moment(private: TestClient) -> dict[str, Any]:
    found = private.post("/search", json={"text": "yellow", "target": "moments"}, headers=HEADER)
    assert found.status_code == 200, found.text
    return found.json()["results"][0]["moment"]


def split(url: str) -> tuple[str, dict[str, str]]:
    """(path, query) of a URL the API returned, without its #t= fragment."""
    parts = urlsplit(url)
    return parts.path, dict(parse_qsl(parts.query))


def join(path: str, query: dict[str, str]) -> str:
    return f"{path}?{urlencode(query)}" if query else path


def refused(client: TestClient, url: str, **headers: str) -> str:
    """The 401's message for a URL that must not open."""
    answer = client.get(url, headers=headers)
    assert answer.status_code == 401, (url, answer.status_code, answer.text[:200])
    assert answer.json()["error"] == "unauthorized"
    return str(answer.json()["detail"])


# --- what opens ---------------------------------------------------------------------------------


def test_a_results_thumbnail_and_file_load_without_the_header(
    private: TestClient, image_hit: dict[str, Any], world: tuple[Services, Path]
) -> None:
    for url in (image_hit["thumbnail_url"], image_hit["file_url"]):
        assert set(split(url)[1]) == {"exp", "sig"}, url
        assert KEY not in url
    thumb = private.get(image_hit["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert thumb.headers["cache-control"].startswith("private")
    file = private.get(image_hit["file_url"])
    assert file.status_code == 200 and file.content == (world[1] / "red.png").read_bytes()


def test_a_range_request_on_a_signed_file_url_is_answered_206(private: TestClient, image_hit: dict[str, Any]) -> None:
    partial = private.get(image_hit["file_url"], headers={"Range": "bytes=0-99"})
    assert partial.status_code == 206 and len(partial.content) == 100
    assert partial.headers["content-range"].startswith("bytes 0-99/")


def test_a_moments_video_thumbnail_and_clip_load_without_the_header(private: TestClient, moment: dict[str, Any]) -> None:
    video = private.get(moment["file_url"].split("#", 1)[0], headers={"Range": "bytes=0-"})
    assert video.status_code == 206 and video.headers["content-type"] == "video/mp4"
    assert private.get(moment["thumbnail_url"]).status_code == 200
    path, query = split(moment["clip_url"])
    assert path.endswith("/clip") and {"start", "end", "exp", "sig"} <= set(query)
    clip = private.get(moment["clip_url"])
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4" and clip.content[4:8] == b"ftyp"


def test_video_results_metadata_and_saliency_hand_out_signed_urls(private: TestClient, moment: dict[str, Any]) -> None:
    videos = private.post("/search", json={"text": "yellow", "target": "videos"}, headers=HEADER).json()["results"]
    urls = [videos[0]["thumbnail_url"], videos[0]["file_url"]]
    urls += [u for m in videos[0]["moments"] for u in (m["thumbnail_url"], m["file_url"], m["clip_url"])]
    media = private.get(f"/media/{moment['video_id']}", headers=HEADER).json()
    urls += [media["thumbnail_url"], media["file_url"]]
    saliency = private.post(f"/videos/{moment['video_id']}/saliency", json={"text": "yellow"}, headers=HEADER).json()
    urls += [u for m in saliency["moments"] for u in (m["thumbnail_url"], m["clip_url"])]
    for url in urls:
        assert "sig" in split(url)[1], url
        assert private.get(url.split("#", 1)[0], headers={"Range": "bytes=0-0"}).status_code in (200, 206), url


def test_the_key_header_still_opens_media_urls_and_a_wrong_key_is_not_rescued_by_a_signature(
    private: TestClient, image_hit: dict[str, Any]
) -> None:
    path, _ = split(image_hit["thumbnail_url"])
    assert private.get(path, headers=HEADER).status_code == 200
    assert private.get(image_hit["thumbnail_url"], headers={"X-API-Key": "wrong"}).status_code == 403


# --- what stays shut ----------------------------------------------------------------------------


def test_the_same_path_without_a_signature_is_401(private: TestClient, image_hit: dict[str, Any], moment: dict[str, Any]) -> None:
    for url in (image_hit["thumbnail_url"], image_hit["file_url"], moment["thumbnail_url"]):
        detail = refused(private, split(url)[0])
        assert "X-API-Key" in detail and "signed URL" in detail


def test_a_tampered_or_half_signature_is_refused(private: TestClient, image_hit: dict[str, Any]) -> None:
    path, query = split(image_hit["file_url"])
    flipped = query["sig"][:-1] + ("A" if query["sig"][-1] != "A" else "B")
    assert "not valid" in refused(private, join(path, {**query, "sig": flipped}))
    refused(private, join(path, {**query, "exp": str(int(query["exp"]) + 3600)}))  # a longer life than signed
    refused(private, join(path, {"exp": query["exp"]}))
    refused(private, join(path, {"sig": query["sig"]}))
    refused(private, join(path, {**query, "exp": "soon"}))
    refused(private, join(path, {**query, "download": "1"}))  # any parameter beyond the signed ones


def test_an_expired_signature_says_so(private: TestClient, image_hit: dict[str, Any]) -> None:
    path = split(image_hit["thumbnail_url"])[0]
    signed_path = unquote(path)
    past = UrlSigner(KEY, TTL, clock=lambda: time.time() - 2 * TTL)  # the server's own scheme, signed long ago
    detail = refused(private, join(path, dict(past.sign(signed_path))))
    assert "expired" in detail


def test_a_tiny_ttl_lapses(world: tuple[Services, Path]) -> None:
    with client_for(world[0], api_key=KEY, protect_reads=True, media_url_ttl=10) as client:
        media_id = client.post("/search", json={"text": "red"}, headers=HEADER).json()["results"][0]["media_id"]
        before = int(time.time())
        url = client.get(f"/media/{media_id}", headers=HEADER).json()["thumbnail_url"]
        after = int(time.time())
        assert client.get(url).status_code == 200
        exp = int(split(url)[1]["exp"])
        assert before + 11 <= exp <= after + 11  # the next whole second (a tenth of 10 s), plus the TTL
    later = UrlSigner(KEY, 10, clock=lambda: exp + 1.0)
    with pytest.raises(Exception, match="expired"):
        later.verify(f"/media/{media_id}/thumbnail", [], str(exp), split(url)[1]["sig"])


def test_a_signature_opens_only_its_own_item_and_endpoint(private: TestClient, image_hit: dict[str, Any]) -> None:
    found = private.post("/search", json={"text": "blue", "filters": {"kinds": ["image"]}}, headers=HEADER).json()
    other = next(r for r in found["results"] if r["name"] == "blue.png")
    _, query = split(image_hit["file_url"])
    other_path = split(other["file_url"])[0]
    refused(private, join(other_path, query))  # red's signature on blue's file
    thumb_path, thumb_query = split(image_hit["thumbnail_url"])
    refused(private, join(thumb_path.replace("/thumbnail", "/file"), thumb_query))  # a thumbnail's on the file
    refused(private, join(thumb_path.replace("/media/", "/points/"), thumb_query))
    refused(private, join(split(image_hit["file_url"])[0].replace("/file", "/thumbnail"), query))


def test_a_clip_signature_opens_no_other_span(private: TestClient, moment: dict[str, Any]) -> None:
    path, query = split(moment["clip_url"])
    refused(private, join(path, {**query, "end": f"{float(query['end']) + 1:.3f}"}))
    refused(private, join(path, {**query, "start": "0"}))
    refused(private, join(path.replace("/clip", "/file"), {k: v for k, v in query.items() if k in ("exp", "sig")}))


def test_a_signature_made_with_another_key_is_refused(private: TestClient, image_hit: dict[str, Any]) -> None:
    path = split(image_hit["thumbnail_url"])[0]
    forged = UrlSigner("another key", TTL).sign(path)
    assert "not valid" in refused(private, join(path, dict(forged)))


def test_a_signature_does_not_open_other_endpoints(private: TestClient, image_hit: dict[str, Any]) -> None:
    _, query = split(image_hit["thumbnail_url"])
    assert private.get(join(f"/media/{image_hit['media_id']}", query)).status_code == 401
    assert private.get(join("/stats", query)).status_code == 401


# --- open reads, settings, signer ---------------------------------------------------------------------


def test_with_open_reads_urls_carry_no_signature(world: tuple[Services, Path]) -> None:
    with client_for(world[0], api_key=KEY) as client:
        hit = client.post("/search", json={"text": "red"}).json()["results"][0]
        assert "?" not in hit["thumbnail_url"] and "?" not in hit["file_url"].split("#")[0]
        assert client.get(hit["thumbnail_url"]).headers["cache-control"].startswith("public")
        moment = client.post("/search", json={"text": "yellow", "target": "moments"}).json()["results"][0]["moment"]
        assert set(split(moment["clip_url"])[1]) == {"start", "end"}
        assert client.get(moment["clip_url"]).status_code == 200


def test_the_ttl_is_bounded(tmp_path: Path) -> None:
    for ttl in (0, 9, 8 * 86400):
        with pytest.raises(ValidationError):
            base_settings(tmp_path, api={"api_key": KEY, "protect_reads": True, "media_url_ttl": ttl})


def test_an_items_urls_stay_the_same_for_a_while() -> None:
    """Expiries are rounded up to a tenth of the TTL: the browser caches one URL, not one per search."""
    now = [360 * 2800.0]  # at the start of a step
    signer = UrlSigner(KEY, 3600, clock=lambda: now[0])
    first = signer.sign("/media/x/thumbnail")
    now[0] += 100
    assert signer.sign("/media/x/thumbnail") == first
    assert 3600 <= int(first[0][1]) - now[0] <= 3600 + 360
    now[0] += 400
    assert signer.sign("/media/x/thumbnail") != first


# --- the UI's client over HTTP --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_private(world: tuple[Services, Path]) -> Iterator[str]:
    """The private app served by uvicorn on 127.0.0.1, for the UI's real HTTP client."""
    settings = base_settings(world[0].settings.data_dir, api={"api_key": KEY, "protect_reads": True})
    with ui_live.serving_in_thread(create_app(settings, services=world[0])) as url:
        yield url


def test_the_urls_the_ui_gets_load_in_a_browser_without_the_key(live_private: str) -> None:
    """What the UI hands to the browser (st.image, st.video, the clip link) opens with no header."""
    ui = ApiClient(live_private, api_key=KEY)
    try:
        hits = ui.search("red", SearchOptions()).hits
        groups, _ = ui.videos("yellow", SearchOptions(target="moments"))
    finally:
        ui.close()
    moment = groups[0].moments[0]
    urls = [h.thumbnail_url for h in hits] + [h.file_url for h in hits]
    urls += [groups[0].file_url, groups[0].thumbnail_url, moment.thumbnail_url]
    urls.append(ui.clip_url(groups[0].video_id, moment.start, moment.end, moment.clip_url))
    with httpx.Client(timeout=60) as browser:  # no X-API-Key, like an <img> or <video> element
        for url in urls:
            assert url and url.startswith(live_private), url
            answer = browser.get(url.split("#", 1)[0], headers={"Range": "bytes=0-"})
            assert answer.status_code in (200, 206), (url, answer.text[:200])
        assert browser.get(urls[0].split("?", 1)[0]).status_code == 401
