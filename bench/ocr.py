"""OCR engines on rendered text: word recall per language, junk, seconds per image, and the no-text pre-test.

The procedural world (``synthetic``) extended with text: English and Japanese words drawn with
Pillow as signs (bold words on a board over a scene), labels (words straight on a noisy scene)
and screenshots (small UI text on flat panels). Textless pictures are the world's own scenes,
plain skies and walls, and noisy textures. Measured:

- recall: share of the drawn words found in the engine's text (English: as words, any case;
  Japanese: as substrings once spaces are removed, since Japanese has none between words);
- junk: share of the English output words that were not drawn (noise read as text);
- seconds per image, one thread;
- the pre-test (``search.media.ocr.likely_has_text``): textless images skipped, text images
  wrongly skipped. Fine high-contrast detail (foliage) is meant to pass it: it only has to
  skip what obviously holds no text, and never skip text.

Engines: ``rapidocr`` and ``tesseract``, both through ``search.media.ocr.OcrEngine``; one that
is not installed is reported and skipped. ``seconds`` is wall time, ``cpu_seconds`` the
process's CPU time (the figure that holds on a shared machine); both single-threaded.

    python bench/ocr.py                 # 40 text + 40 textless images, every engine available
    python bench/ocr.py --quick         # 10 + 10
    python bench/ocr.py --engines tesseract
    python bench/ocr.py --engines ''      # the pre-test only

Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.media.ocr import OcrConfig, OcrEngine, available, likely_has_text
from synthetic.render import render_scene
from synthetic.scene import sample_scene

ENGLISH = [
    "EXIT",
    "OPEN",
    "CLOSED",
    "PARKING",
    "COFFEE",
    "STATION",
    "BAKERY",
    "PHARMACY",
    "HOTEL",
    "MUSEUM",
    "TICKETS",
    "SALE",
    "WELCOME",
    "LIBRARY",
    "GARDEN",
    "NORTH",
    "SOUTH",
    "Entrance",
    "Platform",
    "Invoice",
    "Total",
    "Receipt",
    "Settings",
    "Download",
    "Password",
    "Account",
    "Delivery",
    "Kitchen",
    "Bicycle",
    "Harbour",
    "Market",
    "Theatre",
    "Office",
    "Danger",
    "Caution",
    "Airport",
    "Bridge",
    "Tunnel",
    "Orange",
    "Window",
    "Summer",
]
JAPANESE = [
    "出口",
    "入口",
    "東京駅",
    "営業中",
    "駐車場",
    "禁煙",
    "改札口",
    "お会計",
    "ラーメン",
    "新宿",
    "注意",
    "図書館",
    "美術館",
    "切符",
    "薬局",
    "ホテル",
    "本日休業",
    "案内所",
    "北口",
    "南口",
    "受付",
    "営業時間",
    "お手洗い",
    "大阪",
    "京都",
    "売店",
    "喫茶店",
    "非常口",
    "立入禁止",
    "温泉",
]
LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
)
KINDS = ("sign", "label", "screenshot", "caption", "poster")
TEXTLESS_KINDS = ("scene", "sky", "wall", "texture", "foliage")


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    language: str  # "eng" | "jpn" | "" (no text)
    kind: str
    words: tuple[str, ...]


def fonts(candidates: tuple[str, ...]) -> list[str]:
    return [path for path in candidates if os.path.exists(path)]


def scene_background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    return render_scene(sample_scene(rng), max(size)).resize(size).convert("RGB")


def dark(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 70, 3))  # type: ignore[return-value]


def light(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(200, 256, 3))  # type: ignore[return-value]


def render_text_sample(rng: np.random.Generator, language: str, kind: str, font_paths: list[str]) -> Sample:
    pool = ENGLISH if language == "eng" else JAPANESE
    words = tuple(str(w) for w in rng.choice(pool, int(rng.integers(3, 6)), replace=False))
    font_path = str(rng.choice(font_paths))
    if kind == "screenshot":
        image = Image.new("RGB", (900, 600), light(rng))
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, 900, 48), fill=tuple(int(v) for v in rng.integers(40, 120, 3)))
        size, y = int(rng.integers(16, 24)), 80
        for word in words:
            draw.text((40, y), word, font=ImageFont.truetype(font_path, size), fill=dark(rng))
            y += size * 3
        return Sample(image, language, kind, words)
    image = scene_background(rng, (800, 600))
    draw = ImageDraw.Draw(image)
    if kind == "poster":  # a headline too big for small blocks to see repeated strokes in
        image = scene_background(rng, (1600, 1200))
        draw = ImageDraw.Draw(image)
        words = words[:2]
        draw.rectangle((60, 60, 1540, 1140), fill=light(rng))
        for i, word in enumerate(words):
            size = int(rng.integers(220, 300))
            while size > 120 and ImageFont.truetype(font_path, size).getlength(word) > 1380:
                size -= 10
            draw.text((120, 120 + i * 480), word, font=ImageFont.truetype(font_path, size), fill=dark(rng))
        return Sample(image, language, kind, words)
    if kind == "caption":  # small print in a corner of a photo: the hard case for the pre-test
        size, colour = int(rng.integers(13, 18)), (245, 245, 245)
        draw.rectangle((20, 600 - 40 - size * len(words) * 2, 420, 580), fill=(30, 30, 30))
        y = 600 - 30 - size * len(words) * 2
        for word in words:
            draw.text((34, y), word, font=ImageFont.truetype(font_path, size), fill=colour)
            y += size * 2
        return Sample(image, language, kind, words)
    if kind == "sign":
        draw.rectangle((40, 40, 760, 560), fill=light(rng), outline=dark(rng), width=6)
        size, y, colour = int(rng.integers(40, 64)), 70, dark(rng)
    else:  # label: words straight on the scene, dark or light, whichever contrasts
        size, y = int(rng.integers(28, 44)), 40
        mean = float(np.asarray(image.convert("L")).mean())
        colour = dark(rng) if mean > 110 else light(rng)
    for word in words:
        draw.text((int(rng.integers(60, 160)), y), word, font=ImageFont.truetype(font_path, size), fill=colour)
        y += int(size * 1.6)
    return Sample(image, language, kind, words)


def render_textless_sample(rng: np.random.Generator, kind: str) -> Sample:
    w, h = 800, 600
    if kind == "scene":
        return Sample(scene_background(rng, (w, h)), "", kind, ())
    if kind == "sky":
        top, bottom = rng.integers(60, 200, 3), rng.integers(150, 256, 3)
        ramp = np.linspace(0.0, 1.0, h)[:, None, None]
        pixels = top * (1 - ramp) + bottom * ramp + rng.normal(0, 2, (h, w, 3))
        return Sample(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), "", kind, ())
    if kind == "wall":
        base = rng.integers(80, 230, 3)
        pixels = base + rng.normal(0, 6, (h // 4, w // 4, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
        return Sample(image.filter(ImageFilter.GaussianBlur(1.5)), "", kind, ())
    if kind == "foliage":  # fine, high-contrast detail: the pre-test should let this through (and does)
        pixels = rng.normal(110, 70, (h // 2, w // 2, 3))
        return Sample(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize((w, h)), "", kind, ())
    pixels = rng.normal(128, float(rng.uniform(20, 50)), (h // 6, w // 6, 3))  # texture: sand, gravel
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    return Sample(image, "", kind, ())


def dataset(n_text: int, n_textless: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    latin, cjk = fonts(LATIN_FONTS), fonts(CJK_FONTS)
    languages = ["eng"] + (["jpn"] if cjk else [])
    if not cjk:
        print("no CJK font found (apt-get install fonts-noto-cjk): Japanese is not measured", file=sys.stderr)
    samples = []
    for i in range(n_text):
        language = languages[i % len(languages)]
        samples.append(
            render_text_sample(rng, language, KINDS[(i // len(languages)) % len(KINDS)], latin if language == "eng" else cjk)
        )
    samples += [render_textless_sample(rng, TEXTLESS_KINDS[i % len(TEXTLESS_KINDS)]) for i in range(n_textless)]
    return samples


def found_words(sample: Sample, text: str) -> int:
    if sample.language == "jpn":
        squashed = "".join(text.split())
        return sum(word in squashed for word in sample.words)
    tokens = {token.strip(".,:;!?'\"()[]|").upper() for token in text.split()}
    return sum(word.upper() in tokens for word in sample.words)


def junk_words(sample: Sample, text: str) -> tuple[int, int]:
    """(output words not drawn, output words) for English samples; words = alphanumeric tokens of 2+ characters."""
    truth = {w.upper() for w in sample.words}
    tokens = [t.strip(".,:;!?'\"()[]|").upper() for t in text.split()]
    tokens = [t for t in tokens if len(t) >= 2 and any(c.isalnum() for c in t)]
    return sum(t not in truth for t in tokens), len(tokens)


def make_reader(name: str, languages: tuple[str, ...]) -> Callable[[Image.Image], str]:
    engine = OcrEngine(OcrConfig(engine=name, languages=languages, skip_textless=False))  # type: ignore[arg-type]
    return lambda image: engine.read(image).text


def measure_engine(name: str, samples: list[Sample], languages: tuple[str, ...]) -> dict[str, float]:
    read = make_reader(name, languages)
    read(samples[0].image)  # warm-up: first-call allocations are not per-image cost
    figures: dict[str, float] = {}
    seconds: list[float] = []
    cpu: list[float] = []
    for language in languages:
        texts = [s for s in samples if s.language == language]
        found: dict[int, int] = {}
        junk = output = 0
        for sample in texts:
            started, cpu_started = time.perf_counter(), time.process_time()
            text = read(sample.image)
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            found[id(sample)] = found_words(sample, text)
            if language == "eng":
                bad, count = junk_words(sample, text)
                junk, output = junk + bad, output + count
        figures[f"{language}_recall"] = round(sum(found.values()) / max(1, sum(len(s.words) for s in texts)), 3)
        if language == "eng":
            figures["eng_junk"] = round(junk / max(1, output), 3)
        for kind in KINDS:
            of_kind = [s for s in texts if s.kind == kind]
            if of_kind:
                hits = sum(found[id(s)] for s in of_kind)
                figures[f"{language}_{kind}_recall"] = round(hits / sum(len(s.words) for s in of_kind), 3)
    figures["seconds_per_image"] = round(float(np.mean(seconds)), 3)
    figures["cpu_seconds_per_image"] = round(float(np.mean(cpu)), 3)  # the figure that holds on a busy machine
    return figures


def measure_pretest(samples: list[Sample]) -> dict[str, float]:
    text = [s for s in samples if s.language]
    textless = [s for s in samples if not s.language]
    started = time.perf_counter()
    verdicts = [likely_has_text(s.image) for s in samples]
    per_image_ms = (time.perf_counter() - started) * 1000 / max(1, len(samples))
    by_sample = dict(zip(map(id, samples), verdicts))
    figures = {
        "pretest_textless_skipped": round(sum(not by_sample[id(s)] for s in textless) / max(1, len(textless)), 3),
        "pretest_text_wrongly_skipped": round(sum(not by_sample[id(s)] for s in text) / max(1, len(text)), 3),
        "pretest_ms_per_image": round(per_image_ms, 2),
    }
    for kind in TEXTLESS_KINDS:
        of_kind = [s for s in textless if s.kind == kind]
        if of_kind:
            figures[f"pretest_{kind}_skipped"] = round(sum(not by_sample[id(s)] for s in of_kind) / len(of_kind), 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 text and 10 textless images")
    parser.add_argument("--text", type=int, default=60, help="text images (half English, half Japanese)")
    parser.add_argument("--textless", type=int, default=60, help="images without text, for the pre-test")
    parser.add_argument("--engines", default="tesseract,rapidocr")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    n_text, n_textless = (10, 10) if args.quick else (args.text, args.textless)
    samples = dataset(n_text, n_textless, args.seed)
    languages = tuple(sorted({s.language for s in samples if s.language}))
    results: dict[str, object] = {"text_images": n_text, "textless_images": n_textless, "languages": list(languages)}
    print(f"{n_text} text images ({', '.join(languages)}; {', '.join(KINDS)}), {n_textless} without text")
    for name in filter(None, args.engines.split(",")):
        if name not in ("rapidocr", "tesseract"):
            parser.error(f"unknown engine {name!r}: rapidocr, tesseract, or an empty list for the pre-test only")
        ok, reason = available(languages, engine=name)  # type: ignore[arg-type]
        if not ok:
            print(f"{name:>10}: skipped, {reason}")
            results[name] = {"skipped": reason}
            continue
        figures = measure_engine(name, samples, languages)
        results[name] = figures
        cells = "  ".join(f"{key}={value}" for key, value in figures.items())
        print(f"{name:>10}: {cells}")
    pretest = measure_pretest(samples)
    results["pretest"] = pretest
    print("   pretest: " + "  ".join(f"{key}={value}" for key, value in pretest.items()))
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main()
