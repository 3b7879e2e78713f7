"""Stage 4a: vectors and facts become store points, following the payload contract.

The payload is the one thing the API reads back (the filterable fields are
``search.store.INDEXED_FIELDS``): ``kind``, ``media_id``, ``source``, ``uri``, ``path``/``dirs``
for local files, ``name``, ``taken_at``, ``size_bytes``, ``width``/``height``, ``thumb``,
``model``; plus EXIF for images, ``video_id`` and times for frames and segments, and the
manifest row for products. Point ids are deterministic (``search.ids.point_id``), so writing
the same item twice replaces, never adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.stages.decode import ImageFacts
from ingest.stages.load import Loaded
from ingest.stages.pooling import Window
from search.ids import point_id
from search.media import VideoInfo
from search.store import Point


@dataclass(frozen=True)
class FrameVector:
    t: float
    vector: np.ndarray
    thumb: str


def image_point(loaded: Loaded, facts: ImageFacts, vector: np.ndarray, thumb: str, model: str) -> Point:
    """One point for a photo, or for a product photo (kind ``product``)."""
    item = loaded.item
    kind = "product" if item.product is not None else "image"
    payload = {
        **(item.product.payload() if item.product is not None else {}),
        **facts.exif.payload(),
        **common_payload(loaded, model, facts.exif.taken_at),
        "kind": kind,
        "width": facts.width,
        "height": facts.height,
        "thumb": thumb,
    }
    return Point(point_id(model, item.media_id, kind), vector, payload)


def frame_points(loaded: Loaded, info: VideoInfo, frames: Sequence[FrameVector], model: str) -> list[Point]:
    """One point per sampled frame, each with its own thumbnail."""
    base = video_payload(loaded, info, model)
    video_id = loaded.item.media_id
    return [
        Point(point_id(model, video_id, "frame", t=f.t), f.vector, {**base, "kind": "frame", "t": f.t, "thumb": f.thumb})
        for f in frames
    ]


def segment_points(
    loaded: Loaded, info: VideoInfo, windows: Sequence[Window], frames: Sequence[FrameVector], model: str
) -> list[Point]:
    """One point per window: the mean of its frame vectors, renormalised to unit length."""
    base = video_payload(loaded, info, model)
    video_id = loaded.item.media_id
    points = []
    for window in windows:
        members = [frames[i] for i in window.indices]
        pooled = mean_pool([f.vector for f in members])
        payload = {
            **base,
            "kind": "segment",
            "t_start": window.t_start,
            "t_end": window.t_end,
            "n_frames": len(members),
            "thumb": members[0].thumb,
        }
        pid = point_id(model, video_id, "segment", t=window.t_start, t_end=window.t_end)
        points.append(Point(pid, pooled, payload))
    return points


def video_payload(loaded: Loaded, info: VideoInfo, model: str) -> dict[str, Any]:
    return {
        **common_payload(loaded, model, None),
        "video_id": loaded.item.media_id,
        "duration": info.duration,
        "width": info.width,
        "height": info.height,
    }


def common_payload(loaded: Loaded, model: str, taken_at: float | None) -> dict[str, Any]:
    """Fields every point carries; ``taken_at`` falls back to file mtime, then download time."""
    item = loaded.item
    payload: dict[str, Any] = {
        "media_id": item.media_id,
        "source": item.source_id,
        "uri": item.uri,
        "name": item.name,
        "taken_at": taken_at if taken_at is not None else (loaded.mtime or loaded.fetched_at),
        "size_bytes": loaded.size,
        "model": model,
    }
    if item.path is not None:
        payload["path"] = item.path
        payload["dirs"] = ancestor_dirs(Path(item.path))
    return payload


def ancestor_dirs(path: Path) -> list[str]:
    """Every folder above ``path``, outermost first: ``/a/b/c.jpg`` → ``["/a", "/a/b"]``."""
    parents = [str(p) for p in reversed(path.parents) if str(p) != path.anchor]
    return parents


def mean_pool(vectors: Sequence[np.ndarray]) -> np.ndarray:
    pooled = np.mean(np.stack(vectors), axis=0)
    norm = float(np.linalg.norm(pooled))
    return (pooled / norm if norm > 1e-12 else pooled).astype(np.float32)
