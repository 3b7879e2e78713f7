"""Web sources against a real site served by ``http.server`` on 127.0.0.1 (allowlisted).

The site has pages, images (``src``, ``srcset``, ``picture/source``, Open Graph), a video, a
404, a redirect loop, a robots.txt exclusion and a page beyond the depth limit; the server's
request log shows what the crawler did and did not touch.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.jobs import run_ingest
from search.embedder import Embedder, load_embedder
from search.ids import media_id, point_id
from search.services import IngestRequest, Services
from tests._ingest_support import MODEL, SharedModelServices, base_settings, make_image, make_video, serve_folder

INDEX = """<!doctype html><html><head><title>shop</title>
<meta property="og:image" content="/og.jpg"></head><body>
<img src="red.jpg" alt="red">
<img srcset="small.jpg 100w, big.jpg 800w" src="small.jpg">
<picture><source srcset="pic.webp" type="image/webp"><img src="pic-fallback.jpg"></picture>
<video src="media/clip.mp4"></video>
<a href="page2.html">next</a> <a href="missing.html">gone</a> <a href="/loop-a">loop</a>
<a href="/private/secret.html">secret</a> <a href="http://example.invalid/elsewhere.html">away</a>
</body></html>"""
PAGE2 = """<html><body><img src="/green.png"><img src="/private/hidden.jpg">
<a href="page3.html">deeper</a></body></html>"""
PAGE3 = """<html><body><img src="/deep.jpg"></body></html>"""
SITE_MEDIA = ("red.jpg", "big.jpg", "pic.webp", "og.jpg", "green.png", "media/clip.mp4")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text(INDEX)
    (root / "page2.html").write_text(PAGE2)
    (root / "page3.html").write_text(PAGE3)
    (root / "private").mkdir()
    (root / "private" / "secret.html").write_text("<html><body><img src='/secret.jpg'></body></html>")
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    for name, colour in {
        "red.jpg": "red",
        "small.jpg": "red",
        "big.jpg": "blue",
        "pic.webp": "green",
        "pic-fallback.jpg": "green",
        "og.jpg": "yellow",
        "green.png": "green",
        "deep.jpg": "red",
        "secret.jpg": "red",
        "private/hidden.jpg": "blue",
    }.items():
        make_image(root / name, colour)
    make_video(root / "media" / "clip.mp4", ["red", "green"], seconds_each=1.0)
    return root


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return load_embedder(base_settings(tmp_path_factory.mktemp("model")))


@pytest.fixture
def services(tmp_path: Path, embedder: Embedder) -> Iterator[Services]:
    settings = base_settings(
        tmp_path / "data", ingest={"allow_hosts": ["127.0.0.1"], "crawl_delay": 0, "crawl_max_depth": 1, "http_retries": 1}
    )
    svc = SharedModelServices(settings, embedder)
    yield svc
    svc.close()


def remote_ids(base: str, names: tuple[str, ...]) -> set[str]:
    ids = set()
    for name in names:
        mid = media_id(f"{base}/{name}")
        if name.endswith(".mp4"):
            ids |= {point_id(MODEL, mid, "frame", t=0.0), point_id(MODEL, mid, "frame", t=1.0)}
            ids.add(point_id(MODEL, mid, "segment", t=0.0, t_end=2.0))
        else:
            ids.add(point_id(MODEL, mid, "image"))
    return ids


def test_crawl_indexes_what_the_pages_show_within_robots_and_depth(services: Services, site: Path) -> None:
    redirects = {"/loop-a": "/loop-b", "/loop-b": "/loop-a"}
    with serve_folder(site, redirects=redirects) as (base, requested):
        job = run_ingest(services, IngestRequest(crawl=[f"{base}/index.html"]))
        again = run_ingest(services, IngestRequest(crawl=[f"{base}/index.html"]))

    points = {hit.id for hit in services.store.scroll(limit=1000).hits}
    assert points == remote_ids(base, SITE_MEDIA)
    failures = {f.uri: f.reason for f in services.catalog.job_failures(job.id)}
    assert set(failures) == {f"{base}/missing.html", f"{base}/loop-a"}
    assert "HTTP 404" in failures[f"{base}/missing.html"]
    assert "redirect loop" in failures[f"{base}/loop-a"]
    assert (job.indexed, job.failed) == (len(SITE_MEDIA), 2)

    assert "/robots.txt" in requested
    assert not [p for p in requested if p.startswith("/private/")], "robots.txt excludes /private/"
    assert "/page2.html" in requested and "/page3.html" not in requested, "depth 1 stops after page2"
    assert not {"/small.jpg", "/pic-fallback.jpg", "/deep.jpg"} & set(requested)

    assert (again.indexed, again.skipped) == (0, len(SITE_MEDIA)), "unchanged downloads are skipped by content hash"
    clip = services.catalog.get_media_by_uri(f"{base}/media/clip.mp4")
    assert clip is not None and clip.kind == "video" and clip.status == "indexed"
    red = services.store.retrieve([point_id(MODEL, media_id(f"{base}/red.jpg"), "image")])[0].payload
    assert red["uri"] == f"{base}/red.jpg" and "path" not in red and red["taken_at"] is not None


def test_url_lists_and_single_urls_fetch_with_clear_failures(services: Services, site: Path, tmp_path: Path) -> None:
    with serve_folder(site, statuses={"/flaky.jpg": [503]}) as (base, requested):
        shutil.copy(site / "og.jpg", site / "flaky.jpg")
        urls = tmp_path / "urls.txt"
        urls.write_text(
            f"# photos\n{base}/red.jpg\n\n{base}/nope.jpg\n{base}/index.html\nftp://old.example/x.jpg\n{base}/flaky.jpg\n"
        )
        job = run_ingest(services, IngestRequest(url_lists=[str(urls)], paths=[f"{base}/green.png"]))
    failures = {f.uri: f.reason for f in services.catalog.job_failures(job.id)}
    assert (job.indexed, job.failed) == (3, 3)
    assert "HTTP 404" in failures[f"{base}/nope.jpg"]
    assert "not an image or a video: the content is an HTML page" in failures[f"{base}/index.html"]
    assert any("not an http(s) URL" in reason for reason in failures.values())
    assert requested.count("/flaky.jpg") == 2, "a 503 is retried"
    assert {hit.id for hit in services.store.scroll(limit=100).hits} == remote_ids(base, ("red.jpg", "green.png", "flaky.jpg"))


def test_loopback_is_refused_unless_allowlisted(embedder: Embedder, site: Path, tmp_path: Path) -> None:
    services = SharedModelServices(base_settings(tmp_path / "data", ingest={"crawl_delay": 0}), embedder)
    try:
        with serve_folder(site) as (base, requested):
            job = run_ingest(services, IngestRequest(paths=[f"{base}/red.jpg"], crawl=[f"{base}/index.html"]))
        reasons = [f.reason for f in services.catalog.job_failures(job.id)]
        assert job.failed == 2 and all("refusing to fetch from 127.0.0.1" in r and "loopback" in r for r in reasons)
        assert requested == [], "no connection may be made to a refused address"
        assert services.store.count() == 0
    finally:
        services.close()


def test_links_and_media_are_extracted_as_browsers_see_them() -> None:
    from ingest.sources.html import extract_links

    html = """<html><head><base href="https://shop.example/c/"><meta name="twitter:image" content="t.jpg"></head>
    <img data-src="lazy.jpg"><img src="a.jpg" srcset="a-1x.jpg 1x, a-2x.jpg 2x">
    <picture><source srcset="p.avif 400w, p-big.avif 1200w"><img src="p.jpg"></picture>
    <video><source src="v.webm"></video><a href="/next#top">n</a><a rel="nofollow" href="skip.html">s</a>
    <a href="mailto:x@y">m</a></html>"""
    links = extract_links(html, "https://shop.example/")
    base = "https://shop.example/c/"
    assert links.media == [f"{base}t.jpg", f"{base}lazy.jpg", f"{base}a-2x.jpg", f"{base}p-big.avif", f"{base}v.webm"]
    assert links.pages == ["https://shop.example/next"] and not links.nofollow


def test_requests_to_one_host_are_spaced_by_the_crawl_delay(site: Path) -> None:
    from ingest.sources.crawl import Crawler, CrawlLimits
    from search.fetch import Fetcher
    from search.settings import IngestSettings

    settings = IngestSettings(allow_hosts=["127.0.0.1"], http_retries=0)
    with serve_folder(site) as (base, requested), Fetcher(settings) as fetcher:
        crawler = Crawler(fetcher, CrawlLimits(max_depth=1, max_pages=3, delay=0.25), settings.user_agent)
        started = time.monotonic()
        found = list(crawler.crawl([f"{base}/index.html"]))
        elapsed = time.monotonic() - started
    pages = [p for p in requested if p.endswith(".html")]
    assert len(pages) == 3, "max_pages bounds the pages fetched"
    assert elapsed >= 2 * 0.25, "three pages on one host take at least two delays"
    assert any(getattr(f, "url", "").endswith("/red.jpg") for f in found)
