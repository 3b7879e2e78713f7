"""Deterministic identities, so that a redelivered task re-upserts the same points."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1c2a52-4d0e-5b7e-9a61-3c2f1d8e0b47")


def media_id(uri: str) -> str:
    """Stable id of a media item (a file, a URL, a product photo) from its canonical URI."""
    return str(uuid.uuid5(_NAMESPACE, f"media:{uri}"))


def point_id(model: str, media: str, kind: str, t: float | None = None, t_end: float | None = None) -> str:
    """Stable Qdrant point id: model + media identity + kind + frame time (or window)."""
    times = "" if t is None else f"@{t:.3f}"
    if t_end is not None:
        times += f"-{t_end:.3f}"
    return str(uuid.uuid5(_NAMESPACE, f"point:{model}|{media}|{kind}{times}"))
