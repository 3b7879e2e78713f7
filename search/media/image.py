"""Turn image bytes into an upright RGB picture no larger than the model needs, fast and safely.

Decoding dominates ingestion cost on CPU, and CLIP only sees ~224 pixels: JPEG ``draft`` asks
libjpeg to decode at 1/2, 1/4 or 1/8 scale directly (about 4.5x faster than a full decode and
resize at 1080p), and other formats are box-reduced by an integer factor. Both keep the shortest
side at or above ``draft_size`` so the model's own resize still has enough pixels.

Formats beyond Pillow's own go through the decoder the format table names: HEIC/HEIF through
pillow-heif (whose ``draft`` picks an embedded thumbnail when one is large enough), AVIF through
Pillow's plugin, camera RAW through rawpy (``search.media.raw``: the embedded preview when it
is large enough, else a half-size demosaic).

Every failure is a ``MediaError`` whose message says what is wrong with the file, because it
ends up in the job's failure list that users read; a format whose decoder is not installed
raises ``MissingDecoder`` naming the package to install.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from search.errors import MediaError, TooLarge

from .exif import ExifInfo, read_exif
from .formats import HEIF_MIMES, ImageFormat, format_for_extension, format_for_mime, label_for_mime, require_decoder
from .raw import decode_raw
from .sniff import SNIFF_BYTES, Sniffed, classify_tiff, describe, sniff

_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that turn the picture by 90 degrees
_BACKGROUND = (255, 255, 255)  # transparent areas become white, as viewers show them
_TIFF_HEAD_BYTES = 64 * 1024  # enough of a TIFF to see IFD0's Make and SubIFDs (camera RAW or plain TIFF)


@dataclass(frozen=True)
class DecodedImage:
    """An image ready for the embedder and the thumbnailer.

    ``image`` is RGB and upright but may be smaller than the file (draft/reduce); ``width`` and
    ``height`` are the file's full size as displayed (after EXIF orientation).
    """

    image: Image.Image
    width: int
    height: int
    mime: str
    exif: ExifInfo
    frame_count: int = 1  # > 1 for animations; only the first frame is decoded
    via: Literal["file", "preview", "demosaic"] = "file"  # RAW: the embedded preview or the sensor data


def decode_image(source: bytes | Path, max_pixels: int = 64_000_000, draft_size: int | None = None) -> DecodedImage:
    """Decode ``source`` to RGB with orientation applied; raise MediaError/TooLarge when unusable.

    ``draft_size``: the smallest side the caller needs (the model's input size, or the thumbnail
    size if larger); None decodes at full resolution. The bytes decide the format; a path's
    extension only helps where the bytes are ambiguous (a camera RAW in a plain TIFF container)
    and makes error messages say what the file claimed to be.
    """
    head = _head(source)
    found = sniff(head)
    named = format_for_extension(source.suffix) if isinstance(source, Path) else None
    if not found.is_image:
        raise MediaError(_not_an_image(found, named))
    fmt = _refine(source, found, named)
    if fmt is not None:
        require_decoder(fmt)
        if fmt.is_raw:
            raw = decode_raw(source, fmt, max_pixels, draft_size)
            return DecodedImage(raw.image, raw.width, raw.height, fmt.mime, raw.exif, 1, raw.via)
    return _decode_with_pillow(source, found.mime, max_pixels, draft_size)


def _not_an_image(found: Sniffed, named: ImageFormat | None) -> str:
    reason = f"not an image: the content is {describe(found)}"
    if named is not None:
        reason += f", not the {named.label}{f' ({named.vendor} RAW)' if named.is_raw else ''} its name says"
    return reason


def _refine(source: bytes | Path, found: Sniffed, named: ImageFormat | None) -> ImageFormat | None:
    """The format to decode as: a TIFF header is looked at more closely, since camera RAW shares it."""
    fmt = format_for_mime(found.mime)
    if found.mime != "image/tiff":
        return fmt
    refined = format_for_mime(classify_tiff(_read(source, _TIFF_HEAD_BYTES)))
    if refined is not None and refined.is_raw:
        return refined
    if named is not None and named.is_raw:
        return named  # a TIFF-structured file named .nef whose maker tag lies beyond the head we read
    return fmt


def _decode_with_pillow(source: bytes | Path, mime: str, max_pixels: int, draft_size: int | None) -> DecodedImage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
        image = _open(source, mime)
        try:
            decoded = _decode_opened(image, mime, max_pixels, draft_size)
            if decoded.image is image:  # already RGB at full size: detach it from the file we close
                decoded = replace(decoded, image=image.copy())
            return decoded
        finally:
            image.close()


def _head(source: bytes | Path) -> bytes:
    head = _read(source, SNIFF_BYTES)
    if not head:
        raise MediaError("empty file (0 bytes)")
    return head


def _read(source: bytes | Path, limit: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:limit])
    try:
        with open(source, "rb") as handle:
            return handle.read(limit)
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc


def _open(source: bytes | Path, mime: str) -> Image.Image:
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        return Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(f"corrupt or unsupported {_label(mime)} image: the decoder does not recognise it") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"corrupt {_label(mime)} image: {exc}") from exc


def _decode_opened(image: Image.Image, mime: str, max_pixels: int, draft_size: int | None) -> DecodedImage:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise MediaError(f"corrupt {_label(mime)} image: it declares a size of {width}x{height}")
    if width * height > max_pixels:
        raise TooLarge(
            f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
            f"limit of {max_pixels / 1e6:.1f} (MMSEARCH_INGEST__MAX_IMAGE_PIXELS)"
        )
    exif = read_exif(image)
    frame_count = frame_count_of(image)
    rgb = _load_rgb(image, mime, draft_size)
    rgb = _apply_orientation(rgb, exif.orientation)
    if exif.orientation in _SWAPS_AXES:
        width, height = height, width
    return DecodedImage(rgb, width, height, mime, exif, frame_count)


def _load_rgb(image: Image.Image, mime: str, draft_size: int | None) -> Image.Image:
    """Decode the first frame at the smallest useful scale, then convert it to RGB."""
    try:
        if frame_count_of(image) > 1:
            image.seek(0)
        if draft_size and image.format == "JPEG" and image.mode in ("RGB", "L", "YCbCr"):
            image.draft(image.mode if image.mode == "L" else "RGB", (draft_size, draft_size))
        elif draft_size and mime in HEIF_MIMES:
            image.draft(None, _draft_box(image.size, draft_size))  # an embedded thumbnail, when one is large enough
        image.load()
        image = _reduce(image, draft_size)
        return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
        raise MediaError(f"corrupt or truncated {_label(mime)} image: {_reason(exc)}") from exc


def _draft_box(size: tuple[int, int], need: int) -> tuple[int, int]:
    """The smallest box that keeps the short side >= ``need`` at this aspect ratio."""
    w, h = size
    scale = need / max(1, min(w, h))
    return max(1, -int(-w * scale // 1)), max(1, -int(-h * scale // 1))


def frame_count_of(image: Image.Image) -> int:
    return int(getattr(image, "n_frames", 1) or 1)


def _reduce(image: Image.Image, draft_size: int | None) -> Image.Image:
    """Box-reduce by an integer factor while the shortest side stays >= ``draft_size``."""
    if not draft_size or image.mode not in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return image
    factor = min(image.size) // draft_size
    return image.reduce(factor) if factor >= 2 else image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: alpha over white, 16-bit and float scaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image)), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale high-bit-depth grey to 0..255 instead of letting a plain convert clip it."""
    values = np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if pixels.dtype.kind == "f":
        low, top = float(values.min(initial=0.0)), float(values.max(initial=1.0))
    else:
        peak = float(values.max(initial=0.0))
        wide = pixels.dtype.itemsize == 2 or peak > 255
        low, top = 0.0, (max(peak, 65535.0) if wide else 255.0)
    span = (top - low) or 1.0
    return np.clip((values - low) * (255.0 / span), 0, 255).astype(np.uint8)


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Rotate/flip pixels as the camera recorded; pixel data is never stored upright by phones."""
    if orientation == 1:
        return image
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }[orientation]
    return image.transpose(method)


def _label(mime: str) -> str:
    """``image/jpeg`` -> ``JPEG``: the word users know the format by."""
    return label_for_mime(mime)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if "truncated" in text:
        return f"the file is truncated ({text})"
    return text or type(exc).__name__
