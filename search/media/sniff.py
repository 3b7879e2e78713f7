"""What a file is, decided from its first bytes (magic numbers), never from its name.

A ``.jpg`` that holds text, an ``.mp4`` that holds only audio, or a URL whose server says
``text/plain`` for a PNG are all common; the bytes are the only reliable witness. Ingestion
routes an item to the image or the video decoder with this, and the fetcher reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ByteOrder = Literal["little", "big"]

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

# ISO base media file format brands (bytes 8..12 after "ftyp") that are still images. A
# generic major brand (mif1, msf1) names the codec among the compatible brands that follow.
_IMAGE_BRANDS = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"hevc": "image/heic",
    b"hevx": "image/heic",
    b"mif1": "image/heif",
    b"mif2": "image/heif",
    b"msf1": "image/heif",
    b"crx ": "image/x-canon-cr3",  # Canon CR3 is an ISO media file too
}
_GENERIC_IMAGE_BRANDS = {b"mif1", b"mif2", b"msf1"}
_QUICKTIME_BRANDS = {b"qt  "}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_SIMPLE: tuple[tuple[int, bytes, Sniffed], ...] = (
    (0, b"\xff\xd8\xff", Sniffed("image/jpeg", "image")),
    (0, b"\x89PNG\r\n\x1a\n", Sniffed("image/png", "image")),
    (0, b"GIF87a", Sniffed("image/gif", "image")),
    (0, b"GIF89a", Sniffed("image/gif", "image")),
    (0, b"BM", Sniffed("image/bmp", "image")),
    (0, b"FUJIFILMCCD-RAW", Sniffed("image/x-fuji-raf", "image")),
    (0, b"IIRO", Sniffed("image/x-olympus-orf", "image")),  # TIFF with Olympus' own magic number
    (0, b"IIRS", Sniffed("image/x-olympus-orf", "image")),
    (0, b"MMOR", Sniffed("image/x-olympus-orf", "image")),
    (0, b"IIU\x00", Sniffed("image/x-panasonic-rw2", "image")),
    (0, b"II+\x00", Sniffed("image/tiff", "image")),  # BigTIFF
    (0, b"MM\x00+", Sniffed("image/tiff", "image")),
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
    return _sniff_tiff(head) or _sniff_riff(head) or _sniff_ftyp(head) or _sniff_other(head) or UNKNOWN


def _sniff_tiff(head: bytes) -> Sniffed | None:
    if head[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    return Sniffed(classify_tiff(head), "image")


# Makers whose raw files are plain TIFF containers (same magic number as a TIFF export).
_RAW_MAKERS = (
    (b"NIKON", "image/x-nikon-nef"),
    (b"SONY", "image/x-sony-arw"),
    (b"PENTAX", "image/x-pentax-pef"),
    (b"RICOH", "image/x-pentax-pef"),
    (b"CANON", "image/x-canon-cr2"),
)
_DNG_VERSION, _MAKE, _SUB_IFDS, _ASCII = 50706, 0x010F, 0x014A, 2


def classify_tiff(data: bytes) -> str:
    """A TIFF-structured file's MIME type: plain TIFF, DNG, or a camera's raw format.

    Camera raw files share TIFF's magic number, so the first directory decides: a DNGVersion
    tag means DNG; a Canon "CR" marker means CR2; a camera maker's name *and* SubIFDs (where
    raw sensor data lives) mean that maker's raw format. An edited TIFF keeps the camera's
    Make but has no SubIFDs, so it stays a TIFF. Tags whose values lie beyond ``data`` are
    not seen; callers that can read more (the image decoder reads 64 KiB) decide better.
    """
    if data[8:10] == b"CR" and data[:2] == b"II":
        return "image/x-canon-cr2"
    entries = _ifd0_entries(data)
    if _DNG_VERSION in entries:
        return "image/x-adobe-dng"
    make = _ascii_value(data, entries.get(_MAKE))
    if make and _SUB_IFDS in entries:
        for prefix, mime in _RAW_MAKERS:
            if make.upper().startswith(prefix):
                return mime
    return "image/tiff"


def _ifd0_entries(data: bytes) -> dict[int, tuple[int, int, bytes]]:
    """Tag -> (type, count, 4-byte value field) of the first directory, as far as ``data`` reaches."""
    order: ByteOrder = "little" if data[:2] == b"II" else "big"
    offset = int.from_bytes(data[4:8], order)
    if offset < 8 or offset + 2 > len(data):
        return {}
    count = int.from_bytes(data[offset : offset + 2], order)
    entries = {}
    for index in range(min(count, 512)):
        start = offset + 2 + 12 * index
        if start + 12 > len(data):
            break
        tag = int.from_bytes(data[start : start + 2], order)
        kind = int.from_bytes(data[start + 2 : start + 4], order)
        n = int.from_bytes(data[start + 4 : start + 8], order)
        entries[tag] = (kind, n, data[start + 8 : start + 12])
    return entries


def _ascii_value(data: bytes, entry: tuple[int, int, bytes] | None) -> bytes:
    if entry is None or entry[0] != _ASCII:
        return b""
    _, count, field = entry
    if count <= 4:
        return field[:count].rstrip(b"\x00 ")
    order: ByteOrder = "little" if data[:2] == b"II" else "big"
    start = int.from_bytes(field, order)
    return data[start : start + min(count, 64)].rstrip(b"\x00 ")


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
    if brand in _GENERIC_IMAGE_BRANDS:
        return Sniffed(_generic_image_mime(head), "image")
    if brand in _IMAGE_BRANDS:
        return Sniffed(_IMAGE_BRANDS[brand], "image")
    if brand in _AUDIO_BRANDS:
        return Sniffed("audio/mp4", "audio")
    if brand in _QUICKTIME_BRANDS:
        return Sniffed("video/quicktime", "video")
    if brand.startswith(b"3g"):
        return Sniffed("video/3gpp", "video")
    return Sniffed("video/mp4", "video")


def _generic_image_mime(head: bytes) -> str:
    """``mif1`` + compatible brands ``avif``/``heic`` -> that codec; plain HEIF otherwise."""
    size = int.from_bytes(head[:4], "big")
    compatible = head[16 : min(size, len(head))]
    brands = {compatible[i : i + 4] for i in range(0, len(compatible) - 3, 4)}
    if brands & {b"avif", b"avis"}:
        return "image/avif"
    if brands & {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}:
        return "image/heic"
    return "image/heif"


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
