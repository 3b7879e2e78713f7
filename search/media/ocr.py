"""Text in images (signs, labels, screenshots, scans), read by a real OCR engine, bounded in size and time.

Two engines, chosen by ``OcrConfig.engine`` (``MMSEARCH_OCR__ENGINE``); ``auto`` prefers
RapidOCR and falls back to Tesseract. ``bench/ocr.py`` measured both on rendered English and
Japanese text (README: "Text in images"): RapidOCR's bundled PP-OCRv6 models found 99 % of
the English and 95 % of the Japanese words, Tesseract 92 % and 47 %, in a tenth of RapidOCR's
CPU time (0.12 against 1.2 s per image). Recall is what search needs, so RapidOCR is the
default; Tesseract is the fast choice for archives with little Japanese.

Bounds, so one hostile or huge picture cannot stall an enrichment worker:

- pixels: an image is scaled down until it holds at most ``max_side``² pixels; a long strip
  (a 30,000 x 200 banner) keeps its resolution and is read in ``max_side``-long tiles instead
  of being shrunk to an unreadable sliver;
- time: ``timeout`` seconds per image, all tiles together (Tesseract also stops inside a tile);
  an image that runs out gets status ``timeout`` with whatever text was read before;
- work: a cheap pre-test (``likely_has_text``: runs of strong edges across rows and columns of
  a small grayscale copy) skips pictures that obviously hold no text: skies, walls, smooth
  scenes. It errs towards reading: textured photos pass it and are read.

An engine is not thread-safe: make one ``OcrEngine`` per worker thread (calls are serialised).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from search.errors import MMSearchError

from .image import to_rgb
from .ocr_engines import RapidReader, TesseractReader, TileReader, rapidocr_available, tesseract_available

OcrStatus = Literal["text", "no_text", "skipped", "timeout"]
EngineName = Literal["auto", "rapidocr", "tesseract"]

_CJK = r"\u3000-\u303f\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")
_TILE_OVERLAP = 64  # pixels two tiles share, so a word cut by a tile edge is whole in one of them


class OcrUnavailable(MMSearchError):
    """tesserocr or a language's data is missing; the message names what to install."""


@dataclass(frozen=True)
class OcrConfig:
    """The knobs of text extraction (from ``Settings.ocr``, or set directly in tests and benches)."""

    engine: EngineName = "auto"  # auto: RapidOCR when installed, else Tesseract
    languages: tuple[str, ...] = ("eng", "jpn")  # Tesseract's codes; RapidOCR's bundled model reads these too
    max_side: int = 4000  # an image keeps at most max_side² pixels; longer strips are tiled
    timeout: float = 20.0  # seconds of recognition per image, all tiles together
    skip_textless: bool = True  # run the cheap pre-test first
    min_confidence: float = 40.0  # words Tesseract is less sure of (0..100) are dropped as noise
    page_mode: int = 11  # Tesseract's page segmentation mode; 11 = sparse text, in no particular order (photos, signs)
    tessdata_dir: str | None = None  # Tesseract: None = the first system folder holding the languages
    threads: int = 1  # RapidOCR's ONNX Runtime threads; scale out with workers, not threads

    @classmethod
    def from_settings(cls, ocr: Any) -> OcrConfig:
        """From a ``search.settings.OcrSettings`` (duck-typed, so this module needs no settings import)."""
        return cls(
            engine=ocr.engine,
            languages=tuple(ocr.languages),
            max_side=ocr.max_side,
            timeout=ocr.timeout,
            skip_textless=ocr.skip_textless,
            min_confidence=ocr.min_confidence,
            tessdata_dir=ocr.tessdata_dir,
            threads=ocr.threads,
        )


@dataclass(frozen=True)
class OcrResult:
    """What one image yielded. ``text`` is searchable text: words in reading order, lines joined by newlines."""

    status: OcrStatus
    text: str = ""
    reason: str = ""  # why skipped / timed out, and any downscaling, in words for the job's log
    seconds: float = 0.0
    scale: float = 1.0  # < 1 when the image was scaled down to the pixel bound
    tiles: int = 0  # how many pieces the image was cut into (0 when skipped)
    tiles_read: int = 0  # how many of them were read before the deadline
    languages: tuple[str, ...] = field(default_factory=tuple)
    engine: str = ""  # "rapidocr" or "tesseract"

    @property
    def words(self) -> list[str]:
        return self.text.split()


