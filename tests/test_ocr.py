"""Text in images: rendered English signs and Japanese labels are read, blank photos skipped, huge ones bounded.

Pictures are drawn with Pillow (DejaVu for English, Noto CJK for Japanese) and round-tripped
through JPEG, as photos arrive. Each engine that is installed is tested; one that is missing
is skipped with the reason ``available()`` gives (what to install).
"""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from search.media.ocr import (
    OcrConfig,
    OcrEngine,
    OcrUnavailable,
    available,
    likely_has_text,
    normalise_text,
    plan_tiles,
)
from search.settings import load_settings

LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CJK_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")
ENGINES = ("rapidocr", "tesseract")


def font(size: int, japanese: bool = False) -> ImageFont.FreeTypeFont:
    paths = CJK_FONTS if japanese else (LATIN_FONT,)
    for path in paths:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    pytest.skip(f"no {'CJK' if japanese else 'DejaVu'} font to draw with (apt-get install fonts-noto-cjk fonts-dejavu-core)")


def as_photo(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def street_background(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A soft, noisy backdrop like a wall or a street behind a sign."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0, 1, w)[None, :, None]
    pixels = (90 + 80 * ramp) * np.ones((h, 1, 3)) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def english_sign() -> tuple[Image.Image, list[str]]:
    words = ["PARKING", "EXIT", "OPEN", "TICKETS", "STATION"]
    image = street_background((800, 560))
    draw = ImageDraw.Draw(image)
    draw.rectangle((60, 40, 740, 520), fill=(245, 240, 225), outline=(30, 30, 30), width=6)
    for i, word in enumerate(words):
        draw.text((110, 70 + i * 88), word, font=font(60), fill=(25, 30, 40))
    return as_photo(image), words


def japanese_label() -> tuple[Image.Image, list[str]]:
    words = ["東京駅", "出口", "営業中"]
    image = Image.new("RGB", (640, 420), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    for i, word in enumerate(words):
        draw.text((60, 50 + i * 120), word, font=font(64, japanese=True), fill=(20, 20, 20))
    return as_photo(image), words


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    config = OcrConfig(engine=request.param, languages=("eng", "jpn"), timeout=60.0)
    ok, reason = available(config.languages, engine=config.engine)
    if not ok:
        pytest.skip(f"{request.param} unavailable: {reason}")
    with OcrEngine(config) as opened:
        yield opened


def test_a_rendered_english_sign_is_read(engine: OcrEngine) -> None:
    image, words = english_sign()
    result = engine.read(image)
    assert result.status == "text" and result.engine == engine.name
    read = {token.strip(".,:;!").upper() for token in result.words}
    recall = sum(word in read for word in words) / len(words)
    assert recall >= 0.8, f"{engine.name} read {result.text!r}"


def test_a_rendered_japanese_label_yields_its_characters(engine: OcrEngine) -> None:
    image, words = japanese_label()
    result = engine.read(image)
    squashed = "".join(result.text.split())
    assert result.status == "text"
    assert sum(word in squashed for word in words) >= 2, f"{engine.name} read {result.text!r}"
    assert all(char in squashed for char in "東京駅"), "the station's name comes back as characters, not spaced-out pieces"


def test_a_blank_photo_is_skipped_by_the_pretest(engine: OcrEngine) -> None:
    sky = np.linspace((90, 140, 220), (200, 220, 250), 600)[:, None, :] * np.ones((1, 800, 1))
    photo = as_photo(Image.fromarray(np.clip(sky + np.random.default_rng(3).normal(0, 3, sky.shape), 0, 255).astype(np.uint8)))
    started = time.monotonic()
    result = engine.read(photo)
    assert result.status == "skipped" and "pre-test" in result.reason and result.text == ""
    assert time.monotonic() - started < 1.0, "the pre-test is cheap"
    sign, _ = english_sign()
    assert likely_has_text(sign), "while a sign passes the pre-test"


def test_a_30000_by_200_banner_returns_within_the_timeout_with_a_clear_result(engine: OcrEngine) -> None:
    banner = Image.new("RGB", (30_000, 200), "white")
    draw = ImageDraw.Draw(banner)
    for x in range(0, 30_000, 3_000):
        draw.text((x + 60, 50), "GRAND SALE", font=font(80), fill="black")
    timeout = 4.0
    bounded = OcrEngine(OcrConfig(engine=engine.name, timeout=timeout, max_side=4000))  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        result = bounded.read(banner)
        elapsed = time.monotonic() - started
    finally:
        bounded.close()
    assert result.status in ("text", "timeout"), result
    assert result.scale == 1.0 and result.tiles == 8, "a strip is tiled at full resolution, not shrunk to a sliver"
    assert "read in 8 tiles" in result.reason
    if result.status == "timeout":
        assert "MMSEARCH_OCR__TIMEOUT" in result.reason and "partial" in result.reason
        assert result.tiles_read < result.tiles, "the deadline stopped the reading"
    else:
        assert result.tiles_read == result.tiles
    if engine.name == "tesseract":
        assert elapsed < timeout + 1.5, f"Tesseract stops inside a tile at the deadline; took {elapsed:.1f} s"
    else:  # ONNX Runtime cannot be interrupted: RapidOCR finishes the tile it is in, then stops
        assert elapsed < timeout + 60, f"took {elapsed:.1f} s"
    if result.text:
        assert "SALE" in result.text.upper()


def test_a_huge_picture_is_scaled_to_the_pixel_bound_and_says_so(engine: OcrEngine) -> None:
    big = Image.new("L", (3_000, 2_400), 255)
    ImageDraw.Draw(big).text((200, 900), "HARBOUR", font=font(400), fill=0)
    small = OcrEngine(OcrConfig(engine=engine.name, max_side=1000))  # type: ignore[arg-type]
    try:
        result = small.read(big)
    finally:
        small.close()
    assert result.scale < 0.4 and "scaled from 3000x2400" in result.reason and "MMSEARCH_OCR__MAX_SIDE" in result.reason
    assert "HARBOUR" in result.text.upper()


@pytest.mark.parametrize("size", [(30_000, 200), (200, 30_000), (12_000, 9_000), (800, 600), (4_001, 4_001), (5, 5)])
def test_tiles_stay_within_the_pixel_bound_and_cover_the_picture(size: tuple[int, int]) -> None:
    max_side = 4000
    scale, boxes = plan_tiles(size, max_side)
    width, height = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    assert width * height <= max_side**2 * 1.001
    assert all(right - left <= max_side and bottom - top <= max_side for left, top, right, bottom in boxes)
    covered = np.zeros((min(height, 400), min(width, 400)), bool)  # coverage checked on a coarse grid
    for left, top, right, bottom in boxes:
        ys = slice(top * covered.shape[0] // height, -(-bottom * covered.shape[0] // height))
        xs = slice(left * covered.shape[1] // width, -(-right * covered.shape[1] // width))
        covered[ys, xs] = True
    assert covered.all()


def test_missing_engines_and_languages_are_named_with_what_to_install() -> None:
    ok, reason = available(["eng"], tessdata_dir="/nonexistent/tessdata", engine="tesseract")
    assert not ok and "no Tesseract language data found" in reason and "/nonexistent/tessdata" in reason
    ok, reason = available(["tlh"], engine="auto")
    assert not ok and "does not read tlh" in reason and "apt-get install tesseract-ocr-tlh" in reason
    with pytest.raises(OcrUnavailable, match="OCR is not available"):
        OcrEngine(OcrConfig(engine="tesseract", tessdata_dir="/nonexistent/tessdata"))


def test_the_settings_choose_engine_languages_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSEARCH_OCR__LANGUAGES", '["eng","jpn"]')
    monkeypatch.setenv("MMSEARCH_OCR__ENABLED", "false")
    monkeypatch.setenv("MMSEARCH_OCR__MAX_SIDE", "3000")
    monkeypatch.setenv("MMSEARCH_OCR__ENGINE", "tesseract")
    settings = load_settings()
    assert settings.ocr.enabled is False
    config = OcrConfig.from_settings(settings.ocr)
    assert config.languages == ("eng", "jpn") and config.max_side == 3000 and config.engine == "tesseract"


def test_japanese_spacing_is_joined_and_whitespace_collapsed() -> None:
    assert normalise_text("東京 駅  出口") == "東京駅出口"
    assert normalise_text("  PARKING \t EXIT ") == "PARKING EXIT"
    assert normalise_text("ホテル Tokyo 駅") == "ホテル Tokyo 駅"
