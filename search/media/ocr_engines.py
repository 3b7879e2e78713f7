"""The two OCR engines behind ``search.media.ocr``: RapidOCR (PP-OCR models in ONNX) and Tesseract.

Each reader turns one bounded tile (at most ``max_side`` pixels long, RGB) into text lines in
reading order and says whether it finished within the time it was given. Neither reader is
thread-safe; ``OcrEngine`` holds one and serialises calls.

- RapidOCR: the PP-OCRv6 detection and multilingual recognition models ship inside the
  ``rapidocr`` wheel; they are opened by explicit path, so its downloader never runs. ONNX
  Runtime cannot be interrupted mid-run, so its deadline is checked between tiles: a tile's
  cost is bounded by its size instead.
- Tesseract through tesserocr (libtesseract ships in its wheels), language data from the
  system. ``Recognize(timeout=…)`` stops a tile at the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

TESSDATA_CANDIDATES = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
    "/opt/local/share/tessdata",
)
TESSERACT_HINT = "pip install tesserocr, and the language data: apt-get install tesseract-ocr-eng tesseract-ocr-jpn"
RAPIDOCR_HINT = "pip install rapidocr onnxruntime"

# Tesseract language codes -> the languages of RapidOCR's bundled multilingual PP-OCRv6 model.
RAPIDOCR_LANGUAGES = {
    "eng": "en",
    "jpn": "japan",
    "chi_sim": "ch",
    "chi_tra": "chinese_cht",
    "fra": "french",
    "deu": "german",
    "spa": "es",
    "ita": "it",
    "por": "pt",
    "nld": "nl",
}
_RAPID_MODELS = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
    "Cls.model_path": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}


class TileReader(Protocol):
    name: str

    def read_tile(self, image: Image.Image, seconds: float) -> tuple[list[str], bool]:
        """(text lines, finished before ``seconds`` ran out)."""
        ...

    def close(self) -> None: ...


# -- Tesseract -------------------------------------------------------------------------------


def find_tessdata(languages: Sequence[str], tessdata_dir: str | None = None) -> tuple[Path | None, str]:
    """The folder holding every ``<lang>.traineddata``, or None and what is missing where."""
    candidates = [tessdata_dir] if tessdata_dir else list(TESSDATA_CANDIDATES)
    best_missing: list[str] | None = None
    for folder in candidates:
        path = Path(folder)
        if not path.is_dir():
            continue
        missing = [lang for lang in languages if not (path / f"{lang}.traineddata").is_file()]
        if not missing:
            return path, ""
        if best_missing is None or len(missing) < len(best_missing):
            best_missing = missing
    if best_missing is None:
        where = tessdata_dir or ", ".join(TESSDATA_CANDIDATES)
        return None, f"no Tesseract language data found (looked in {where}; apt-get install tesseract-ocr-eng)"
    names = " ".join(f"tesseract-ocr-{lang.replace('_', '-')}" for lang in best_missing)
    return None, f"Tesseract language data missing for {', '.join(best_missing)} (apt-get install {names})"


def tesseract_available(languages: Sequence[str], tessdata_dir: str | None = None) -> tuple[bool, str]:
    try:
        import tesserocr
    except ImportError:
        return False, f"tesserocr is not installed ({TESSERACT_HINT})"
    folder, problem = find_tessdata(languages, tessdata_dir)
    if folder is None:
        return False, problem
    version = (tesserocr.tesseract_version().split() or ["", "?"])[1]
    return True, f"Tesseract {version}, languages {'+'.join(languages)} from {folder}"


class TesseractReader:
    """tesserocr with the languages loaded once; sparse-text layout, for photos and signs."""

    name = "tesseract"

    def __init__(self, languages: Sequence[str], tessdata_dir: str | None, min_confidence: float, page_mode: int) -> None:
        import tesserocr

        folder, problem = find_tessdata(languages, tessdata_dir)
        if folder is None:
            raise RuntimeError(problem)
        self._tesserocr = tesserocr
        self._min_confidence = min_confidence
        self._api: Any = tesserocr.PyTessBaseAPI(
            path=f"{folder}/", lang="+".join(languages), psm=page_mode, oem=tesserocr.OEM.LSTM_ONLY
        )

    def read_tile(self, image: Image.Image, seconds: float) -> tuple[list[str], bool]:
        self._api.SetImage(image)
        finished = bool(self._api.Recognize(timeout=max(1, int(seconds * 1000))))
        return self._lines(), finished

    def _lines(self) -> list[str]:
        """Words at or above the confidence floor, grouped by text line."""
        word_level, line_level = self._tesserocr.RIL.WORD, self._tesserocr.RIL.TEXTLINE
        iterator = self._api.GetIterator()
        lines: list[str] = []
        current: list[str] = []
        while iterator is not None:
            try:
                word = iterator.GetUTF8Text(word_level)
            except RuntimeError:  # tesserocr's way of saying "no word here" (an empty page)
                word = ""
            if word and word.strip() and iterator.Confidence(word_level) >= self._min_confidence:
                current.append(word.strip())
            if iterator.IsAtFinalElement(line_level, word_level) and current:
                lines.append(" ".join(current))
                current = []
            if not iterator.Next(word_level):
                break
        if current:
            lines.append(" ".join(current))
        return lines

    def close(self) -> None:
        self._api.End()


# -- RapidOCR --------------------------------------------------------------------------------


def rapidocr_available(languages: Sequence[str]) -> tuple[bool, str]:
    unsupported = [lang for lang in languages if lang not in RAPIDOCR_LANGUAGES]
    if unsupported:
        return False, f"RapidOCR's bundled model does not read {', '.join(unsupported)}"
    try:
        import onnxruntime  # noqa: F401
        import rapidocr
    except ImportError as exc:
        return False, f"{exc.name} is not installed ({RAPIDOCR_HINT})"
    folder = Path(rapidocr.__file__).parent / "models"
    missing = [name for name in _RAPID_MODELS.values() if not (folder / name).is_file()]
    if missing:
        return False, f"RapidOCR's wheel lacks its bundled models ({', '.join(missing)}); reinstall: {RAPIDOCR_HINT}"
    version = _version("rapidocr")
    return True, f"RapidOCR {version} (PP-OCRv6, models inside the wheel), languages {'+'.join(languages)}"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


class RapidReader:
    """RapidOCR on ONNX Runtime, models opened from the wheel by path (no downloads), ``threads`` CPU threads."""

    name = "rapidocr"

    def __init__(self, min_confidence: float, max_side: int, threads: int) -> None:
        import rapidocr

        folder = Path(rapidocr.__file__).parent / "models"
        params: dict[str, Any] = {key: str(folder / name) for key, name in _RAPID_MODELS.items()}
        params.update(
            {
                "Global.log_level": "error",
                "Global.text_score": min_confidence / 100.0,
                "Global.max_side_len": max_side,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )
        self._ocr: Any = rapidocr.RapidOCR(params=params)

    def read_tile(self, image: Image.Image, seconds: float) -> tuple[list[str], bool]:
        result = self._ocr(np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1]))  # BGR, as OpenCV reads
        texts = getattr(result, "txts", None) or ()
        return [str(text).strip() for text in texts if str(text).strip()], True

    def close(self) -> None:
        self._ocr = None