# -- availability ----------------------------------------------------------------------------


def choose_engine(
    engine: EngineName = "auto", languages: Sequence[str] = ("eng", "jpn"), tessdata_dir: str | None = None
) -> tuple[str | None, str]:
    """(engine name or None, a line saying what runs or why nothing can)."""
    if engine not in ("auto", "rapidocr", "tesseract"):
        return None, f"unknown OCR engine {engine!r} (MMSEARCH_OCR__ENGINE: auto, rapidocr or tesseract)"
    if engine in ("auto", "rapidocr"):
        ok, reason = rapidocr_available(languages)
        if ok or engine == "rapidocr":
            return ("rapidocr" if ok else None), reason
        rapid_reason = reason
    ok, reason = tesseract_available(languages, tessdata_dir)
    if ok:
        return "tesseract", reason
    return None, reason if engine == "tesseract" else f"{rapid_reason}; {reason}"


def available(
    languages: Sequence[str] = ("eng", "jpn"), tessdata_dir: str | None = None, engine: EngineName = "auto"
) -> tuple[bool, str]:
    """(usable, a line for ``mmsearch doctor``): which engine reads which languages, or what to install."""
    name, reason = choose_engine(engine, languages, tessdata_dir)
    return name is not None, reason


# -- the cheap pre-test ------------------------------------------------------------------------

_PRETEST_SCALES = (1_500_000, 100_000)  # pixels of the grayscale copies the pre-test looks at
_EDGE = 30.0  # a strong edge: this much brightness change (0..255) between neighbours
_BLOCK = 24  # pixels per side of the blocks the pre-test scores
_TEXT_RUNS = 2.5  # a text block: edge runs per row plus per column, on average (a lone boundary gives ~1)
_TEXT_BLOCKS = 2  # blocks that look like text before an image is read


def likely_has_text(image: Image.Image) -> bool:
    """False only when the picture obviously holds no text: no area with repeated strokes.

    Text is many thin strokes: along a row through a word, strong edges start again and again,
    and down a column too, while a sky, a wall or a smooth object boundary gives one run at
    most. Each 24-pixel block of a grayscale copy counts edge *runs* (not edge pixels, so blur
    and thick outlines do not add up) per row and per column; two blocks above the threshold
    mean "read it". Two copies are looked at, <= 1.5 megapixels for small print and <= 0.1
    for letters too big to show repeated strokes within 24 pixels (a poster's headline).
    Costs a few tens of milliseconds; thresholds measured by bench/ocr.py.
    """
    gray = image.convert("L")
    return any(_texty_blocks(_small_gray(gray, pixels)) for pixels in _PRETEST_SCALES)


def _texty_blocks(gray: np.ndarray) -> bool:
    if gray.shape[0] < 8 or gray.shape[1] < 8:
        return True  # too small to judge: let the engine decide
    row_runs = _runs(np.abs(np.diff(gray, axis=1)) > _EDGE, axis=1)
    col_runs = _runs(np.abs(np.diff(gray, axis=0)) > _EDGE, axis=0)
    h, w = min(row_runs.shape[0], col_runs.shape[0]), min(row_runs.shape[1], col_runs.shape[1])
    block = min(_BLOCK, h, w)
    bh, bw = h // block, w // block
    runs = row_runs[: bh * block, : bw * block] + col_runs[: bh * block, : bw * block]
    per_block = runs.reshape(bh, block, bw, block).sum(axis=(1, 3)) / block
    return int((per_block >= _TEXT_RUNS).sum()) >= min(_TEXT_BLOCKS, bh * bw)


def _small_gray(gray: Image.Image, pixels: int) -> np.ndarray:
    w, h = gray.size
    scale = min(1.0, math.sqrt(pixels / max(1, w * h)))
    if scale < 1.0:
        gray = gray.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    return np.asarray(gray, dtype=np.float32)


def _runs(edges: np.ndarray, axis: int) -> np.ndarray:
    """1 where a run of edge pixels starts along ``axis``."""
    before = np.zeros_like(edges)
    if axis == 1:
        before[:, 1:] = edges[:, :-1]
    else:
        before[1:, :] = edges[:-1, :]
    return (edges & ~before).astype(np.float32)


