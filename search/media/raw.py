"""Camera RAW (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF) to an upright RGB picture, through LibRaw.

Demosaicing a 24-megapixel sensor dump takes seconds; almost every RAW file also carries the
camera's own JPEG preview, often at full size, which decodes in milliseconds. The model only
needs ``draft_size`` pixels on the short side, so the preview is used whenever it is that
large, and only files without a usable preview are demosaiced, at half size (LibRaw's
``half_size`` skips interpolation: one RGB pixel per 2x2 Bayer block) when that is still big
enough. Orientation comes from LibRaw's ``flip``, which it applies to demosaiced output itself
and which is applied here to the preview.

EXIF is read from the container (TIFF directories, or Canon CR3's CMT boxes) and, for formats
that keep it only in the preview (Fujifilm RAF), from the preview JPEG; LibRaw's own lens
name and timestamp fill what is still missing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from datetime import timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from search.errors import MediaError, TooLarge

from .exif import EMPTY_EXIF, ExifInfo, exif_from_parts, exif_from_tiff, read_exif
from .formats import ImageFormat

EXIF_HEAD_BYTES = 1 << 20  # EXIF directories of RAW files sit near the start; 1 MiB covers every camera seen
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}  # LibRaw's flip codes as EXIF orientations


@dataclass(frozen=True)
class RawPicture:
    """A RAW file rendered for the embedder: ``width``/``height`` are the sensor image as displayed."""

    image: Image.Image  # RGB, upright, possibly smaller than the sensor image
    width: int
    height: int
    exif: ExifInfo
    via: Literal["preview", "demosaic"]  # the embedded JPEG/bitmap, or the sensor data


def decode_raw(source: bytes | Path, fmt: ImageFormat, max_pixels: int, draft_size: int | None) -> RawPicture:
    """Decode a RAW file (bytes or path); raise MediaError/TooLarge with a reason users can read.

    ``draft_size``: the shortest side the caller needs; None asks for the full sensor resolution.
    """
    import rawpy

    try:
        with rawpy.imread(_raw_input(source)) as raw:
            return _decode_opened(raw, source, fmt, max_pixels, draft_size)
    except (MediaError, TooLarge):
        raise
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError, MemoryError) as exc:
        raise TooLarge(f"{fmt.label} file is too large to decode: {_libraw_text(exc)}") from exc
    except rawpy.LibRawFileUnsupportedError as exc:
        raise MediaError(
            f"corrupt or unsupported {fmt.label} file: LibRaw does not recognise it as {fmt.vendor} RAW ({_libraw_text(exc)})"
        ) from exc
    except rawpy.LibRawIOError as exc:
        raise MediaError(f"truncated or unreadable {fmt.label} file: {_libraw_text(exc)}") from exc
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise MediaError(f"corrupt {fmt.label} file: {_libraw_text(exc)}") from exc


def _raw_input(source: bytes | Path) -> Any:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return str(source)


def _decode_opened(raw: Any, source: bytes | Path, fmt: ImageFormat, max_pixels: int, draft_size: int | None) -> RawPicture:
    sizes = raw.sizes
    width, height = int(sizes.width), int(sizes.height)
    if width <= 0 or height <= 0:
        raise MediaError(f"corrupt {fmt.label} file: it declares a size of {width}x{height}")
    if width * height > max_pixels:
        raise TooLarge(
            f"{fmt.label} image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
            f"limit of {max_pixels / 1e6:.1f} (MMSEARCH_INGEST__MAX_IMAGE_PIXELS)"
        )
    orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
    if orientation in (6, 8):
        width, height = height, width
    need = draft_size or min(width, height)
    preview, preview_exif = _preview(raw, need)
    exif = container_exif(source, fmt).merged(preview_exif).merged(_libraw_exif(raw))
    exif = replace(exif, orientation=orientation)
    if preview is not None:
        return RawPicture(_orient(preview, orientation), width, height, exif, "preview")
    half = bool(draft_size) and min(width, height) // 2 >= need
    pixels = raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8)  # applies the flip itself
    image = Image.fromarray(np.ascontiguousarray(pixels[:, :, :3]), "RGB")
    return RawPicture(_reduce(image, draft_size), width, height, exif, "demosaic")


def _preview(raw: Any, need: int) -> tuple[Image.Image | None, ExifInfo]:
    """The embedded preview as RGB when its short side is at least ``need``, and any EXIF it carries."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError, rawpy.LibRawError):
        return None, EMPTY_EXIF
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            with Image.open(io.BytesIO(thumb.data)) as opened:
                exif = read_exif(opened)
                if min(opened.size) < need:
                    return None, exif
                opened.draft("RGB", _draft_box(opened.size, need))
                return opened.convert("RGB"), exif
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return None, EMPTY_EXIF  # a broken preview is no reason to fail: demosaic instead
    pixels = np.asarray(thumb.data)
    if pixels.ndim != 3 or min(pixels.shape[:2]) < need:
        return None, EMPTY_EXIF
    image = Image.fromarray(np.ascontiguousarray(pixels[:, :, :3]).astype(np.uint8), "RGB")
    return _reduce(image, need), EMPTY_EXIF


