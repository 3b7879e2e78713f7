"""Find media and links in an HTML page, the way browsers and link previews see them.

Covers ``img`` (``src``, ``srcset`` — the widest candidate wins over ``src``, one picture
being one item — and common lazy-loading ``data-src``), ``picture``/``source`` (the sources
win over the ``img`` fallback), ``video``/``source``, Open Graph ``og:image``/``og:video``
and ``a href`` links to follow. Uses the standard library's tolerant parser: real pages are
rarely valid HTML, and a broken page should yield what it can rather than fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlparse

_OG_MEDIA = {
    "og:image",
    "og:image:url",
    "og:image:secure_url",
    "og:video",
    "og:video:url",
    "og:video:secure_url",
    "twitter:image",
    "twitter:image:src",
}
_LAZY_SRC = ("data-src", "data-original", "data-lazy-src")


@dataclass
class PageLinks:
    """Absolute http(s) URLs found on one page, fragments removed, in page order."""

    media: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    nofollow: bool = False  # <meta name="robots" content="nofollow">


def extract_links(html: str, base_url: str) -> PageLinks:
    parser = _LinkParser(base_url)
    parser.feed(html)
    parser.close()
    return PageLinks(_unique(parser.media), _unique(parser.pages), parser.nofollow)


def widest_srcset_candidate(srcset: str) -> str | None:
    """The URL with the largest ``w`` (or ``x``) descriptor; the first one when none is given."""
    best, best_score = None, -1.0
    for candidate in srcset.split(","):
        parts = candidate.strip().split()
        if not parts:
            continue
        score = _descriptor_score(parts[1] if len(parts) > 1 else "")
        if score > best_score:
            best, best_score = parts[0], score
    return best


def _descriptor_score(descriptor: str) -> float:
    try:
        if descriptor.endswith(("w", "x")):
            return float(descriptor[:-1])
    except ValueError:
        pass
    return 0.0


class _LinkParser(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base_url
        self.media: list[str] = []
        self.pages: list[str] = []
        self.nofollow = False
        self._picture_sources: int | None = None  # inside <picture>: how many sources it had

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "").strip() for name, value in attrs}
        if tag == "base" and values.get("href"):
            self.base = urljoin(self.base, values["href"])
        elif tag == "picture":
            self._picture_sources = 0
        elif tag == "img":
            self._img(values)
        elif tag == "source":
            self._add_media(values.get("src", ""))
            self._add_srcset(values.get("srcset", ""))
            if self._picture_sources is not None and values.get("srcset"):
                self._picture_sources += 1
        elif tag == "video":
            self._add_media(values.get("src", ""))
        elif tag == "meta":
            self._meta(values)
        elif tag == "a" and "nofollow" not in values.get("rel", "").lower():
            self._add(self.pages, values.get("href", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "picture":
            self._picture_sources = None

    def _img(self, values: dict[str, str]) -> None:
        """One picture, one item: the widest ``srcset`` candidate stands for the ``src``
        fallback, and inside ``<picture>`` the sources stand for the ``img``."""
        if self._picture_sources:
            return
        if values.get("srcset"):
            self._add_srcset(values["srcset"])
            return
        self._add_media(values.get("src") or next((values[k] for k in _LAZY_SRC if values.get(k)), ""))

    def _meta(self, values: dict[str, str]) -> None:
        key = (values.get("property") or values.get("name") or "").lower()
        if key in _OG_MEDIA:
            self._add_media(values.get("content", ""))
        elif key == "robots" and "nofollow" in values.get("content", "").lower():
            self.nofollow = True

    def _add_srcset(self, srcset: str) -> None:
        if srcset:
            self._add_media(widest_srcset_candidate(srcset) or "")

    def _add_media(self, url: str) -> None:
        self._add(self.media, url)

    def _add(self, bucket: list[str], url: str) -> None:
        if not url or url.startswith(("data:", "javascript:", "mailto:", "tel:", "#")):
            return
        absolute, _ = urldefrag(urljoin(self.base, url))
        if urlparse(absolute).scheme in ("http", "https"):
            bucket.append(absolute)


def _unique(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))
