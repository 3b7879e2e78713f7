"""EXIF metadata users filter and sort by: when a photo was taken, with what, and where.

A few facts are kept, each already in the unit the payload stores (unix seconds, plain
camera and lens strings, decimal degrees), so the rest of the code never sees EXIF's rationals,
IFD numbers or "YYYY:MM:DD HH:MM:SS" strings. Broken EXIF is common in the wild and never fatal:
a field that cannot be read is simply absent. The same reader serves every container: Pillow's
own EXIF (JPEG, PNG, WebP, TIFF, AVIF, HEIC through pillow-heif) and raw TIFF structures found
inside camera RAW files (``exif_from_tiff``, ``exif_from_parts``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from PIL import Image

# Tag numbers from the EXIF 2.32 specification.
_ORIENTATION = 0x0112
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME = 0x0132
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_TIME_ORIGINAL = 0x9011
_LENS_MAKE = 0xA433
_LENS_MODEL = 0xA434
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
_IMAGE_DESCRIPTION = 0x010E
_ARTIST = 0x013B
_USER_COMMENT = 0x9286  # in the EXIF IFD: an 8-byte character-code header, then the text
_XP_TITLE, _XP_COMMENT, _XP_KEYWORDS, _XP_SUBJECT = 0x9C9B, 0x9C9C, 0x9C9E, 0x9C9F  # Windows tags, UTF-16LE
_CAPTION_MAX = 2000  # characters kept of all captions together


@dataclass(frozen=True)
class ExifInfo:
    """The EXIF facts mmsearch indexes; every field is None when the file does not say."""

    taken_at: float | None = None  # unix seconds; local times without an offset are read as UTC
    camera: str | None = None  # "Canon EOS 5D Mark IV": make and model, the maker's name said once
    gps_lat: float | None = None  # decimal degrees, south negative
    gps_lon: float | None = None  # decimal degrees, west negative
    orientation: int = 1  # EXIF orientation 1..8; 1 means stored upright
    make: str | None = None  # "Canon"
    model: str | None = None  # "Canon EOS 5D Mark IV"
    lens: str | None = None  # "EF24-105mm f/4L IS USM" (lens make prepended when the model lacks it)
    caption: str | None = None  # what the photo's own text fields say: title, description, keywords, comments

    @property
    def is_empty(self) -> bool:
        return self == EMPTY_EXIF

    def merged(self, fallback: ExifInfo) -> ExifInfo:
        """Fields of ``self``, with the gaps filled from ``fallback`` (orientation stays ``self``'s)."""
        return ExifInfo(
            taken_at=self.taken_at if self.taken_at is not None else fallback.taken_at,
            camera=self.camera or fallback.camera,
            gps_lat=self.gps_lat if self.gps_lat is not None else fallback.gps_lat,
            gps_lon=self.gps_lon if self.gps_lon is not None else fallback.gps_lon,
            orientation=self.orientation,
            make=self.make or fallback.make,
            model=self.model or fallback.model,
            lens=self.lens or fallback.lens,
            caption=self.caption or fallback.caption,
        )

    @property
    def searchable(self) -> str | None:
        """The words keyword search should find this photo by: its captions and the lens
        (the camera is a payload field of its own)."""
        parts = [part for part in (self.caption, self.lens) if part]
        return " ".join(parts) or None

    def payload(self) -> dict[str, Any]:
        """The present fields under the payload's names (``taken_at`` is handled by the caller)."""
        fields = {"camera": self.camera, "gps_lat": self.gps_lat, "gps_lon": self.gps_lon}
        return {k: v for k, v in fields.items() if v is not None}


EMPTY_EXIF = ExifInfo()


def read_exif(image: Image.Image) -> ExifInfo:
    """Read date taken, camera, lens, GPS position and orientation from an opened (not necessarily loaded) image."""
    try:
        exif = image.getexif()
    except Exception:
        return EMPTY_EXIF
    return _from_exif(exif)


def exif_from_tiff(data: bytes) -> ExifInfo:
    """EXIF from a TIFF structure (``II*\\0``/``MM\\0*``, optionally after ``Exif\\0\\0``).

    Camera RAW containers are TIFF-like (DNG, CR2, NEF, ARW, PEF, and ORF/RW2 with their own
    magic number, which callers replace); ``data`` may be just the start of the file: tags
    whose values lie beyond it are skipped.
    """
    return _from_exif(_load_exif(data))


def exif_from_parts(ifd0: bytes, exif_ifd: bytes | None = None, gps_ifd: bytes | None = None) -> ExifInfo:
    """EXIF stored as separate TIFF blobs, one per directory (Canon CR3's CMT1, CMT2 and CMT4 boxes)."""
    main = _load_exif(ifd0)
    sub = dict(_load_exif(exif_ifd)) if exif_ifd else _ifd(main, _EXIF_IFD)
    gps = dict(_load_exif(gps_ifd)) if gps_ifd else _ifd(main, _GPS_IFD)
    return _from_dirs(dict(main), sub, gps)


def _load_exif(data: bytes) -> Image.Exif:
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:
        return Image.Exif()
    return exif


def _from_exif(exif: Image.Exif) -> ExifInfo:
    if not exif:
        return EMPTY_EXIF
    try:
        ifd0 = dict(exif)
    except Exception:
        return EMPTY_EXIF
    return _from_dirs(ifd0, _ifd(exif, _EXIF_IFD), _ifd(exif, _GPS_IFD))


def _from_dirs(ifd0: dict[int, Any], sub: dict[int, Any], gps: dict[int, Any]) -> ExifInfo:
    make, model = _text(ifd0.get(_MAKE)) or None, _text(ifd0.get(_MODEL)) or None
    lat = _coordinate(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "S", 90.0)
    lon = _coordinate(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "W", 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        lat = lon = None  # half a position is no position; 0,0 is what GPS chips write without a fix
    return ExifInfo(
        taken_at=_taken_at(ifd0, sub),
        camera=_camera(make, model),
        gps_lat=lat,
        gps_lon=lon,
        orientation=_orientation(ifd0.get(_ORIENTATION)),
        make=make,
        model=model,
        lens=_lens(sub.get(_LENS_MAKE), sub.get(_LENS_MODEL)),
        caption=_caption(ifd0, sub),
    )


def _caption(ifd0: dict[int, Any], sub: dict[int, Any]) -> str | None:
    """Title, description, keywords, subject, comments and artist, each said once."""
    found = [_text(ifd0.get(_IMAGE_DESCRIPTION)), _text(ifd0.get(_ARTIST)), _user_comment(sub.get(_USER_COMMENT))]
    found += [_utf16(ifd0.get(tag)) for tag in (_XP_TITLE, _XP_SUBJECT, _XP_KEYWORDS, _XP_COMMENT)]
    unique = list(dict.fromkeys(text for text in found if text))
    return " ".join(unique)[:_CAPTION_MAX] or None


def _utf16(value: object) -> str:
    """Windows XP* tags: UTF-16LE bytes (Pillow may hand them over as a tuple of byte values)."""
    if isinstance(value, tuple) and all(isinstance(v, int) and 0 <= v < 256 for v in value):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("utf-16-le", errors="replace").replace("\x00", "").strip()
    return _text(value)


def _user_comment(value: object) -> str:
    if not isinstance(value, bytes):
        return _text(value)
    header, body = value[:8], value[8:]
    if header.startswith(b"UNICODE"):
        return body.decode("utf-16-be" if body[:1] == b"\x00" else "utf-16-le", errors="replace").replace("\x00", "").strip()
    return _text(body if header.rstrip(b"\x00 ") in (b"ASCII", b"") else value)


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:
        return {}


def _taken_at(ifd0: dict[int, Any], sub: dict[int, Any]) -> float | None:
    for raw in (sub.get(_DATETIME_ORIGINAL), sub.get(_DATETIME_DIGITIZED), ifd0.get(_DATETIME)):
        when = parse_exif_datetime(raw, sub.get(_OFFSET_TIME_ORIGINAL))
        if when is not None:
            return when
    return None


def parse_exif_datetime(raw: object, offset: object = None) -> float | None:
    """``"2021:07:14 18:03:59"`` (+ optional ``"+02:00"``) to unix seconds; None when invalid."""
    text = _text(raw)
    if not text or text.startswith("0000"):
        return None
    try:
        when = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return when.replace(tzinfo=_offset(offset)).timestamp()


def _offset(raw: object) -> timezone:
    text = _text(raw)
    if text and len(text) == 6 and text[0] in "+-" and text[3] == ":":
        try:
            delta = timedelta(hours=int(text[1:3]), minutes=int(text[4:6]))
        except ValueError:
            return timezone.utc
        return timezone(delta if text[0] == "+" else -delta)
    return timezone.utc


def _camera(make: object, model: object) -> str | None:
    make_text, model_text = _text(make), _text(model)
    if make_text and model_text and model_text.lower().startswith(make_text.lower().split()[0]):
        return model_text  # "Canon" + "Canon EOS R5" reads better once
    joined = " ".join(part for part in (make_text, model_text) if part)
    return joined or None


def _lens(make: object, model: object) -> str | None:
    make_text, model_text = _text(make), _text(model)
    if not model_text:
        return None
    if make_text and not model_text.lower().startswith(make_text.lower().split()[0]):
        return f"{make_text} {model_text}"
    return model_text


def _coordinate(value: object, ref: object, negative_ref: str, limit: float) -> float | None:
    """(degrees, minutes, seconds) rationals -> decimal degrees; also takes (d, m) and (d,) as some writers do."""
    try:
        parts = [float(part) for part in value]  # type: ignore[attr-defined]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not 1 <= len(parts) <= 3 or any(not math.isfinite(p) or p < 0 for p in parts):
        return None
    degrees, minutes, seconds = (*parts, 0.0, 0.0)[:3]
    decimal = degrees + minutes / 60.0 + seconds / 3600.0
    if not math.isfinite(decimal) or decimal > limit:
        return None
    if _text(ref).upper().startswith(negative_ref):
        decimal = -decimal
    return round(decimal, 7)


def _orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "").strip()
