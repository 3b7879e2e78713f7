"""Plain-text formatting of scores, times, prices and metadata for the pages.

Pure functions with no Streamlit in them, so what a card says can be read (and tested)
without rendering anything.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from ui.client import Hit


def timestamp(seconds: float | None) -> str:
    """Video time as a person reads it: 0:07, 1:05, 1:02:03."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def time_range(start: float, end: float) -> str:
    return f"{timestamp(start)}–{timestamp(end)}"


def score(value: float) -> str:
    """Cosine similarity with three decimals: CLIP scores differ in the second decimal."""
    return f"{value:.3f}"


def date(unix_seconds: Any) -> str | None:
    """A payload's ``taken_at`` as a calendar date (UTC), or None when absent or bad."""
    if not isinstance(unix_seconds, (int, float)) or not math.isfinite(unix_seconds):
        return None
    try:
        return dt.datetime.fromtimestamp(float(unix_seconds), tz=dt.timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return None


def price(value: Any, currency: Any = None) -> str | None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}.get(str(currency or "USD").upper())
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"


def size_bytes(value: Any) -> str | None:
    if not isinstance(value, (int, float)) or value < 0:
        return None
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return None  # pragma: no cover - the loop always returns


def _dimensions(width: int | None, height: int | None) -> str | None:
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return f"{width}×{height}"
    return None


def kind_label(kind: str) -> str:
    """The user's word for a point kind."""
    return {
        "image": "photo",
        "frame": "video frame",
        "segment": "video clip",
        "product": "product",
        "video": "video",
        "moment": "moment",
    }.get(kind, kind or "item")


def details(hit: Hit) -> list[str]:
    """The few facts a result card shows under its title, most useful first."""
    if hit.product is not None:
        facts = [price(hit.product.price, hit.product.fields.get("currency")), _join(hit.product.brand, hit.product.category)]
    elif hit.moment is not None:
        facts = [time_range(hit.moment.start, hit.moment.end), hit.name]
    elif hit.kind in ("frame", "segment"):
        facts = [f"at {timestamp(hit.t)}" if hit.t is not None else None, hit.name]
    else:
        facts = [_dimensions(hit.width, hit.height), date(hit.taken_at), hit.metadata.get("camera")]
    return [str(fact) for fact in facts if fact]


def caret(query: str, position: int | None) -> str | None:
    """The query with a ^ under the character a syntax error points at (for a code block)."""
    if position is None or position < 0:
        return None
    position = min(position, len(query))
    return f"{query}\n{' ' * position}^"


def _join(*parts: Any) -> str | None:
    shown = [str(p) for p in parts if p not in (None, "")]
    return " · ".join(shown) or None
