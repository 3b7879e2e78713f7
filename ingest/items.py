"""The records that travel between ingestion stages and across Celery task boundaries.

Discovery produces ``MediaItem``s: addresses of things to index, never their content, so a
task message stays small and a redelivered task re-reads the world as it is now. Each record
converts to and from plain JSON-able dicts for Celery's json serializer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from search.ids import media_id

KindHint = Literal["image", "video", "product", "auto"]
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Product:
    """A manifest row: the product fields every catalogue has, plus its other columns."""

    product_id: str
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    extra: dict[str, Scalar] = field(default_factory=dict)

    def payload(self) -> dict[str, Scalar]:
        """Payload fields for a product point; the named fields win over same-named extras."""
        named = {
            "product_id": self.product_id,
            "title": self.title,
            "category": self.category,
            "brand": self.brand,
            "price": self.price,
        }
        return {**self.extra, **{k: v for k, v in named.items() if v is not None}}


@dataclass(frozen=True)
class MediaItem:
    """One thing to index, as discovery found it.

    ``kind`` is a hint from the extension or the source (``auto`` for URLs): the bytes decide
    between image and video when the item is decoded. ``fingerprint`` is the digest of a
    product's manifest row, so a changed price re-indexes an unchanged photo.
    """

    uri: str  # canonical: file:///abs/path or the http(s) URL
    source_id: str
    kind: KindHint
    path: str | None = None  # absolute local path when the item is a local file
    size: int | None = None  # from stat, for the incremental check
    mtime: float | None = None
    product: Product | None = None
    fingerprint: str | None = None
    had_points: bool = False  # it was indexed before: stale points may need removing
    local_copy: str | None = None  # remote media after the fetch stage: the downloaded file
    content_hash: str | None = None  # remote media after the fetch stage: what the catalog compares
    fetched_at: float | None = None  # remote media: when it was downloaded

    @property
    def media_id(self) -> str:
        return media_id(self.uri)

    @property
    def is_remote(self) -> bool:
        return self.path is None

    @property
    def readable_path(self) -> Path | None:
        """Where this machine reads the bytes: the file itself, or the download of a URL."""
        location = self.path or self.local_copy
        return Path(location) if location else None

    @property
    def name(self) -> str:
        """The file name users recognise, for payloads and messages."""
        if self.path:
            return Path(self.path).name
        return Path(unquote(urlparse(self.uri).path)).name or urlparse(self.uri).netloc

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaItem:
        values = dict(data)
        if values.get("product") is not None:
            values["product"] = Product(**values["product"])
        return cls(**values)


@dataclass(frozen=True)
class Problem:
    """Something discovery could not read (a folder, a page, a manifest row), with the reason."""

    uri: str
    reason: str


def file_uri(path: Path) -> str:
    """The canonical URI of a local file: absolute, symlinks kept as the user named them."""
    return path.absolute().as_uri()


def path_of_file_uri(uri: str) -> Path:
    """The local path a ``file://`` URI names (percent-escapes decoded)."""
    return Path(url2pathname(urlparse(uri).path))
