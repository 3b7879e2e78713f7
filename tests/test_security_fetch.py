"""Remote fetches as an attacker would use them: slow-drip servers, private addresses, exact allow-lists.

Everything runs against real servers on loopback: a ``http.server`` thread that sends one byte
every 0.2 s, the site server of the ingest tests, and the API itself under uvicorn in a thread.
Each test is bounded by short deadlines (seconds) and client timeouts, so a regression fails
fast instead of hanging.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from search.errors import BlockedAddress, FetchError
from search.fetch import AddressPolicy, Fetcher, is_forbidden
from search.settings import BUNDLED_MODEL, IngestSettings, Settings, load_settings
from tests import ui_live
from tests._ingest_support import make_image, serve_folder

DRIP_INTERVAL = 0.2  # seconds between two bytes
DRIP_BYTES = 60  # so a fetch that never gives up still ends, after 12 s
PNG_HEAD = b"\x89PNG\r\n\x1a\n"
QUICK = 2.0  # seconds within which an endpoint counts as answering while slow fetches are in flight


# -- a slow-drip server ---------------------------------------------------------------------------


class _DripHandler(BaseHTTPRequestHandler):
    """``/body``: headers at once, then a PNG-looking body one byte at a time.
    ``/headers``: the status line and headers themselves one byte at a time.
    ``/stall``: headers, then nothing until the server stops."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server: DripServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.hits += 1
        if self.path.startswith("/headers"):
            self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 40\r\n\r\n" + b"x" * 40)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(DRIP_BYTES))
        self.end_headers()
        self.wfile.flush()
        if self.path.startswith("/stall"):
            self.close_connection = True
            server.stop.wait(DRIP_BYTES * DRIP_INTERVAL)
            return
        self._drip((PNG_HEAD + b"x" * DRIP_BYTES)[:DRIP_BYTES])

    def _drip(self, payload: bytes) -> None:
        server: DripServer = self.server  # type: ignore[assignment]
        self.close_connection = True  # a client still waiting for the rest gets EOF, not silence
        for value in payload:
            if server.stop.wait(DRIP_INTERVAL):
                return
            try:
                self.wfile.write(bytes([value]))
                self.wfile.flush()
            except OSError:
                return  # the client gave up: what a deadline should make it do


class DripServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # 45 connections arrive at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _DripHandler)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.hits = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for_hits(self, count: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while self.hits < count and time.monotonic() < end:
            time.sleep(0.05)
        assert self.hits >= count, f"only {self.hits} of {count} fetches reached the slow server"


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


# -- the fetcher's total deadline -------------------------------------------------------------------


def _ingest(**overrides: object) -> IngestSettings:
    values: dict[str, object] = {"allow_hosts": ["127.0.0.1"], "http_timeout": 5, "http_retries": 2}
    values.update(overrides)
    return IngestSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/body", "/headers"])
def test_a_slow_drip_page_ends_at_the_total_deadline(drip: DripServer, path: str) -> None:
    started = time.monotonic()
    with Fetcher(_ingest(page_deadline=1.5)) as fetcher, pytest.raises(FetchError, match=r"within 1\.5 s") as caught:
        fetcher.fetch(drip.url(path))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 1.0, f"took {elapsed:.1f} s"
    assert not caught.value.transient, "a deadline is not retried: the same server would be as slow again"


def test_a_slow_drip_download_ends_at_its_deadline_and_leaves_no_partial_file(drip: DripServer, tmp_path: Path) -> None:
    started = time.monotonic()
    with Fetcher(_ingest(download_deadline=1.5)) as fetcher, pytest.raises(FetchError, match=r"within 1\.5 s"):
        fetcher.download(drip.url("/body"), tmp_path / "dl" / "media.bin")
    assert time.monotonic() - started < 1.5 + 1.0
    assert list((tmp_path / "dl").iterdir()) == []


def test_retries_do_not_extend_the_deadline(drip: DripServer) -> None:
    """Each read times out after 0.5 s and is retried, but all attempts share one deadline."""
    started = time.monotonic()
    settings = _ingest(http_timeout=0.5, http_retries=5, page_deadline=2.0)
    with Fetcher(settings) as fetcher, pytest.raises(FetchError, match="within 2 s"):
        fetcher.fetch(drip.url("/stall"))
    assert time.monotonic() - started < 2.0 + 1.0


def test_fetch_slots_cap_in_flight_fetches_in_all_and_per_key() -> None:
    from search.fetch import FetchSlots

    slots = FetchSlots(total=3, per_key=2)
    assert slots.acquire("a") and slots.acquire("a")
    assert not slots.acquire("a"), "a third fetch for one key is over the per-key cap"
    assert slots.acquire("b")
    assert not slots.acquire("c"), "a fourth fetch is over the total cap"
    started = time.monotonic()
    assert not slots.acquire("c", timeout=0.3), "waiting is bounded"
    assert 0.25 < time.monotonic() - started < 2.0
    threading.Timer(0.2, slots.release, args=("a",)).start()
    assert slots.acquire("c", timeout=5.0), "a freed slot wakes a waiter"
    assert slots.in_flight == 3


