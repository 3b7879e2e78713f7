"""Turning query terms into vectors: text through the encoder, images decoded then encoded,
ids from the store (no re-embedding), URLs through the SSRF-guarded fetcher.

Terms of one kind are embedded in one call (all texts together, all images together), and the
time spent in the model, decoding and fetching is reported apart from the store's, so the
API's own overhead can be measured without the encoder.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from search.engine.results import TermInfo
from search.errors import MediaError, NotFound
from search.ids import point_id
from search.media.sniff import SNIFF_BYTES, describe, sniff
from search.payload import KIND, VIDEO_ID, Payload, SegmentPayload, read_payload
from search.query import FileTerm, IdTerm, ImageTerm, Term, TextTerm, UrlTerm
from search.services import Services
from search.store.base import Filter, Match

ITEM_KINDS = ("image", "product")  # media ids whose single point stands for the item
VIDEO_SEGMENTS_MAX = 4096


class UnsupportedImage(MediaError):
    """Bytes that are not an image at all (a video, text, HTML): 415 rather than 400."""


@dataclass(frozen=True)
class ResolvedItem:
    """What an id term or an example names: a stored point, or a whole video.

    For a video (``is_video``), ``vector`` is the mean of its segment vectors and ``payload``
    is one of its segments' payloads, for the video's name and origin.
    """

    id: str
    vector: np.ndarray
    payload: Payload
    is_video: bool = False

    @property
    def kind(self) -> str:
        return "video" if self.is_video else self.payload.kind

    @property
    def media_id(self) -> str:
        return self.id if self.is_video else (self.payload.media_id or self.id)


@dataclass(frozen=True)
class EncodedTerms:
    """One embedding per term, in the terms' order, and what producing them cost."""

    vectors: np.ndarray  # (n_terms, dim)
    infos: tuple[TermInfo, ...]
    encode_ms: float
    store_ms: float


def encode_terms(services: Services, terms: Sequence[Term], ensemble: bool | None = None) -> EncodedTerms:
    """Embed every term; NotFound for unknown ids, MediaError for unusable images."""
    vectors: list[np.ndarray | None] = [None] * len(terms)
    encode_s = store_s = 0.0
    started = time.perf_counter()
    texts = [(i, t) for i, t in enumerate(terms) if isinstance(t, TextTerm)]
    if texts:
        encoded = services.embedder.encode_texts([t.text for _, t in texts], ensemble=ensemble)
        for (i, _), vector in zip(texts, encoded):
            vectors[i] = vector
    pictures = [(i, t) for i, t in enumerate(terms) if isinstance(t, (ImageTerm, UrlTerm, FileTerm))]
    if pictures:
        images = [load_query_image(services, t) for _, t in pictures]
        for (i, _), vector in zip(pictures, services.embedder.encode_images(images)):
            vectors[i] = vector
    encode_s = time.perf_counter() - started
    ids = [(i, t) for i, t in enumerate(terms) if isinstance(t, IdTerm)]
    if ids:
        started = time.perf_counter()
        for i, t in ids:
            vectors[i] = resolve_item(services, t.id).vector
        store_s = time.perf_counter() - started
    infos = tuple(TermInfo(_kind(t), t.label, t.weight) for t in terms)
    return EncodedTerms(np.stack(vectors), infos, encode_s * 1000, store_s * 1000)  # type: ignore[arg-type]


def _kind(term: Term) -> str:
    return {TextTerm: "text", ImageTerm: "image", UrlTerm: "url", IdTerm: "id", FileTerm: "file"}[type(term)]


# --- images -----------------------------------------------------------------------------------


def load_query_image(services: Services, term: ImageTerm | UrlTerm | FileTerm) -> Image.Image:
    """Decode a query image with the same pixel limit as ingestion, at the model's size."""
    from search.media.image import decode_image

    source: bytes | Path
    if isinstance(term, ImageTerm):
        source = term.data
    elif isinstance(term, FileTerm):
        source = Path(term.path).expanduser()
        if not source.is_file():
            raise NotFound(f"No image file at {term.path!r}.")
    else:
        source = fetch_image_bytes(services, term.url)
    check_is_image(source)
    settings = services.settings
    decoded = decode_image(source, max_pixels=settings.ingest.max_image_pixels, draft_size=services.embedder.image_size)
    return decoded.image


def check_is_image(source: bytes | Path) -> None:
    """Tell 'not an image at all' (415) from 'a broken image' (400) before decoding."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    else:
        head = bytes(source[:SNIFF_BYTES])
    if not head:
        raise MediaError("The image is empty (0 bytes).")
    found = sniff(head)
    if not found.is_image:
        raise UnsupportedImage(f"Not an image: the content is {describe(found)}.")


def fetch_image_bytes(services: Services, url: str) -> bytes:
    """Download a query image with the crawler's guarded fetcher (private addresses refused).

    A user is waiting, so at most one retry, a short timeout and a total deadline
    (``search.url_fetch_deadline``; the API opens one for all the URLs of a query); the upload
    limit applies, since a URL is just another way of uploading.
    """
    from search.fetch import Fetcher

    settings = services.settings
    quick = settings.ingest.model_copy(
        update={"http_retries": min(settings.ingest.http_retries, 1), "http_timeout": min(settings.ingest.http_timeout, 10.0)}
    )
    with Fetcher(quick) as fetcher:
        return fetcher.fetch(url, max_bytes=settings.api.max_upload_bytes, deadline=settings.search.url_fetch_deadline).data


# --- ids -----------------------------------------------------------------------------------------


def resolve_item(services: Services, item_id: str) -> ResolvedItem:
    """The stored point an id names, with its vector: a point id, or the media id of an image,
    product or video (a video stands for the mean of its segment vectors, i.e. mean pooling)."""
    store = services.store
    model = services.embedder.model_name
    candidates = [item_id] + [point_id(model, item_id, kind) for kind in ITEM_KINDS]
    for hit in store.retrieve(candidates, with_vectors=True):
        payload = read_payload(hit.payload)
        if hit.vector is not None and payload is not None:
            return ResolvedItem(hit.id, hit.vector, payload)
    video = _video_as_item(services, item_id)
    if video is not None:
        return video
    raise NotFound(f"No indexed item with id {item_id!r}.")


def _video_as_item(services: Services, video_id: str) -> ResolvedItem | None:
    flt = Filter((Match(KIND, ("segment",)), Match(VIDEO_ID, (video_id,))))
    page = services.store.scroll(flt, limit=VIDEO_SEGMENTS_MAX, with_vectors=True)
    vectors = [h.vector for h in page.hits if h.vector is not None]
    if not vectors:
        return None
    mean = np.mean(np.stack(vectors), axis=0)
    vector = (mean / np.linalg.norm(mean)).astype(np.float32)
    return ResolvedItem(video_id, vector, SegmentPayload.from_payload(page.hits[0].payload), is_video=True)