# -- bounding the input ------------------------------------------------------------------------


def plan_tiles(size: tuple[int, int], max_side: int) -> tuple[float, list[tuple[int, int, int, int]]]:
    """(scale, boxes in scaled pixels): at most max_side² pixels in all, no box longer than max_side."""
    w, h = size
    scale = min(1.0, max_side / math.sqrt(max(1, w * h)))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    boxes = []
    step = max_side - _TILE_OVERLAP
    for top in range(0, sh, step if sh > max_side else sh):
        for left in range(0, sw, step if sw > max_side else sw):
            boxes.append((left, top, min(sw, left + max_side), min(sh, top + max_side)))
            if left + max_side >= sw:
                break
        if top + max_side >= sh:
            break
    return scale, boxes


# -- the engine --------------------------------------------------------------------------------


class OcrEngine:
    """One OCR engine with its models loaded, reading one image at a time."""

    def __init__(self, config: OcrConfig = OcrConfig()) -> None:
        name, reason = choose_engine(config.engine, config.languages, config.tessdata_dir)
        if name is None:
            raise OcrUnavailable(f"OCR is not available: {reason}")
        self.config = config
        self.name = name
        self.description = reason
        self._lock = threading.Lock()
        self._reader: TileReader | None = (
            RapidReader(config.min_confidence, config.max_side, config.threads)
            if name == "rapidocr"
            else TesseractReader(config.languages, config.tessdata_dir, config.min_confidence, config.page_mode)
        )

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def __enter__(self) -> OcrEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def read(self, image: Image.Image) -> OcrResult:
        """Text in ``image`` (any mode, any size); never raises for the picture's content."""
        started = time.monotonic()
        languages = self.config.languages
        if self.config.skip_textless and not likely_has_text(image):
            reason = "the pre-test found no text-like strokes"
            return OcrResult("skipped", reason=reason, languages=languages, engine=self.name)
        scale, boxes = plan_tiles(image.size, self.config.max_side)
        work = to_rgb(image)
        if scale < 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            work = work.resize(size, Image.Resampling.LANCZOS)
        deadline = started + self.config.timeout
        lines: list[str] = []
        timed_out = False
        read = 0
        with self._lock:
            if self._reader is None:
                raise OcrUnavailable("the OCR engine is closed")
            for box in boxes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                tile_lines, finished = self._reader.read_tile(work.crop(box) if len(boxes) > 1 else work, remaining)
                lines.extend(normalise_text(line) for line in tile_lines)
                read += 1
                if not finished or time.monotonic() > deadline:
                    timed_out = True
                    break
        text = "\n".join(line for line in lines if line)
        notes = []
        if timed_out:
            notes.append(f"stopped after {self.config.timeout:g} s (MMSEARCH_OCR__TIMEOUT); the text is partial")
        if scale < 1.0:
            notes.append(f"scaled from {image.width}x{image.height} to {work.width}x{work.height} (MMSEARCH_OCR__MAX_SIDE)")
        if len(boxes) > 1:
            notes.append(f"read in {len(boxes)} tiles")
        status: OcrStatus = "timeout" if timed_out else ("text" if text else "no_text")
        seconds = time.monotonic() - started
        return OcrResult(status, text, "; ".join(notes), seconds, scale, len(boxes), read, languages, self.name)


def normalise_text(text: str) -> str:
    """Collapse whitespace and join CJK characters Tesseract spaced apart ("東京 駅" -> "東京駅")."""
    collapsed = " ".join(text.split())
    return _SPACE_BETWEEN_CJK.sub("", collapsed)


def read_text(image: Image.Image, config: OcrConfig = OcrConfig()) -> OcrResult:
    """One-off convenience: an engine for one image (loading models costs ~0.1-1 s: reuse an ``OcrEngine``)."""
    with OcrEngine(config) as engine:
        return engine.read(image)


def ocr_status(ocr: Any) -> str:
    """A line for ``mmsearch doctor`` from ``Settings.ocr``; raises OcrUnavailable when OCR is on but cannot run."""
    ok, detail = available(ocr.languages, ocr.tessdata_dir, ocr.engine)
    if not ocr.enabled:
        return f"off (MMSEARCH_OCR__ENABLED=false); {detail}"
    if not ok:
        raise OcrUnavailable(detail)
    return detail
