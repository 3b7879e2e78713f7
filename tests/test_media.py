"""Decoding real files: magic-number sniffing, fast upright RGB images, video probing and sampling."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from search.errors import MediaError, TooLarge
from search.media import SamplingPlan, decode_image, probe_video, sample_frames, save_thumbnail, sniff
from search.media.video import _to_image
from tests._ingest_support import make_audio_only, make_image, make_video


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_sniff_trusts_bytes_not_names(tmp_path: Path) -> None:
    red = Image.new("RGB", (8, 8), "red")
    assert sniff(encoded(red, "JPEG")[:512]).mime == "image/jpeg"
    assert sniff(encoded(red, "PNG")[:512]).mime == "image/png"
    assert sniff(encoded(red, "WEBP")[:512]).mime == "image/webp"
    assert sniff(encoded(red, "GIF")[:512]).mime == "image/gif"
    assert sniff(make_video(tmp_path / "v.mp4", ["red"], 0.5).read_bytes()[:512]).is_video
    assert sniff(make_audio_only(tmp_path / "a.mp4").read_bytes()[:512]).is_video  # the probe tells it apart
    assert sniff(b"<!DOCTYPE html><html>").media_class == "html"
    assert sniff(b"just some words\n").media_class == "text"
    assert sniff(b"%PDF-1.7 ...").mime == "application/pdf"


def test_jpeg_draft_decodes_small_but_reports_the_full_size() -> None:
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 2000, 3), np.uint8))
    decoded = decode_image(encoded(big, "JPEG", quality=85), draft_size=224)
    assert (decoded.width, decoded.height) == (2000, 1500)
    assert 224 <= min(decoded.image.size) < 1500, "draft mode decodes at a reduced scale"
    full = decode_image(encoded(big, "JPEG", quality=85))
    assert full.image.size == (2000, 1500)


def test_exif_orientation_and_date_are_applied() -> None:
    image = Image.new("RGB", (200, 100), "blue")
    image.paste((255, 0, 0), (0, 0, 100, 100))  # red on the left half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    exif[0x0110] = "Pixel 9"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "S", 2: (33.0, 51.0, 36.0), 3: "E", 4: (151.0, 12.0, 54.0)})  # Sydney
    decoded = decode_image(encoded(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert (decoded.width, decoded.height) == (100, 200) and decoded.image.size == (100, 200)
    top = np.asarray(decoded.image)[10, 50]
    assert top[0] > 200 and top[2] < 60, "the stored left half is on top once turned upright"
    assert decoded.exif.taken_at is not None and decoded.exif.camera and "Pixel 9" in decoded.exif.camera
    assert decoded.exif.gps_lat == pytest.approx(-33.86) and decoded.exif.gps_lon == pytest.approx(151.215)


@pytest.mark.parametrize(
    "mode,fmt",
    [("CMYK", "JPEG"), ("P", "PNG"), ("LA", "PNG"), ("I;16", "PNG"), ("RGBA", "WEBP"), ("L", "JPEG"), ("1", "PNG")],
)
def test_every_mode_becomes_rgb(mode: str, fmt: str) -> None:
    source = (
        Image.new("RGBA", (40, 30), (200, 40, 40, 128)).convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.full((30, 40), 40000, np.uint16))
    )
    if mode == "P":
        source.info["transparency"] = 0
    decoded = decode_image(encoded(source, fmt))
    assert decoded.image.mode == "RGB" and decoded.image.size == (40, 30)
    if mode == "I;16":
        assert np.asarray(decoded.image).mean() > 100, "16-bit values are scaled, not clipped to white or black"


def test_animations_give_their_first_frame_and_a_frame_count() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "lime", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    decoded = decode_image(buffer.getvalue())
    assert decoded.frame_count == 3
    r, g, b = np.asarray(decoded.image)[16, 16]
    assert r > 200 and g < 50 and b < 50


def test_unusable_images_raise_clear_media_errors(tmp_path: Path) -> None:
    jpeg = make_image(tmp_path / "a.jpg", "red", (300, 200)).read_bytes()
    with pytest.raises(TooLarge, match="megapixels, over the limit"):
        decode_image(jpeg, max_pixels=10_000)
    with pytest.raises(MediaError, match="truncated"):
        decode_image(jpeg[: len(jpeg) // 2])
    with pytest.raises(MediaError, match="empty file"):
        decode_image(b"")
    with pytest.raises(MediaError, match="not an image: the content is text"):
        decode_image(b"hello, this is text")


def test_thumbnails_are_small_webp_files(tmp_path: Path) -> None:
    image = Image.new("RGB", (1000, 500), "green")
    path = save_thumbnail(image, tmp_path / "t" / "x.webp", 256)
    with Image.open(path) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (256, 128)


def test_video_probe_and_sampling_at_a_chosen_rate(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.mp4", ["red", "green", "blue"], seconds_each=1.0, fps=10, size=(128, 96))
    info = probe_video(path)
    assert info.duration == pytest.approx(3.0, abs=0.1) and info.fps == pytest.approx(10)
    assert (info.codec, info.width, info.height, info.rotation, info.has_audio) == ("h264", 128, 96, 0, False)

    frames = list(sample_frames(path, SamplingPlan(rate=1.0, min_side=64), info))
    assert [f.t for f in frames] == [0.0, 1.0, 2.0]
    assert frames[0].image.size == (85, 64), "kept frames are converted straight to the needed size"
    dominant = [int(np.argmax(np.asarray(f.image)[32, 40])) for f in frames]
    assert dominant == [0, 1, 2], "frame at t shows the colour on screen at t"
    assert len(list(sample_frames(path, SamplingPlan(rate=2.0), info))) == 6
    assert len(list(sample_frames(path, SamplingPlan(rate=5.0, max_frames=4), info))) == 4


def test_scene_change_sampling_keeps_the_cuts(tmp_path: Path) -> None:
    path = make_video(tmp_path / "cuts.mp4", ["red", "blue", "green"], seconds_each=1.3, fps=10)
    plan = SamplingPlan(rate=0.25, scene_change=True, scene_threshold=0.2)
    frames = list(sample_frames(path, plan))
    cuts = [f.t for f in frames if f.scene_change]
    assert cuts == [pytest.approx(1.3, abs=0.11), pytest.approx(2.6, abs=0.11)]


def test_rotation_is_applied_to_pixels() -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # red on the left
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    turned = _to_image(frame, 90, None)
    assert turned.size == (20, 40)
    assert np.asarray(turned)[35, 10][0] > 200, "turned a quarter counter-clockwise, the left half is at the bottom"


def test_videos_without_pictures_are_media_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"no video stream: the file holds only audio \(aac\)"):
        probe_video(make_audio_only(tmp_path / "voice.mp4"))
    clip = make_video(tmp_path / "ok.mp4", ["red"], 1.0).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(clip[: len(clip) // 3])
    with pytest.raises(MediaError, match="corrupt"):
        probe_video(tmp_path / "cut.mp4")
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        probe_video(tmp_path / "zero.mp4")