def _draft_box(size: tuple[int, int], need: int) -> tuple[int, int]:
    """The box JPEG draft must not go below for the short side to stay >= ``need``."""
    w, h = size
    scale = need / min(w, h)
    return max(1, int(w * scale + 0.999)), max(1, int(h * scale + 0.999))


def container_exif(source: bytes | Path, fmt: ImageFormat) -> ExifInfo:
    head = _read_head(source)
    if fmt.label == "CR3":
        return _cr3_exif(head)
    if fmt.label == "RAF":
        return EMPTY_EXIF  # its EXIF lives in the preview JPEG
    if head[:4] in (b"IIRO", b"IIRS", b"IIU\x00"):
        head = b"II*\x00" + head[4:]  # Olympus and Panasonic changed only TIFF's magic number
    elif head[:4] == b"MMOR":
        head = b"MM\x00*" + head[4:]
    return exif_from_tiff(head)


def _read_head(source: bytes | Path) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:EXIF_HEAD_BYTES])
    try:
        with open(source, "rb") as handle:
            return handle.read(EXIF_HEAD_BYTES)
    except OSError:
        return b""


def _cr3_exif(head: bytes) -> ExifInfo:
    """CR3 keeps EXIF as TIFF blobs in boxes: CMT1 = IFD0, CMT2 = EXIF IFD, CMT4 = GPS IFD."""
    boxes = {name: _box_payload(head, name) for name in (b"CMT1", b"CMT2", b"CMT4")}
    if not boxes[b"CMT1"]:
        return EMPTY_EXIF
    return exif_from_parts(boxes[b"CMT1"], boxes[b"CMT2"] or None, boxes[b"CMT4"] or None)


def _box_payload(data: bytes, name: bytes) -> bytes:
    at = data.find(name)
    if at < 4:
        return b""
    size = int.from_bytes(data[at - 4 : at], "big")
    if size < 8:
        return b""
    return data[at + 4 : at - 4 + size]


def _libraw_exif(raw: Any) -> ExifInfo:
    """What LibRaw itself parsed: the lens name and the capture time (a naive local time, read as UTC like EXIF's)."""
    taken_at = lens = None
    try:
        other = raw.other
        if other.timestamp is not None and other.timestamp.year > 1971:
            taken_at = other.timestamp.replace(tzinfo=timezone.utc).timestamp()
    except Exception:
        pass
    try:
        lens = (raw.lens.model or "").strip() or None
    except Exception:
        pass
    return ExifInfo(taken_at=taken_at, lens=lens)


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    method = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90}.get(orientation)
    return image.transpose(method) if method is not None else image


def _reduce(image: Image.Image, draft_size: int | None) -> Image.Image:
    factor = min(image.size) // draft_size if draft_size else 0
    return image.reduce(factor) if factor >= 2 else image


def _libraw_text(exc: BaseException) -> str:
    """LibRaw's messages arrive as bytes reprs (``b'Unsupported file format'``); make them plain words."""
    text = str(exc.args[0] if exc.args else exc)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text.strip() or type(exc).__name__
