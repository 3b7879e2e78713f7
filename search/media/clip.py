"""Cut a span [start, end) out of a video as a small MP4 that any player opens.

Two ways, chosen per request:

- stream copy (fast, lossless): when a keyframe lies at most ``keyframe_tolerance`` seconds
  before ``start``, the packets from that keyframe to ``end`` are copied as they are (video and
  audio), so the clip starts up to that much early;
- re-encode (exact): otherwise the frames from the keyframe before ``start`` are decoded, those
  before ``start`` dropped, and the span encoded with libx264 (video only: a re-encoded clip is
  a preview of the moment, and audio re-encoding would double the work).

Both are bounded: the span is capped at ``max_seconds`` and the work at ``deadline_s``
(ClipError when exceeded), and the output goes to a path the caller chose in its temporary
area, written under a temporary name and renamed when complete, so a reader never sees half a
clip.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import av.error

from search.errors import MediaError

_SEEK_BACK_S = 30.0  # how far before ``start`` a keyframe is looked for, at most


class ClipError(MediaError):
    """A clip that cannot be cut: bad span, no video stream, undecodable, or over its deadline."""


@dataclass(frozen=True)
class ClipPlan:
    """Limits of clip export (from the settings)."""

    max_seconds: float = 300.0
    keyframe_tolerance: float = 1.0  # seconds a stream-copied clip may start early
    deadline_s: float = 60.0


@dataclass(frozen=True)
class Clip:
    """What was written: the span it really covers and how it was made."""

    path: Path
    start: float  # seconds in the source: the keyframe's time for a copied clip
    end: float
    method: str  # "copy" or "encode"


def check_span(start: float, end: float, plan: ClipPlan) -> None:
    """ClipError unless 0 <= start < end and the span is within ``plan.max_seconds``."""
    if not (start >= 0 and end > start):
        raise ClipError(f"A clip needs 0 <= start < end (got start={start:g}, end={end:g}).")
    if end - start > plan.max_seconds:
        raise ClipError(f"A clip may be at most {plan.max_seconds:g} s long (asked for {end - start:g} s).")


def export_clip(source: Path | BinaryIO, start: float, end: float, out: Path, plan: ClipPlan) -> Clip:
    """Write the span as MP4 to ``out``; stream copy when a keyframe is close enough before it."""
    check_span(start, end, plan)
    deadline = time.monotonic() + plan.deadline_s
    keyframe = _keyframe_before(source, start)
    partial = out.with_name(f".{out.name}.{os.getpid()}.part")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if keyframe is not None and start - keyframe <= plan.keyframe_tolerance:
            clip = _copy(source, keyframe, end, partial, deadline)
        else:
            clip = _encode(source, start, end, partial, deadline)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return Clip(out, clip[0], clip[1], clip[2])


def _open(source: Path | BinaryIO) -> av.container.InputContainer:
    if not isinstance(source, Path):
        source.seek(0)
    try:
        return av.open(source if not isinstance(source, Path) else str(source), mode="r")
    except av.error.FFmpegError as exc:
        raise ClipError(f"the video cannot be opened ({getattr(exc, 'strerror', None) or type(exc).__name__})") from exc


def _video(container: av.container.InputContainer) -> av.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise ClipError("the file holds no video stream")


def _keyframe_before(source: Path | BinaryIO, start: float) -> float | None:
    """Time of the last keyframe at or before ``start`` (None if none within _SEEK_BACK_S)."""
    with _open(source) as container:
        stream = _video(container)
        origin = _origin(stream)
        _seek(container, stream, start + origin)
        best = None
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            t = float(packet.pts * packet.time_base) - origin
            if t > start + 1e-6:
                break
            if packet.is_keyframe:
                best = t
        return best if best is not None and start - best <= _SEEK_BACK_S else None


def _seek(container: av.container.InputContainer, stream: av.VideoStream, seconds: float) -> None:
    try:
        container.seek(int(seconds / (stream.time_base or 1)), stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        container.seek(0)


def _origin(stream: av.VideoStream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0


def _copy(source: Path | BinaryIO, keyframe: float, end: float, out: Path, deadline: float) -> tuple[float, float, str]:
    """Remux packets of the video (and audio) stream from ``keyframe`` to ``end``."""
    with _open(source) as container:
        video = _video(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        origin = _origin(video)
        _seek(container, video, keyframe + origin)
        with av.open(str(out), mode="w", format="mp4") as output:
            streams: dict[int, Any] = {video.index: output.add_stream_from_template(video)}
            if audio is not None:
                streams[audio.index] = output.add_stream_from_template(audio)
            shift: dict[int, int] = {}
            last = keyframe
            for packet in container.demux([s for s in (video, audio) if s is not None]):
                _check(deadline)
                if packet.pts is None or packet.dts is None:
                    continue
                t = float(packet.pts * packet.time_base) - origin
                if packet.stream.index == video.index:
                    if t < keyframe - 1e-6:
                        continue
                    if t >= end - 1e-6:
                        break
                    last = max(last, t + float((packet.duration or 0) * packet.time_base))
                elif t < keyframe - 1e-6 or t >= end:
                    continue
                offset = shift.setdefault(packet.stream.index, int((keyframe + origin) / packet.time_base))
                packet.pts -= offset
                packet.dts -= offset
                packet.stream = streams[packet.stream.index]
                output.mux(packet)
    return keyframe, min(max(last, keyframe), end), "copy"


def _encode(source: Path | BinaryIO, start: float, end: float, out: Path, deadline: float) -> tuple[float, float, str]:
    """Decode from the keyframe before ``start`` and encode [start, end) with libx264."""
    with _open(source) as container:
        video = _video(container)
        origin = _origin(video)
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        _seek(container, video, start + origin)
        with av.open(str(out), mode="w", format="mp4") as output:
            encoder = output.add_stream("libx264", rate=rate)
            encoder.width = video.codec_context.width // 2 * 2
            encoder.height = video.codec_context.height // 2 * 2
            encoder.pix_fmt = "yuv420p"
            encoder.options = {"preset": "veryfast", "crf": "23"}
            first = None
            last = start
            count = 0
            for frame in container.decode(video):
                _check(deadline)
                if frame.time is None:
                    continue
                t = frame.time - origin
                if t < start - 1e-6:
                    continue
                if t >= end - 1e-6:
                    break
                first = t if first is None else first
                last = t
                image = frame.reformat(width=encoder.width, height=encoder.height, format="yuv420p")
                image.pts, image.time_base = count, Fraction(1) / rate  # constant rate from the clip's start
                count += 1
                for packet in encoder.encode(image):
                    output.mux(packet)
            if first is None:
                raise ClipError(f"the video has no frame between {start:g} s and {end:g} s")
            for packet in encoder.encode(None):
                output.mux(packet)
    return first, min(end, last + 1.0 / float(rate)), "encode"


def _check(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise ClipError("cutting the clip took too long (deadline exceeded)")
