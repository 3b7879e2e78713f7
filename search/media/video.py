"""Video probing and frame sampling with PyAV.

Sampling decodes the stream sequentially (every frame must be decoded anyway for inter-frame
codecs) but converts to RGB only the frames it keeps, which is where the time goes: measured
here about 22x realtime at 360p for 1 frame/s. Conversion scales straight to the size the model
needs. PyAV reports a phone video's rotation on each frame without turning the pixels, so the
sampler applies it; otherwise portrait clips would be embedded lying on their side.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from PIL import Image

from search.errors import MediaError

log = logging.getLogger(__name__)

_SCENE_SIZE = (64, 36)  # colour thumbnail compared between consecutive frames
_MIN_SCENE_GAP_S = 0.25  # a flash or a fade must not produce a burst of frames
_SEEK_MIN_SKIP_S = 0.25  # seek to the next keyframe only if it skips at least this much video


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns; ``width``/``height`` are as displayed (rotation applied)."""

    duration: float  # seconds; 0.0 when neither the container nor the stream says
    fps: float
    codec: str
    width: int
    height: int
    rotation: int  # degrees counter-clockwise the decoded pixels are turned for display
    frame_count: int | None
    has_audio: bool
    container: str


@dataclass(frozen=True)
class SamplingPlan:
    """How frames are picked from a video (defaults match the ingest settings)."""

    rate: float = 1.0  # frames per second at regular intervals
    max_frames: int = 3600  # the rate is lowered for long videos so samples span all of it
    scene_change: bool = False  # also keep the first frame after a cut
    scene_threshold: float = 0.35  # mean absolute RGB difference, 0..1, that counts as a cut
    min_side: int | None = None  # convert kept frames to this shortest side (None: full size)
    decode_threads: int = 0  # codec threads; 0 lets FFmpeg pick
    seek: str = "auto"  # "auto"/"always": decode from the keyframe before each sample, skipping groups
    # of pictures with no sample (see ``seek_keyframes``); "never": decode every frame


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame: its time from the start of the video and its upright RGB pixels."""

    t: float
    image: Image.Image
    scene_change: bool = False


def probe_video(path: Path) -> VideoInfo:
    """Open ``path`` and decode its first frame; raise MediaError for anything unusable."""
    with _open(path) as container:
        stream = _video_stream(container)
        first = _first_frame(container, stream)
        rotation = _rotation(first)
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        return VideoInfo(
            duration=_duration(container, stream),
            fps=float(stream.guessed_rate or stream.average_rate or 0.0),
            codec=stream.codec_context.name,
            width=width,
            height=height,
            rotation=rotation,
            frame_count=int(stream.frames) or None,
            has_audio=bool(container.streams.audio),
            container=container.format.name,
        )


def sample_frames(path: Path, plan: SamplingPlan, info: VideoInfo | None = None) -> Iterator[VideoFrame]:
    """Yield frames at ``plan.rate`` per second (plus scene cuts when asked), in time order.

    Raises MediaError when no frame at all can be decoded. A stream that breaks part-way (a
    truncated download) ends the iteration with a logged warning: the frames before the damage
    are still worth indexing.
    """
    info = info or probe_video(path)
    interval = 1.0 / effective_rate(plan, info.duration)
    keyframes = seek_keyframes(path, plan)
    if keyframes is not None:
        yield from _sample_by_seeking(path, plan, info, interval, keyframes)
        return
    yielded = 0
    with _open(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        if plan.decode_threads:
            stream.codec_context.thread_count = plan.decode_threads
        origin = _start_seconds(stream)
        picker = _Picker(interval, plan)
        try:
            for index, frame in enumerate(container.decode(stream)):
                t = _frame_time(frame, origin, index, info.fps)
                keep, cut = picker.decide(t, frame)
                if not keep:
                    continue
                yield VideoFrame(round(t, 3), _to_image(frame, info.rotation, plan.min_side), cut)
                yielded += 1
                if yielded >= plan.max_frames:
                    return
        except av.error.FFmpegError as exc:
            if yielded == 0:
                raise MediaError(f"corrupt video: no frame could be decoded ({exc})") from exc
            log.warning("video %s is damaged after %.1fs; keeping %d frames: %s", path, picker.last_t, yielded, exc)
            return
    if yielded == 0:
        raise MediaError("corrupt video: the video stream holds no decodable frames")


def seek_keyframes(path: Path, plan: SamplingPlan) -> list[float] | None:
    """The keyframe times to sample by (``_sample_by_seeking``), or None to decode every frame.

    Sampling by keyframes decodes, in each keyframe's group of pictures, only the frames from
    the keyframe up to the last sample in it, and skips whole groups with no sample; it never
    decodes more than sequential decoding does, at the price of one pass over the packets to
    find the keyframes. So ``auto`` takes it whenever the video has keyframes to seek to (one
    frame per second from a phone video with a keyframe a second decodes one frame in 30);
    scene-change sampling must see every frame.
    """
    if plan.scene_change or plan.seek == "never":
        return None
    keyframes = keyframe_times(path)
    return keyframes if plan.seek == "always" or len(keyframes) >= 2 else None


def keyframe_times(path: Path) -> list[float]:
    """Times (s, from the stream's start) of the video stream's keyframes, read from the
    container's packets without decoding anything."""
    times: list[float] = []
    with _open(path) as container:
        stream = _video_stream(container)
        origin = _start_seconds(stream)
        try:
            for packet in container.demux(stream):
                if packet.is_keyframe and packet.pts is not None:
                    times.append(float(packet.pts * packet.time_base) - origin)
        except av.error.FFmpegError as exc:  # a damaged tail: decoding will report it, with the time reached
            log.debug("video %s: packets unreadable after %d keyframes: %s", path, len(times), exc)
    return sorted(times)


def _sample_by_seeking(
    path: Path, plan: SamplingPlan, info: VideoInfo, interval: float, keyframes: list[float]
) -> Iterator[VideoFrame]:
    """One frame per grid time, decoding forward from the keyframe before it; a seek happens
    only when that keyframe lies well past what was already decoded (a new group of pictures:
    decoding on to it would cost more than the seek), so several samples in one group share
    one decoding run."""
    yielded = 0
    with _open(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        if plan.decode_threads:
            stream.codec_context.thread_count = plan.decode_threads
        origin = _start_seconds(stream)
        frames: Iterator[av.VideoFrame] | None = None  # the decoding run in progress
        t_next, last_t = 0.0, -1.0
        while yielded < plan.max_frames and (info.duration <= 0 or t_next < info.duration):
            try:
                keyframe = _keyframe_before(keyframes, t_next)
                if frames is None or keyframe > last_t + _SEEK_MIN_SKIP_S:
                    container.seek(int((keyframe + origin) / _time_base(stream)), stream=stream, backward=True, any_frame=False)
                    frames = iter(container.decode(stream))
                frame, t = _first_at_or_after(frames, origin, t_next, last_t, info.fps)
            except av.error.FFmpegError as exc:
                if yielded == 0:
                    raise MediaError(f"corrupt video: no frame could be decoded ({exc})") from exc
                log.warning("video %s is damaged after %.1fs; keeping %d frames: %s", path, last_t, yielded, exc)
                return
            if frame is None:
                break
            yield VideoFrame(round(t, 3), _to_image(frame, info.rotation, plan.min_side))
            yielded += 1
            last_t = t
            steps = int((t - t_next) / interval + 1e-9) + 1
            t_next += steps * interval
    if yielded == 0:
        raise MediaError("corrupt video: the video stream holds no decodable frames")


def _keyframe_before(keyframes: list[float], t: float) -> float:
    """The last keyframe time at or before ``t`` (0 when the list has none that early)."""
    index = bisect.bisect_right(keyframes, t + 1e-6)
    return keyframes[index - 1] if index else 0.0


def _first_at_or_after(
    frames: Iterator[av.VideoFrame], origin: float, target: float, after: float, fps: float
) -> tuple[av.VideoFrame | None, float]:
    for index, frame in enumerate(frames):
        t = _frame_time(frame, origin, index, fps)
        if t >= target - 1e-6 and t > after + 1e-6:
            return frame, t
    return None, 0.0


def effective_rate(plan: SamplingPlan, duration: float) -> float:
    """The sampling rate, lowered so that ``max_frames`` regular samples cover the whole video."""
    if duration > 0 and plan.rate * duration > plan.max_frames:
        return plan.max_frames / duration
    return plan.rate


class _Picker:
    """Decides, frame by frame, which frames to keep: on the regular grid, or after a cut."""

    def __init__(self, interval: float, plan: SamplingPlan) -> None:
        self.interval = interval
        self.plan = plan
        self.next_t = 0.0
        self.last_t = float("-inf")
        self._previous: np.ndarray | None = None

    def decide(self, t: float, frame: av.VideoFrame) -> tuple[bool, bool]:
        cut = self.plan.scene_change and self._is_cut(frame) and t - self.last_t >= _MIN_SCENE_GAP_S
        on_grid = t >= self.next_t - 1e-6
        if not (on_grid or cut):
            return False, False
        if on_grid:
            steps = int((t - self.next_t) / self.interval + 1e-9) + 1
            self.next_t += steps * self.interval  # a gap in the stream skips grid points
        self.last_t = t
        return True, cut and not on_grid

    def _is_cut(self, frame: av.VideoFrame) -> bool:
        # colour, not grey: a cut between two equally bright scenes (red to blue) is still a cut
        small = frame.reformat(width=_SCENE_SIZE[0], height=_SCENE_SIZE[1], format="rgb24").to_ndarray()
        small = small.astype(np.float32)
        previous, self._previous = self._previous, small
        if previous is None:
            return False
        return float(np.abs(small - previous).mean()) / 255.0 > self.plan.scene_threshold


def _open(path: Path) -> av.container.InputContainer:
    try:
        if Path(path).stat().st_size == 0:
            raise MediaError("empty file (0 bytes)")
        return av.open(str(path), mode="r")
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc
    except av.error.FFmpegError as exc:
        raise MediaError(f"corrupt or unsupported video: {_ffmpeg_reason(exc)}") from exc


def _video_stream(container: av.container.InputContainer) -> av.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:  # cover art is not video
            return stream
    audio = container.streams.audio
    if audio:
        codec = audio[0].codec_context.name
        raise MediaError(f"no video stream: the file holds only audio ({codec})")
    raise MediaError("no video stream in the file")


def _first_frame(container: av.container.InputContainer, stream: av.VideoStream) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise MediaError(f"corrupt video: the first frame cannot be decoded ({_ffmpeg_reason(exc)})") from exc
    raise MediaError("corrupt video: the video stream holds no decodable frames")


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    rate = stream.guessed_rate or stream.average_rate
    if stream.frames and rate:
        return float(stream.frames / Fraction(rate))
    return 0.0


def _start_seconds(stream: av.VideoStream) -> float:
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _frame_time(frame: av.VideoFrame, origin: float, index: int, fps: float) -> float:
    if frame.time is not None:
        return max(0.0, frame.time - origin)
    return index / fps if fps else float(index)


def _rotation(frame: av.VideoFrame) -> int:
    """The frame's display rotation rounded to a quarter turn, in 0..359."""
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, ValueError):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


_TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def _to_image(frame: av.VideoFrame, rotation: int, min_side: int | None) -> Image.Image:
    width, height = frame.width, frame.height
    if min_side and min(width, height) > min_side:
        scale = min_side / min(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    image = frame.to_image(width=width, height=height)
    return image.transpose(_TRANSPOSE[rotation]) if rotation in _TRANSPOSE else image


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _time_base(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's time base; FFmpeg always sets one on a decodable stream."""
    if stream.time_base is None:
        raise MediaError("the video stream has no time base")
    return stream.time_base
