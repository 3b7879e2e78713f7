"""Stage 4a: vectors and facts become store points, each payload built as its typed contract.

The payload classes in ``search.payload`` say what each kind of point carries and which fields
are indexed; this stage only fills them in from what the earlier stages found. What keyword
search matches (``words``: file and folder names, camera, the manifest's title, brand, SKU and
text columns, and the ``text`` found inside the media) is derived by the payload itself. Point ids are
deterministic (``search.ids.point_id``), so writing the same item twice replaces, never adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ingest.stages.decode import ImageFacts
from ingest.stages.load import Loaded
from ingest.stages.pooling import Window
from search.ids import point_id
from search.media import VideoInfo
from search.payload import FramePayload, ImagePayload, ProductPayload, SegmentPayload
from search.store import Point


@dataclass(frozen=True)
class FrameVector:
    t: float
    vector: np.ndarray
    thumb: str


def image_point(loaded: Loaded, facts: ImageFacts, vector: np.ndarray, thumb: str, model: str) -> Point:
    """One point for a photo, or for a product photo (kind ``product``)."""
    item = loaded.item
    exif = facts.exif
    photo = {
        **origin(loaded, model, exif.taken_at),
        "width": facts.width,
        "height": facts.height,
        "thumb": thumb,
        "camera": exif.camera,
        "gps_lat": exif.gps_lat,
        "gps_lon": exif.gps_lon,
        "text": exif.searchable,  # captions and lens; file, folder and product words are derived (search.payload)
    }
    product = item.product
    payload: ImagePayload | ProductPayload
    if product is None:
        payload = ImagePayload(**photo)
    else:
        payload = ProductPayload(
            **photo,
            product_id=product.product_id,
            title=product.title,
            category=product.category,
            brand=product.brand,
            price=product.price,
            extra=dict(product.extra),
        )
    return Point(point_id(model, item.media_id, payload.kind), vector, payload.to_payload())


def frame_points(loaded: Loaded, info: VideoInfo, frames: Sequence[FrameVector], model: str) -> list[Point]:
    """One point per sampled frame, each with its own thumbnail."""
    video_id = loaded.item.media_id
    base = FramePayload(**video_fields(loaded, info, model), t=0.0)
    return [
        Point(point_id(model, video_id, "frame", t=f.t), f.vector, replace(base, t=f.t, thumb=f.thumb).to_payload())
        for f in frames
    ]


def segment_points(
    loaded: Loaded, info: VideoInfo, windows: Sequence[Window], frames: Sequence[FrameVector], model: str
) -> list[Point]:
    """One point per window: the mean of its frame vectors, renormalised to unit length."""
    video_id = loaded.item.media_id
    fields = video_fields(loaded, info, model)
    points = []
    for window in windows:
        members = [frames[i] for i in window.indices]
        payload = SegmentPayload(
            **fields, t_start=window.t_start, t_end=window.t_end, n_frames=len(members), thumb=members[0].thumb
        )
        pid = point_id(model, video_id, "segment", t=window.t_start, t_end=window.t_end)
        points.append(Point(pid, mean_pool([f.vector for f in members]), payload.to_payload()))
    return points


def video_fields(loaded: Loaded, info: VideoInfo, model: str) -> dict[str, Any]:
    """Constructor arguments shared by a video's frame and segment payloads."""
    return {
        **origin(loaded, model, None),
        "video_id": loaded.item.media_id,
        "duration": info.duration,
        "width": info.width,
        "height": info.height,
    }


def origin(loaded: Loaded, model: str, taken_at: float | None) -> dict[str, Any]:
    """Constructor arguments every payload shares: where the media is and when it was taken
    (``taken_at`` falls back to the file's mtime, then to the download time)."""
    item = loaded.item
    return {
        "media_id": item.media_id,
        "source": item.source_id,
        "uri": item.uri,
        "name": item.name,
        "model": model,
        "taken_at": taken_at if taken_at is not None else (loaded.mtime or loaded.fetched_at),
        "size_bytes": loaded.size,
        "path": item.path,
        "dirs": tuple(ancestor_dirs(Path(item.path))) if item.path is not None else (),
    }


def ancestor_dirs(path: Path) -> list[str]:
    """Every folder above ``path``, outermost first: ``/a/b/c.jpg`` → ``["/a", "/a/b"]``."""
    parents = [str(p) for p in reversed(path.parents) if str(p) != path.anchor]
    return parents


def mean_pool(vectors: Sequence[np.ndarray]) -> np.ndarray:
    pooled = np.mean(np.stack(vectors), axis=0)
    norm = float(np.linalg.norm(pooled))
    return (pooled / norm if norm > 1e-12 else pooled).astype(np.float32)