def test_ingest_downloads_wait_for_a_slot_with_a_bounded_timeout(drip: DripServer, tmp_path: Path) -> None:
    settings = _ingest(max_concurrent_fetches=1, fetch_slot_wait=0.5, download_deadline=3.0)
    with Fetcher(settings) as fetcher, ThreadPoolExecutor(2) as pool:
        first = pool.submit(fetcher.download, drip.url("/body"), tmp_path / "a.bin")
        drip.wait_for_hits(1, timeout=5)
        started = time.monotonic()
        with pytest.raises(FetchError, match="slot") as waited:
            fetcher.download(drip.url("/body?2"), tmp_path / "b.bin")
        assert 0.4 < time.monotonic() - started < 2.0 and waited.value.transient
        with pytest.raises(FetchError, match="within 3 s"):
            first.result(timeout=10)
    assert drip.hits == 1, "the second download never connected"


# -- the address policy -------------------------------------------------------------------------------

FORBIDDEN = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.0.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "198.18.0.1",  # benchmarking
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "224.0.0.1",  # multicast
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",  # deprecated site-local
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "::a00:1",  # IPv4-compatible 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",  # documentation
    "3fff::1",  # documentation (RFC 9637)
    "100::1",  # discard-only
    "5f00::1",  # segment routing
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "2001:4860:4860::8888",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_non_public_addresses_are_forbidden_whatever_their_form(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed_including_embedded_public_ipv4(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("entry", "host", "port", "allowed"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080, True),
        ("127.0.0.1:8080", "127.0.0.1", 8081, False),
        ("127.0.0.1", "127.0.0.1", 9, True),  # a plain host allows every port (the loose form)
        ("localhost:8080", "localhost", 8080, True),
        ("localhost:8080", "localhost", 22, False),
        ("localhost:8080", "127.0.0.1", 8080, False),  # a name allows the name, not its address
        ("[::1]:8080", "::1", 8080, True),
        ("[::1]:8080", "::1", 8081, False),
        ("::1", "::1", 8081, True),
        ("127.0.0.0/8", "127.0.0.1", 5432, True),
        ("10.0.0.0/8", "127.0.0.1", 80, False),
    ],
)
def test_allow_list_entries_name_a_host_or_exactly_a_host_and_port(entry: str, host: str, port: int, allowed: bool) -> None:
    policy = AddressPolicy([entry])
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    if allowed:
        assert policy.resolve(host, port)
    else:
        with pytest.raises(BlockedAddress, match="MMSEARCH_INGEST__ALLOW_HOSTS"):
            policy.resolve(host, port)


@pytest.mark.parametrize("entry", ["localhost:99999", "localhost:http", "127.0.0.1:", "[::1]x", ""])
def test_a_malformed_allow_list_entry_is_a_settings_error(entry: str) -> None:
    with pytest.raises(ValidationError, match="allow_hosts"):
        IngestSettings(allow_hosts=[entry])


def test_a_loopback_url_is_refused_unless_exactly_its_host_and_port_is_allowed(tmp_path: Path) -> None:
    make_image(tmp_path / "photo.png", "red")
    with serve_folder(tmp_path) as (base, requested), serve_folder(tmp_path) as (other, _):
        port = int(base.rsplit(":", 1)[1])
        other_port = int(other.rsplit(":", 1)[1])
        for entries in ([], [f"127.0.0.1:{other_port}"], [f"localhost:{port}"]):
            with (
                Fetcher(IngestSettings(allow_hosts=entries, http_retries=0)) as fetcher,
                pytest.raises(BlockedAddress, match="loopback"),
            ):
                fetcher.fetch(f"{base}/photo.png")
        assert requested == [], "a refused fetch never connects"
        with Fetcher(IngestSettings(allow_hosts=[f"127.0.0.1:{port}"], http_retries=0)) as fetcher:
            assert fetcher.fetch(f"{base}/photo.png").sniffed.is_image
            with pytest.raises(BlockedAddress, match="loopback"):
                fetcher.fetch(f"{other}/photo.png")


def test_a_redirect_to_a_port_not_allowed_is_refused(tmp_path: Path) -> None:
    make_image(tmp_path / "photo.png", "red")
    with serve_folder(tmp_path) as (inner, inner_requests):
        with serve_folder(tmp_path, redirects={"/go": f"{inner}/photo.png"}) as (outer, _):
            port = int(outer.rsplit(":", 1)[1])
            allowed = IngestSettings(allow_hosts=[f"127.0.0.1:{port}"], http_retries=0)
            with Fetcher(allowed) as fetcher, pytest.raises(BlockedAddress, match="loopback"):
                fetcher.fetch(f"{outer}/go")
        assert inner_requests == []


# -- the API under slow-drip queries ---------------------------------------------------------------------


@dataclass
class LiveApi:
    url: str

    def client(self, local_address: str = "127.0.0.1", timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, transport=httpx.HTTPTransport(local_address=local_address))


