"""Who can reach what: the server is not open on the network by accident, and reads can be private.

Found in issue 9: ``mmsearch serve --host 0.0.0.0`` served everything, to anyone, with no key;
a filter value past the 64-bit range answered 500. Now a non-loopback address needs an API key
(or an explicit ``--insecure``, which prints a loud warning), ``MMSEARCH_API__PROTECT_READS``
puts every endpoint but ``/healthz`` and ``/readyz`` behind the key, the UI client sends its key
(``MMSEARCH_API_KEY``), and out-of-range numbers in filters are 422s naming the field.

The refused servers are real ``mmsearch serve`` subprocesses asked to bind a non-loopback
address of this machine; the tests that let one start talk to it over 127.0.0.1 only.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from search.api import create_app
from search.services import Services
from search.settings import describe_settings_error
from tests import ui_live
from tests._ingest_support import base_settings, make_image
from ui.client import ApiClient, ApiError, SearchOptions

KEY = "correct horse battery staple"
INT64_MAX = 2**63 - 1

# every endpoint that reads data; (method, path, json body)
READS: list[tuple[str, str, Any]] = [
    ("POST", "/search", {"text": "red"}),
    ("GET", "/similar/some-id", None),
    ("GET", "/media/some-id", None),
    ("GET", "/media/some-id/thumbnail", None),
    ("GET", "/media/some-id/file", None),
    ("GET", "/points/some-id/thumbnail", None),
    ("GET", "/jobs", None),
    ("GET", "/jobs/some-id", None),
    ("GET", "/stats", None),
    ("GET", "/metrics", None),
]


def network_addresses() -> list[str]:
    """0.0.0.0 and this machine's first non-loopback IPv4 address, when it has one."""
    found = ["0.0.0.0"]
    try:
        output = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        output = []
    found += [a for a in output if "." in a and not a.startswith("127.")][:1]
    return found


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    folder = tmp_path_factory.mktemp("exposure")
    make_image(folder / "photos" / "red.png", "red")
    settings = base_settings(folder / "data")
    services = Services(settings)
    yield services
    services.close()


def client_for(services: Services, **api: Any) -> TestClient:
    settings = base_settings(services.settings.data_dir, api=api)
    return TestClient(create_app(settings, services=services))


@pytest.fixture(scope="module")
def private(services: Services) -> Iterator[TestClient]:
    with client_for(services, api_key=KEY, protect_reads=True) as client:
        yield client


# --- serve on the network ------------------------------------------------------------------------


@pytest.mark.parametrize("address", network_addresses())
def test_serving_on_a_network_address_without_a_key_is_refused(tmp_path: Path, address: str) -> None:
    port = ui_live.free_port()
    done = subprocess.run(
        ui_live.mmsearch(tmp_path / "data", "serve", "--host", address, "--port", str(port)),
        env=ui_live.child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "API key" in done.stderr and "--insecure" in done.stderr and address in done.stderr
    assert "API  http" not in done.stdout, "nothing was served"


@pytest.mark.slow
def test_insecure_serves_on_the_network_with_a_loud_warning(tmp_path: Path) -> None:
    port, log = ui_live.free_port(), tmp_path / "serve.log"
    process = ui_live.start(
        ui_live.mmsearch(tmp_path / "data", "serve", "--host", "0.0.0.0", "--port", str(port), "--insecure"),
        ui_live.child_env(),
        log,
    )
    try:
        ui_live.wait_ready(process, f"http://127.0.0.1:{port}/readyz", 120.0, log)
        assert httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).status_code == 200
    finally:
        ui_live.stop(process)
    assert "WARNING" in log.read_text() and "without an API key" in log.read_text()


@pytest.mark.slow
def test_with_a_key_the_network_address_is_served_and_reads_can_be_private(tmp_path: Path) -> None:
    port, log = ui_live.free_port(), tmp_path / "serve.log"
    env = ui_live.child_env(MMSEARCH_API__API_KEY=KEY, MMSEARCH_API__PROTECT_READS="true")
    process = ui_live.start(ui_live.mmsearch(tmp_path / "data", "serve", "--host", "0.0.0.0", "--port", str(port)), env, log)
    try:
        ui_live.wait_ready(process, f"http://127.0.0.1:{port}/readyz", 120.0, log)
        url = f"http://127.0.0.1:{port}/search"
        assert httpx.post(url, json={"text": "red"}, timeout=30).status_code == 401
        assert httpx.post(url, json={"text": "red"}, headers={"X-API-Key": KEY}, timeout=30).status_code == 200
    finally:
        ui_live.stop(process)
    assert "WARNING" not in log.read_text()


