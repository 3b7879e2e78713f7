"""Stage 2: pixels to model-ready tensors, plus the thumbnails and facts the payload needs.

Runs in the prefetch threads, off the embedding thread: decoding (JPEG draft, EXIF
orientation, any mode to RGB), the model's own preprocessing (resize, crop, normalise) and the
WebP thumbnail all happen here, so the embedder only ever sees finished batches. Video frames
are produced lazily, one at a time, so a long video never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ingest.stages.load import Loaded
from search.errors import MediaError
from search.media import (
    DecodedImage,
    ExifInfo,
    SamplingPlan,
    VideoInfo,
    decode_image,
    effective_rate,
    probe_video,
    sample_frames,
    save_thumbnail,
)
from search.media.shots import ShotTracker
from search.media.thumbnail import frame_thumb_name, image_thumb_name
from search.settings import Settings

_END_SLACK_S = 0.25  # container and stream durations disagree by a frame or two; that is not damage

Preprocess = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class ImageFacts:
    """What the payload and the catalog record about a decoded picture."""

    width: int
    height: int
    mime: str
    exif: ExifInfo
    frame_count: int


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to embed: its tensor, facts and thumbnail (relative to thumbnails_dir)."""

    loaded: Loaded
    tensor: torch.Tensor
    facts: ImageFacts
    thumb: str


@dataclass(frozen=True)
class PreparedFrame:
    """One sampled video frame ready to embed."""

    t: float
    tensor: torch.Tensor
    thumb: str


@dataclass(frozen=True)
class DecodeConfig:
    """The decode stage's knobs, gathered once from settings and the embedder."""

    thumbnails_dir: Path
    thumbnail_size: int
    max_pixels: int
    draft_size: int  # shortest side the model (or the thumbnail) needs
    plan: SamplingPlan

    @classmethod
    def from_settings(cls, settings: Settings, model_input_size: int) -> DecodeConfig:
        ingest = settings.ingest
        draft = max(model_input_size, ingest.thumbnail_size)
        plan = SamplingPlan(
            rate=ingest.frame_rate,
            max_frames=ingest.max_frames_per_video,
            scene_change=ingest.scene_change,
            scene_threshold=ingest.scene_threshold,
            min_side=draft,
        )
        return cls(settings.thumbnails_dir, ingest.thumbnail_size, ingest.max_image_pixels, draft, plan)


def prepare_image(loaded: Loaded, config: DecodeConfig, preprocess: Preprocess) -> PreparedImage:
    """Decode, thumbnail and preprocess one image; raises MediaError/TooLarge."""
    source = loaded.data if loaded.data is not None else loaded.path
    decoded = decode_image(source, config.max_pixels, config.draft_size)
    thumb = image_thumb_name(loaded.item.media_id)
    save_thumbnail(decoded.image, config.thumbnails_dir / thumb, config.thumbnail_size)
    return PreparedImage(loaded, preprocess(decoded.image), _facts(decoded), thumb)


def open_video(loaded: Loaded) -> VideoInfo:
    """Probe a video (raises MediaError for no video stream, corrupt files)."""
    return probe_video(loaded.path)


def prepare_frames(
    loaded: Loaded, info: VideoInfo, config: DecodeConfig, preprocess: Preprocess, shots: ShotTracker | None = None
) -> Iterator[PreparedFrame]:
    """Sampled frames of a video, each thumbnailed and preprocessed, in time order.

    The sampler ends quietly when a stream breaks part-way (a truncated download decodes up to
    the cut and then simply runs out); so after the last frame this raises MediaError when the
    frames stopped well short of the stated duration. The frames already given stay usable:
    the caller indexes them and records the video as partial. ``shots`` sees every sampled
    frame (the histogram pass of shot detection, ``search.media.shots``).
    """
    video_id = loaded.item.media_id
    last_t, count = None, 0
    for frame in sample_frames(loaded.path, config.plan, info):
        thumb = frame_thumb_name(video_id, frame.t)
        save_thumbnail(frame.image, config.thumbnails_dir / thumb, config.thumbnail_size)
        if shots is not None:
            shots.add(frame.t, frame.image)
        yield PreparedFrame(frame.t, preprocess(frame.image), thumb)
        last_t, count = frame.t, count + 1
    if ended_early(last_t, count, info, config.plan):
        raise MediaError("the video stream ends early (the file is truncated or damaged)")


def ended_early(last_t: float | None, count: int, info: VideoInfo, plan: SamplingPlan) -> bool:
    """True when sampling stopped more than one sampling step short of the stated duration.

    A whole stream's last regular sample lies within one interval (and a frame) of its end. A
    sampler that stopped at ``max_frames`` stopped on purpose, and a video that states no
    duration cannot be judged.
    """
    if last_t is None or count >= plan.max_frames or info.duration <= 0:
        return False
    interval = 1.0 / effective_rate(plan, info.duration)
    frame = 1.0 / info.fps if info.fps > 0 else 0.0
    return last_t < info.duration - interval - 2 * frame - _END_SLACK_S


def _facts(decoded: DecodedImage) -> ImageFacts:
    return ImageFacts(decoded.width, decoded.height, decoded.mime, decoded.exif, decoded.frame_count)
