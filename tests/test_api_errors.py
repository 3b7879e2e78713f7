"""Every bad request gets its 4xx status and a message a person can act on, never a 500.

The body of every refusal is ``{"detail", "error", "position"?}``; these tests pin the status,
the machine-readable ``error`` and the words a user would look for in ``detail``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from search.api import create_app
from tests._api_support import corpus, indexed, settings_for

SMALL_LIMIT = 20_000  # bytes, for the upload-size checks


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    ix = indexed("edge")
    with TestClient(create_app(ix.settings, services=ix.services)) as c:
        yield c


@pytest.fixture(scope="module")
def strict_client() -> Iterator[TestClient]:
    """The same index behind an app with a small upload limit and an API key."""
    ix = indexed("edge")
    settings = settings_for("edge", ix.settings.data_dir, api={"max_upload_bytes": SMALL_LIMIT, "api_key": "s3cret"})
    with TestClient(create_app(settings, services=ix.services)) as c:
        yield c


def refused(response: Any, status: int, error: str, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    for word in words:
        assert word.lower() in body["detail"].lower(), body
    return body


def noise_image(side: int) -> bytes:
    """A PNG that does not compress (random pixels), so its size is predictable."""
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


# --- 404 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, url, body",
    [
        ("post", "/search", {"id": "no-such-item"}),
        ("post", "/search", {"query": '"red" + id:no-such-item'}),
        ("post", "/search", {"positive": ["no-such-item"]}),
        ("get", "/similar/no-such-item", None),
        ("get", "/media/no-such-item", None),
        ("get", "/media/no-such-item/thumbnail", None),
        ("get", "/media/no-such-item/file", None),
        ("get", "/points/no-such-item/thumbnail", None),
        ("get", "/jobs/no-such-job", None),
    ],
)
def test_unknown_ids_are_404(client: TestClient, method: str, url: str, body: Any) -> None:
    response = client.request(method.upper(), url, json=body)
    refused(response, 404, "not_found", "no-such-")


# --- 400 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, position",
    [
        ('"red" + ', 8),  # a dangling operator
        ('"red" + "blue', 8),  # an unterminated quote, pointed at its opening quote
        ('"red" "blue"', 6),  # two terms without an operator
        ('"red" * x', 8),  # a weight that is not a number
        ("id:", 0),
        ('"red" + 500*"blue"', 8),  # a weight out of range
    ],
)
def test_bad_arithmetic_is_400_with_the_position(client: TestClient, query: str, position: int) -> None:
    body = refused(client.post("/search", json={"query": query}), 400, "bad_query", f"position {position}")
    assert body["position"] == position


def test_terms_that_cancel_out_are_400(client: TestClient) -> None:
    refused(client.post("/search", json={"query": '"red" - "red"'}), 400, "bad_query", "cancel")


def test_file_terms_are_refused_over_http(client: TestClient) -> None:
    refused(client.post("/search", json={"query": "file:/etc/passwd"}), 400, "bad_query", "command line")


def test_an_undecodable_image_is_400(client: TestClient) -> None:
    broken = b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50  # a PNG signature, then nothing usable
    refused(client.post("/search/image", files={"file": ("x.png", broken)}), 400, "bad_image")
    refused(client.post("/search", json={"image": base64.b64encode(broken).decode()}), 400, "bad_image")
    refused(client.post("/search", json={"image": "not base64 at all!"}), 400, "bad_image", "base64")
    refused(client.post("/search/image", files={"file": ("x.png", b"")}), 400, "bad_image", "empty")


def test_bytes_that_are_not_an_image_are_415(client: TestClient) -> None:
    refused(client.post("/search/image", files={"file": ("notes.txt", b"just some words\n" * 20)}), 415, "unsupported_media")
    video = next(corpus().videos.glob("*.mp4")).read_bytes()
    refused(client.post("/search/image", files={"file": ("clip.mp4", video)}), 415, "unsupported_media", "video")


def test_a_private_address_as_query_url_is_refused(client: TestClient) -> None:
    for url in ("http://10.1.2.3/cat.jpg", "http://[::1]:9/cat.jpg", "http://169.254.169.254/latest/meta-data"):
        refused(client.post("/search", json={"url": url}), 400, "blocked_address")


# --- 413 -------------------------------------------------------------------------------------


def test_uploads_over_the_limit_are_413(strict_client: TestClient) -> None:
    big = noise_image(120)
    assert len(big) > SMALL_LIMIT
    refused(strict_client.post("/search/image", files={"file": ("big.png", big)}), 413, "too_large")
    refused(strict_client.post("/search", json={"image": base64.b64encode(big).decode()}), 413, "too_large")


def test_a_body_over_the_request_limit_is_413_before_it_is_read(strict_client: TestClient) -> None:
    from search.api.limits import body_limit

    oversized = b"x" * (body_limit(SMALL_LIMIT) + 1)
    response = strict_client.post("/search", content=oversized, headers={"content-type": "application/json"})
    refused(response, 413, "too_large")


def test_a_small_image_passes_the_small_limit(strict_client: TestClient) -> None:
    small = Path(sorted(corpus().images.glob("*.jpg"))[0]).read_bytes()
    assert len(small) < SMALL_LIMIT
    assert strict_client.post("/search/image", files={"file": ("ok.jpg", small)}, params={"limit": 1}).status_code == 200


# --- 422 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters, error, word",
    [
        ({"min_price": 10, "max_price": 1}, "bad_filter", "max_price"),
        ({"path_prefix": "relative/folder"}, "bad_filter", "absolute"),
        ({"taken_after": 2_000_000_000, "taken_before": 1_000_000_000}, "bad_filter", "taken_before"),
        ({"fields": {"bad name!": "x"}}, "bad_filter", "not valid"),
        ({"fields": {"colour": [1.5]}}, "validation", "fields"),
        ({"kinds": ["video"]}, "validation", "kinds"),
        ({"kind": ["image"]}, "validation", "kind"),  # a typo is named, not ignored
        ({"min_size": -1}, "validation", "min_size"),
    ],
)
def test_bad_filters_are_422(client: TestClient, filters: dict[str, Any], error: str, word: str) -> None:
    refused(client.post("/search", json={"text": "red", "filters": filters}), 422, error, word)


def test_a_kind_filter_that_excludes_video_points_is_422_for_moments(client: TestClient) -> None:
    body = {"text": "red", "target": "moments", "filters": {"kinds": ["product"]}}
    refused(client.post("/search", json=body), 422, "bad_filter", "frames")


def test_query_parameter_filters_are_checked_too(client: TestClient) -> None:
    refused(client.get("/similar/x", params={"min_price": 5, "max_price": 1}), 422, "bad_filter", "max_price")
    refused(client.get("/similar/x", params={"kind": "nonsense"}), 422, "validation", "kind")


@pytest.mark.parametrize(
    "body, word",
    [
        ({}, "exactly one way"),
        ({"text": "red", "query": "blue"}, "exactly one way"),
        ({"negative": ["a"]}, "positive"),
        ({"terms": [{"text": "red", "id": "x"}]}, "exactly one"),
        ({"text": "red", "limit": 0}, "limit"),
        ({"text": "red", "target": "films"}, "target"),
        ({"text": ""}, "text"),
    ],
)
def test_malformed_requests_are_422_naming_the_problem(client: TestClient, body: dict[str, Any], word: str) -> None:
    refused(client.post("/search", json=body), 422, "validation", word)


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    refused(response, 422, "validation")


# --- write endpoints -----------------------------------------------------------------------------


def test_write_endpoints_need_the_api_key_when_one_is_set(strict_client: TestClient) -> None:
    refused(strict_client.delete("/media/anything"), 401, "unauthorized", "X-API-Key")
    refused(strict_client.delete("/media/anything", headers={"X-API-Key": "wrong"}), 403, "forbidden")
    refused(strict_client.delete("/media/anything", headers={"X-API-Key": "s3cret"}), 404, "not_found")
    refused(strict_client.post("/ingest", json={"paths": ["/x"]}), 401, "unauthorized")


def test_ingest_without_a_runner_says_so(client: TestClient) -> None:
    refused(client.post("/ingest", json={"paths": ["/nowhere"]}), 503, "unavailable", "ingest")
    refused(client.post("/ingest", json={}), 422, "validation", "nothing to ingest")
