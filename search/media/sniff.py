"""What a file is, decided from its first bytes (magic numbers), never from its name.

A ``.jpg`` that holds text, an ``.mp4`` that holds only audio, or a URL whose server says
``text/plain`` for a PNG are all common; the bytes are the only reliable witness. Ingestion
routes an item to the image or the video decoder with this, and the fetcher reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaClass = Literal["image", "video", "audio", "html", "text", "other"]

SNIFF_BYTES = 512  # enough for every signature below (MPEG-TS needs two 188-byte packets)


@dataclass(frozen=True)
class Sniffed:
    """A MIME type and the broad class the pipeline routes on."""

    mime: str
    media_class: MediaClass

    @property
    def is_image(self) -> bool:
        return self.media_class == "image"

    @property
    def is_video(self) -> bool:
        return self.media_class == "video"


UNKNOWN = Sniffed("application/octet-stream", "other")

# ISO base media file format brands (bytes 8..12 after "ftyp") that are still images.
_IMAGE_BRANDS = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
}
_QUICKTIME_BRANDS = {b"qt  "}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_SIMPLE: tuple[tuple[int, bytes, Sniffed], ...] = (
    (0, b"\xff\xd8\xff", Sniffed("image/jpeg", "image")),
    (0, b"\x89PNG\r\n\x1a\n", Sniffed("image/png", "image")),
    (0, b"GIF87a", Sniffed("image/gif", "image")),
    (0, b"GIF89a", Sniffed("image/gif", "image")),
    (0, b"BM", Sniffed("image/bmp", "image")),
    (0, b"II*\x00", Sniffed("image/tiff", "image")),
    (0, b"MM\x00*", Sniffed("image/tiff", "image")),
    (0, b"\x00\x00\x01\x00", Sniffed("image/x-icon", "image")),
    (0, b"\x1aE\xdf\xa3", Sniffed("video/x-matroska", "video")),  # Matroska and WebM
    (0, b"FLV\x01", Sniffed("video/x-flv", "video")),
    (0, b"\x00\x00\x01\xba", Sniffed("video/mpeg", "video")),
    (0, b"\x00\x00\x01\xb3", Sniffed("video/mpeg", "video")),
    (0, b"0&\xb2u\x8ef\xcf\x11", Sniffed("video/x-ms-asf", "video")),
    (0, b"OggS", Sniffed("application/ogg", "video")),  # may be audio only; the probe decides
    (0, b"ID3", Sniffed("audio/mpeg", "audio")),
    (0, b"fLaC", Sniffed("audio/flac", "audio")),
    (0, b"%PDF", Sniffed("application/pdf", "other")),
    (0, b"PK\x03\x04", Sniffed("application/zip", "other")),
)
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<meta", b"<title")


def sniff(head: bytes) -> Sniffed:
    """Classify the leading bytes of a file (``SNIFF_BYTES`` are enough)."""
    for offset, magic, result in _SIMPLE:
        if head[offset : offset + len(magic)] == magic:
            return result
    return _sniff_riff(head) or _sniff_ftyp(head) or _sniff_other(head) or UNKNOWN


def _sniff_riff(head: bytes) -> Sniffed | None:
    if head[:4] != b"RIFF":
        return None
    form = head[8:12]
    if form == b"WEBP":
        return Sniffed("image/webp", "image")
    if form == b"AVI ":
        return Sniffed("video/x-msvideo", "video")
    if form == b"WAVE":
        return Sniffed("audio/wav", "audio")
    return UNKNOWN


def _sniff_ftyp(head: bytes) -> Sniffed | None:
    if head[4:8] != b"ftyp":
        return None
    brand = head[8:12]
    if brand in _IMAGE_BRANDS:
        return Sniffed(_IMAGE_BRANDS[brand], "image")
    if brand in _AUDIO_BRANDS:
        return Sniffed("audio/mp4", "audio")
    if brand in _QUICKTIME_BRANDS:
        return Sniffed("video/quicktime", "video")
    if brand.startswith(b"3g"):
        return Sniffed("video/3gpp", "video")
    return Sniffed("video/mp4", "video")


def _sniff_other(head: bytes) -> Sniffed | None:
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return Sniffed("video/mp2t", "video")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return Sniffed("audio/mpeg", "audio")  # an MPEG audio frame sync
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(_HTML_MARKERS):
        return Sniffed("text/html", "html")
    if text.startswith(b"<?xml") and b"<svg" in text:
        return Sniffed("image/svg+xml", "other")  # vector art: no raster decoder here
    if text.startswith(b"<svg"):
        return Sniffed("image/svg+xml", "other")
    if head and _looks_like_text(head):
        return Sniffed("text/plain", "text")
    return None


def _looks_like_text(head: bytes) -> bool:
    """UTF-8 (or ASCII) with no control bytes other than whitespace."""
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a multi-byte character cut at the end is fine
            return False
        decoded = head[: exc.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in decoded)


def describe(found: Sniffed) -> str:
    """A short phrase for error messages: 'text', 'an HTML page', 'a PDF document', …"""
    if found.media_class == "text":
        return "text"
    if found.media_class == "html":
        return "an HTML page"
    if found.media_class == "audio":
        return f"audio ({found.mime})"
    if found is UNKNOWN or found.mime == "application/octet-stream":
        return "data of an unknown type"
    return found.mime
