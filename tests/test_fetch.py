"""The guarded HTTP client against a real server on 127.0.0.1.

Backoff waits are skipped by passing ``sleep`` a no-op: the retries, statuses, redirects and
bytes are all real; only the waiting is not.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.errors import BlockedAddress, FetchError, TooLarge
from search.fetch import AddressPolicy, Fetcher, is_forbidden
from search.settings import IngestSettings
from tests._ingest_support import make_image, serve_folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fetch-site")
    make_image(root / "photo.png", "red")
    (root / "photo.txt").write_bytes((root / "photo.png").read_bytes())  # a PNG with a text name
    (root / "page.html").write_text("<html><body>hi</body></html>")
    (root / "big.bin").write_bytes(b"x" * 50_000)
    return root


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    settings = IngestSettings(allow_hosts=["127.0.0.1"], http_retries=2, max_redirects=3, http_timeout=5)
    waits: list[float] = []
    with Fetcher(settings, sleep=waits.append) as f:
        f.waits = waits  # type: ignore[attr-defined]
        yield f


def test_refuses_non_public_addresses_unless_allowlisted(site: Path) -> None:
    with serve_folder(site) as (base, requested), Fetcher(IngestSettings(http_retries=0)) as guarded:
        with pytest.raises(BlockedAddress, match="loopback"):
            guarded.fetch(f"{base}/photo.png")
        assert requested == []
    for address in ("10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "fc00::1", "0.0.0.0"):
        assert is_forbidden(ipaddress.ip_address(address)), address
    assert not is_forbidden(ipaddress.ip_address("8.8.8.8"))
    policy = AddressPolicy(["10.0.0.0/8", "intranet.local"])
    assert policy.resolve("10.9.9.9", 80) == ["10.9.9.9"]
    with pytest.raises(BlockedAddress, match="private"):
        policy.resolve("192.168.1.1", 80)


def test_content_type_comes_from_the_bytes(fetcher: Fetcher, site: Path) -> None:
    with serve_folder(site) as (base, _):
        png = fetcher.fetch(f"{base}/photo.txt")
        page = fetcher.fetch(f"{base}/page.html")
    assert png.sniffed.mime == "image/png" and png.declared_type.startswith("text/plain")
    assert page.sniffed.media_class == "html"


def test_transient_statuses_are_retried_and_permanent_ones_are_not(fetcher: Fetcher, site: Path) -> None:
    with serve_folder(site, statuses={"/photo.png": [503, 429]}) as (base, requested):
        assert fetcher.fetch(f"{base}/photo.png").sniffed.is_image
        assert requested.count("/photo.png") == 3 and len(fetcher.waits) == 2  # type: ignore[attr-defined]
        with pytest.raises(FetchError, match="HTTP 404") as missing:
            fetcher.fetch(f"{base}/absent.png")
        assert not missing.value.transient and requested.count("/absent.png") == 1
    with serve_folder(site, statuses={"/photo.png": [500, 500, 500, 500]}) as (base, requested):
        with pytest.raises(FetchError, match="gave up after 3 attempts") as broken:
            fetcher.fetch(f"{base}/photo.png")
        assert broken.value.transient


def test_redirects_are_followed_checked_and_bounded(fetcher: Fetcher, site: Path) -> None:
    hops = {
        "/a": "/b",
        "/b": "/photo.png",
        "/loop1": "/loop2",
        "/loop2": "/loop1",
        "/r1": "/r2",
        "/r2": "/r3",
        "/r3": "/r4",
        "/r4": "/r5",
        "/r5": "/photo.png",
    }
    with serve_folder(site, redirects=hops) as (base, _):
        followed = fetcher.fetch(f"{base}/a")
        assert followed.url == f"{base}/photo.png" and followed.redirects == (f"{base}/a", f"{base}/b")
        with pytest.raises(FetchError, match="redirect loop"):
            fetcher.fetch(f"{base}/loop1")
        with pytest.raises(FetchError, match="too many redirects"):
            fetcher.fetch(f"{base}/r1")


def test_size_limit_and_streamed_download(fetcher: Fetcher, site: Path, tmp_path: Path) -> None:
    with serve_folder(site) as (base, _):
        with pytest.raises(TooLarge, match="over the download limit"):
            fetcher.fetch(f"{base}/big.bin", max_bytes=10_000)
        saved = fetcher.download(f"{base}/photo.png", tmp_path / "dl" / "photo.bin")
    data = (site / "photo.png").read_bytes()
    assert saved.path.read_bytes() == data and saved.size == len(data)
    assert saved.sha256 == hashlib.sha256(data).hexdigest() and saved.sniffed.mime == "image/png"
    assert [p.name for p in saved.path.parent.iterdir()] == ["photo.bin"], "no partial file left behind"


def test_bad_urls_are_clear_errors(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="only http and https"):
        fetcher.fetch("file:///etc/passwd")
    with pytest.raises(FetchError, match="cannot resolve host"):
        fetcher.fetch("http://no-such-host.invalid/x.jpg")
