"""EXIF metadata users filter and sort by: when a photo was taken, with what, and where.

Only three facts are kept, each already in the unit the payload stores (unix seconds, a plain
camera string, decimal degrees), so the rest of the code never sees EXIF's rationals, IFD
numbers or "YYYY:MM:DD HH:MM:SS" strings. Broken EXIF is common in the wild and never fatal:
a field that cannot be read is simply absent.
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
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4


@dataclass(frozen=True)
class ExifInfo:
    """The EXIF facts mmsearch indexes; every field is None when the file does not say."""

    taken_at: float | None = None  # unix seconds; local times without an offset are read as UTC
    camera: str | None = None  # "Canon EOS 5D Mark IV"
    gps_lat: float | None = None  # decimal degrees, south negative
    gps_lon: float | None = None  # decimal degrees, west negative
    orientation: int = 1  # EXIF orientation 1..8; 1 means stored upright

    def payload(self) -> dict[str, Any]:
        """The present fields under the payload's names (``taken_at`` is handled by the caller)."""
        fields = {"camera": self.camera, "gps_lat": self.gps_lat, "gps_lon": self.gps_lon}
        return {k: v for k, v in fields.items() if v is not None}


EMPTY_EXIF = ExifInfo()


def read_exif(image: Image.Image) -> ExifInfo:
    """Read date taken, camera and GPS position from an opened (not necessarily loaded) image."""
    try:
        exif = image.getexif()
    except Exception:
        return EMPTY_EXIF
    if not exif:
        return EMPTY_EXIF
    sub = _ifd(exif, _EXIF_IFD)
    gps = _ifd(exif, _GPS_IFD)
    return ExifInfo(
        taken_at=_taken_at(exif, sub),
        camera=_camera(exif.get(_MAKE), exif.get(_MODEL)),
        gps_lat=_coordinate(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "S", 90.0),
        gps_lon=_coordinate(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "W", 180.0),
        orientation=_orientation(exif.get(_ORIENTATION)),
    )


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:
        return {}


def _taken_at(ifd0: Image.Exif, sub: dict[int, Any]) -> float | None:
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


def _coordinate(value: object, ref: object, negative_ref: str, limit: float) -> float | None:
    try:
        degrees, minutes, seconds = (float(part) for part in value)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
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