@pytest.fixture(scope="module")
def api_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One warmed-up Services (bundled model, empty embedded index) shared by the live APIs."""
    from search.services import Services

    settings = _api_settings(tmp_path_factory.mktemp("api-data"), allow="127.0.0.1")
    services = Services(settings)
    _ = services.embedder, services.store, services.catalog
    yield services
    services.close()


def _api_settings(data_dir: Path, allow: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "model": BUNDLED_MODEL,
        "device": "cpu",
        "store_url": None,
        "catalog_url": None,
        "broker_url": None,
        "embedder": {"threads": 1},
        "ingest": {"allow_hosts": [allow], "http_timeout": 10},
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def live_api(request: pytest.FixtureRequest, api_services: object) -> Iterator[LiveApi]:
    """The API under uvicorn on 127.0.0.1 in a thread, with the settings the test asks for."""
    from search.api import create_app

    services = api_services
    settings = _api_settings(services.settings.data_dir, allow="127.0.0.1", **request.param)  # type: ignore[attr-defined]
    app = create_app(settings, services=services)  # type: ignore[arg-type]
    with ui_live.serving_in_thread(app, start_timeout=15) as url:
        yield LiveApi(url)


def _timed(client: httpx.Client, method: str, path: str, **kwargs: object) -> tuple[int, float, httpx.Response]:
    started = time.monotonic()
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    return response.status_code, time.monotonic() - started, response


def _slow_query(api: LiveApi, url: str, local_address: str = "127.0.0.1", timeout: float = 8.0) -> tuple[int, float, dict, dict]:
    with api.client(local_address, timeout=timeout) as client:
        status, elapsed, response = _timed(client, "POST", "/search", json={"url": url})
        return status, elapsed, response.json(), dict(response.headers)


CAPPED = {"search": {"url_fetch_deadline": 4.0}, "api": {"max_url_fetches": 3, "max_url_fetches_per_client": 2}}
UNCAPPED = {"search": {"url_fetch_deadline": 6.0}, "api": {"max_url_fetches": 100, "max_url_fetches_per_client": 100}}


@pytest.mark.parametrize("live_api", [CAPPED], indirect=True)
def test_slow_url_queries_end_at_the_deadline_and_those_over_the_caps_get_429(live_api: LiveApi, drip: DripServer) -> None:
    with live_api.client() as client:
        assert _timed(client, "POST", "/search", json={"text": "red"})[0] == 200  # warm the text path
    jobs = [("127.0.0.1", n) for n in range(5)] + [("127.0.0.2", n) for n in range(3)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [(addr, pool.submit(_slow_query, live_api, drip.url(f"/body?{addr}-{n}"), addr)) for addr, n in jobs]
        drip.wait_for_hits(3, timeout=5)
        with live_api.client() as client:
            for method, path, body in [("GET", "/healthz", None), ("GET", "/stats", None), ("POST", "/search", {"text": "red"})]:
                status, elapsed, _ = _timed(client, method, path, json=body)
                assert status == 200 and elapsed < QUICK, f"{method} {path}: {status} after {elapsed:.1f} s"
        results = [(addr, *future.result(timeout=15)) for addr, future in futures]
    admitted = [r for r in results if r[1] != 429]
    refused = [r for r in results if r[1] == 429]
    assert len(admitted) == 3, [(a, s, b.get("error")) for a, s, _, b, _ in results]
    for addr in ("127.0.0.1", "127.0.0.2"):
        assert sum(1 for r in admitted if r[0] == addr) <= 2, "per-client cap"
    for _, status, elapsed, body, _ in admitted:
        assert status == 422 and body["error"] == "fetch_timeout", body
        assert "within 4 s" in body["detail"] and elapsed < 4.0 + 2.0, (elapsed, body)
    for _, _, elapsed, body, headers in refused:
        assert body["error"] == "too_many_requests" and "image URL" in body["detail"], body
        assert int(headers["retry-after"]) >= 1 and elapsed < QUICK
    assert drip.hits == 3, "refused queries never reached the remote server"


@pytest.mark.parametrize("live_api", [UNCAPPED], indirect=True)
def test_health_and_stats_answer_while_every_search_thread_is_blocked(live_api: LiveApi, drip: DripServer) -> None:
    """40 slow queries hold every thread of the sync handlers' pool (anyio's default 40); the ops
    endpoints do not need one."""
    n = 40
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(_slow_query, live_api, drip.url(f"/body?{i}"), "127.0.0.1", 16.0) for i in range(n)]
        drip.wait_for_hits(n, timeout=15)
        with live_api.client(timeout=QUICK + 1) as client:
            for path in ("/healthz", "/readyz", "/stats", "/metrics"):
                status, elapsed, _ = _timed(client, "GET", path)
                assert status == 200 and elapsed < QUICK, f"{path}: {status} after {elapsed:.1f} s"
        results = [future.result(timeout=20) for future in futures]
    assert all(status == 422 and body["error"] == "fetch_timeout" for status, _, body, _ in results), results[:3]
    # each query's own time is bounded by the deadline (pinned in the capped test); seen from the
    # client, one that found every thread taken also waits for one other query's deadline
    assert max(elapsed for _, elapsed, _, _ in results) < 2 * 6.0 + 4.0
