"""A polite, bounded breadth-first web crawl that yields the media it finds.

Bounded: a maximum link depth and page count, pages on the start host only unless told
otherwise (media may live on any host, e.g. a CDN; the fetcher's address guard still applies),
and each page or robots.txt within the fetcher's ``page_deadline`` (a page that drips in slower
is recorded as not crawled, and the crawl goes on).
Polite: robots.txt is read once per host and obeyed for pages and media, and requests to one
host are spaced by ``crawl_delay`` seconds, or the site's own Crawl-delay when longer.
"""

from __future__ import annotations

import time
import urllib.robotparser
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlparse

from ingest.items import Problem
from ingest.sources.folder import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ingest.sources.html import extract_links
from search.errors import FetchError, MediaError
from search.fetch import Fetcher

_ROBOTS_MAX_BYTES = 512 * 1024
_PAGE_MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class CrawlLimits:
    max_depth: int = 2
    max_pages: int = 200
    delay: float = 0.5  # seconds between requests to one host
    same_host: bool = True


@dataclass(frozen=True)
class FoundMedia:
    """A media URL and the page it was found on."""

    url: str
    page: str


class Robots:
    """robots.txt per host, fetched through the guarded fetcher (so it cannot be an SSRF hop)."""

    def __init__(self, fetcher: Fetcher, user_agent: str) -> None:
        self.fetcher = fetcher
        self.user_agent = user_agent
        self._parsers: dict[str, urllib.robotparser.RobotFileParser] = {}

    def allowed(self, url: str) -> bool:
        return self._parser(url).can_fetch(self.user_agent, url)

    def crawl_delay(self, url: str) -> float:
        delay = self._parser(url).crawl_delay(self.user_agent)
        return float(delay) if delay else 0.0

    def _parser(self, url: str) -> urllib.robotparser.RobotFileParser:
        parts = urlparse(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._parsers:
            self._parsers[origin] = self._load(origin)
        return self._parsers[origin]

    def _load(self, origin: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            fetched = self.fetcher.fetch(origin + "/robots.txt", max_bytes=_ROBOTS_MAX_BYTES)
            parser.parse(fetched.text().splitlines())
        except FetchError:
            parser.parse([])  # no robots.txt (404) or unreachable: everything allowed
        except MediaError:
            parser.parse([])  # absurdly large robots.txt: ignored, as Google does past 500 KiB
        return parser


class Crawler:
    """Breadth-first from the start URLs; yields ``FoundMedia`` and ``Problem``s."""

    def __init__(
        self,
        fetcher: Fetcher,
        limits: CrawlLimits,
        user_agent: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.fetcher = fetcher
        self.limits = limits
        self.robots = Robots(fetcher, user_agent)
        self._clock = clock
        self._sleep = sleep
        self._last_request: dict[str, float] = {}

    def crawl(self, start_urls: list[str]) -> Iterator[FoundMedia | Problem]:
        hosts = {urlparse(u).netloc for u in start_urls}
        queue: deque[tuple[str, int]] = deque((url, 0) for url in start_urls)
        queued = set(start_urls)
        media_seen: set[str] = set()
        pages = 0
        while queue and pages < self.limits.max_pages:
            url, depth = queue.popleft()
            if not self.robots.allowed(url):
                continue
            if _looks_like_media(url):
                yield from self._media(url, url, media_seen)
                continue
            pages += 1
            outcome = self._visit(url)
            if isinstance(outcome, Problem):
                yield outcome
                continue
            for found in outcome.media:
                yield from self._media(found, url, media_seen)
            if depth >= self.limits.max_depth or outcome.nofollow:
                continue
            for link in outcome.pages:
                if link not in queued and self._in_scope(link, hosts):
                    queued.add(link)
                    queue.append((link, depth + 1))

    def _visit(self, url: str) -> _Page | Problem:
        self._wait_turn(url)
        try:
            fetched = self.fetcher.fetch(url, max_bytes=_PAGE_MAX_BYTES)
        except (FetchError, MediaError) as exc:
            return Problem(url, f"page not crawled: {exc}")
        if fetched.sniffed.is_image or fetched.sniffed.is_video:
            return _Page(media=[fetched.url], pages=[], nofollow=True)  # a link straight to media
        if fetched.sniffed.media_class != "html":
            return _Page(media=[], pages=[], nofollow=True)  # text, PDF, …: nothing to index or follow
        links = extract_links(fetched.text(), fetched.url)
        return _Page(links.media, links.pages, links.nofollow)

    def _media(self, url: str, page: str, seen: set[str]) -> Iterator[FoundMedia]:
        if url in seen or not self.robots.allowed(url):
            return
        seen.add(url)
        yield FoundMedia(url, page)

    def _in_scope(self, url: str, hosts: set[str]) -> bool:
        return not self.limits.same_host or urlparse(url).netloc in hosts

    def _wait_turn(self, url: str) -> None:
        host = urlparse(url).netloc
        delay = max(self.limits.delay, self.robots.crawl_delay(url))
        last = self._last_request.get(host)
        if last is not None:
            remaining = last + delay - self._clock()
            if remaining > 0:
                self._sleep(remaining)
        self._last_request[host] = self._clock()


@dataclass(frozen=True)
class _Page:
    media: list[str]
    pages: list[str]
    nofollow: bool


def _looks_like_media(url: str) -> bool:
    suffix = PurePosixPath(urlparse(url).path).suffix.lower()
    return suffix in IMAGE_EXTENSIONS or suffix in VIDEO_EXTENSIONS
