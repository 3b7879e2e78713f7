"""The still-image formats mmsearch decodes, as data: name, MIME type, file extensions, decoder.

One table answers the questions several modules ask: which extensions discovery should pick
up, which decoder a sniffed MIME type goes to, what word to use for a format in an error
message ("HEIC", "NEF"), and which package to install when a decoder is missing. Optional
decoders (pillow-heif, rawpy, Pillow's AVIF plugin) are probed once, on first use, so a
missing one costs nothing until a file needs it and then fails with the install command.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Literal

from search.errors import MediaError

Decoder = Literal["pillow", "pillow-avif", "pillow-heif", "rawpy"]


class MissingDecoder(MediaError):
    """The file is a known format, but the package that decodes it is not installed."""


@dataclass(frozen=True)
class ImageFormat:
    """A still-image format: ``label`` is the word users know it by."""

    label: str
    mime: str
    extensions: tuple[str, ...]
    decoder: Decoder
    vendor: str = ""  # for camera RAW: whose cameras write it

    @property
    def is_raw(self) -> bool:
        return self.decoder == "rawpy"


FORMATS: tuple[ImageFormat, ...] = (
    ImageFormat("JPEG", "image/jpeg", (".jpg", ".jpeg", ".jpe", ".jfif"), "pillow"),
    ImageFormat("PNG", "image/png", (".png",), "pillow"),
    ImageFormat("GIF", "image/gif", (".gif",), "pillow"),
    ImageFormat("WebP", "image/webp", (".webp",), "pillow"),
    ImageFormat("BMP", "image/bmp", (".bmp",), "pillow"),
    ImageFormat("TIFF", "image/tiff", (".tif", ".tiff"), "pillow"),
    ImageFormat("ICO", "image/x-icon", (".ico",), "pillow"),
    ImageFormat("AVIF", "image/avif", (".avif",), "pillow-avif"),
    ImageFormat("HEIC", "image/heic", (".heic", ".hif"), "pillow-heif"),
    ImageFormat("HEIF", "image/heif", (".heif",), "pillow-heif"),
    ImageFormat("DNG", "image/x-adobe-dng", (".dng",), "rawpy", "Adobe"),
    ImageFormat("CR2", "image/x-canon-cr2", (".cr2",), "rawpy", "Canon"),
    ImageFormat("CR3", "image/x-canon-cr3", (".cr3",), "rawpy", "Canon"),
    ImageFormat("NEF", "image/x-nikon-nef", (".nef",), "rawpy", "Nikon"),
    ImageFormat("ARW", "image/x-sony-arw", (".arw",), "rawpy", "Sony"),
    ImageFormat("RAF", "image/x-fuji-raf", (".raf",), "rawpy", "Fujifilm"),
    ImageFormat("ORF", "image/x-olympus-orf", (".orf",), "rawpy", "Olympus"),
    ImageFormat("RW2", "image/x-panasonic-rw2", (".rw2",), "rawpy", "Panasonic"),
    ImageFormat("PEF", "image/x-pentax-pef", (".pef",), "rawpy", "Pentax"),
)

_BY_MIME = {f.mime: f for f in FORMATS}
_BY_EXTENSION = {ext: f for f in FORMATS for ext in f.extensions}

IMAGE_EXTENSIONS = frozenset(_BY_EXTENSION)
RAW_EXTENSIONS = frozenset(ext for f in FORMATS if f.is_raw for ext in f.extensions)
RAW_MIMES = frozenset(f.mime for f in FORMATS if f.is_raw)
HEIF_MIMES = frozenset(f.mime for f in FORMATS if f.decoder == "pillow-heif")

_INSTALL = {
    "pillow-heif": "pip install pillow-heif",
    "rawpy": "pip install rawpy",
    "pillow-avif": "pip install -U 'pillow>=11.3' (its wheels include libavif)",
}


def format_for_mime(mime: str) -> ImageFormat | None:
    return _BY_MIME.get(mime)


def format_for_extension(suffix: str) -> ImageFormat | None:
    """``".NEF"`` or ``"nef"`` -> the NEF format; None for extensions we do not decode."""
    suffix = suffix.lower()
    return _BY_EXTENSION.get(suffix if suffix.startswith(".") else f".{suffix}")


def label_for_mime(mime: str) -> str:
    """``image/x-nikon-nef`` -> ``NEF``; unknown types fall back to their subtype."""
    known = _BY_MIME.get(mime)
    return known.label if known else mime.split("/")[-1].removeprefix("x-").upper()


def require_decoder(fmt: ImageFormat) -> None:
    """Raise MissingDecoder, naming the package and the install command, when ``fmt`` cannot be decoded here."""
    ok, reason = decoder_available(fmt.decoder)
    if not ok:
        raise MissingDecoder(f"{fmt.label} needs {_package(fmt.decoder)}: {_INSTALL[fmt.decoder]} ({reason})")


@functools.cache
def decoder_available(decoder: Decoder) -> tuple[bool, str]:
    """(usable, why not): probed once per process, so a missing package costs one import attempt."""
    if decoder == "pillow":
        return True, ""
    if decoder == "pillow-avif":
        from PIL import features

        return (True, "") if features.check("avif") else (False, "this Pillow build has no AVIF support")
    module = {"pillow-heif": "pillow_heif", "rawpy": "rawpy"}[decoder]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return False, f"import {module} failed: {exc}"
    if decoder == "pillow-heif":
        _register_heif()
    return True, ""


def decoders_report() -> dict[str, tuple[bool, str]]:
    """Every optional decoder and whether it works here; for ``mmsearch doctor``."""
    optional: tuple[Decoder, ...] = ("pillow-heif", "rawpy", "pillow-avif")
    return {name: decoder_available(name) for name in optional}


def _package(decoder: Decoder) -> str:
    return "Pillow with AVIF support" if decoder == "pillow-avif" else decoder


def _register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF; pillow-heif then applies the file's rotation itself."""
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=True, depth_images=False, aux_images=False)


def formats_status() -> str:
    """A line for ``mmsearch doctor``; raises MissingDecoder naming every optional decoder that is missing."""
    report = decoders_report()
    missing = [f"{name}: {reason} ({_INSTALL[name]})" for name, (ok, reason) in report.items() if not ok]
    if missing:
        raise MissingDecoder("; ".join(missing))
    return (
        "HEIC/HEIF (pillow-heif), AVIF (Pillow), camera RAW "
        + "/".join(sorted(f.label for f in FORMATS if f.is_raw))
        + " (rawpy)"
    )