# --- protected reads -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), READS)
def test_protected_reads_need_the_key(private: TestClient, method: str, path: str, body: Any) -> None:
    missing = private.request(method, path, json=body)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized", missing.text
    wrong = private.request(method, path, json=body, headers={"X-API-Key": "wrong"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    right = private.request(method, path, json=body, headers={"X-API-Key": KEY})
    assert right.status_code in (200, 404), right.text


def test_an_uploaded_image_search_is_a_protected_read_too(private: TestClient, services: Services) -> None:
    image = (services.settings.data_dir.parent / "photos" / "red.png").read_bytes()
    files = {"file": ("red.png", image, "image/png")}
    assert private.post("/search/image", files=files).status_code == 401
    assert private.post("/search/image", files=files, headers={"X-API-Key": KEY}).status_code == 200


def test_health_and_readiness_stay_open(private: TestClient) -> None:
    assert private.get("/healthz").status_code == 200
    assert private.get("/readyz").status_code == 200


def test_reads_are_open_when_only_writes_are_protected(services: Services) -> None:
    with client_for(services, api_key=KEY) as client:
        assert client.get("/stats").status_code == 200
        assert client.post("/search", json={"text": "red"}).status_code == 200
        assert client.delete("/media/some-id").status_code == 401


def test_protecting_reads_without_a_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        base_settings(tmp_path, api={"protect_reads": True})
    assert "MMSEARCH_API__PROTECT_READS" in describe_settings_error(caught.value)
    assert "MMSEARCH_API__API_KEY" in describe_settings_error(caught.value)


@pytest.fixture()
def live_private(services: Services) -> Iterator[str]:
    """The private app served by uvicorn on 127.0.0.1, for the UI's real HTTP client."""
    settings = base_settings(services.settings.data_dir, api={"api_key": KEY, "protect_reads": True})
    with ui_live.serving_in_thread(create_app(settings, services=services)) as url:
        yield url


def test_the_ui_client_sends_its_key_for_reads(live_private: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMSEARCH_API_KEY", raising=False)
    with pytest.raises(ApiError) as caught:
        ApiClient(live_private).stats()
    assert caught.value.status == 401
    monkeypatch.setenv("MMSEARCH_API_KEY", KEY)
    client = ApiClient(live_private)
    assert client.stats().model == "mmsearch-synthetic"
    assert client.search("red", SearchOptions()).hits == ()
    assert client.jobs() == []


# --- numbers out of range ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_client(services: Services) -> Iterator[TestClient]:
    with client_for(services) as client:
        yield client


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"fields": {"rating": INT64_MAX + 1}}, "filters.fields.rating"),
        ({"fields": {"rating": -(2**63) - 1}}, "filters.fields.rating"),
        ({"fields": {"rating": [1, 2**64]}}, "filters.fields.rating"),
        ({"fields": {"rating": {"gte": "Infinity"}}}, "filters.fields.rating"),
        ({"fields": {"rating": {"lte": "NaN"}}}, "filters.fields.rating"),
        ({"min_size": 2**64}, "filters.min_size"),
        ({"min_price": "-inf"}, "filters.min_price"),
        ({"taken_after": "nan"}, "filters.taken_after"),
    ],
)
def test_numbers_outside_the_stores_range_are_422_naming_the_field(open_client: TestClient, filters: dict, field: str) -> None:
    response = open_client.post("/search", json={"text": "red", "filters": filters})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(field), response.json()["detail"]


def test_the_largest_64_bit_filter_values_are_still_accepted(open_client: TestClient) -> None:
    for value in (INT64_MAX, -(2**63), [INT64_MAX, 0]):
        response = open_client.post("/search", json={"text": "red", "filters": {"fields": {"rating": value}}})
        assert response.status_code == 200, response.text
