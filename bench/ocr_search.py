"""Keyword search with OCR enrichment on vs off: P@10 for words that appear only inside images.

The rendered-text world of ``bench/ocr.py`` (English and Japanese signs, labels, screenshots,
plus textless scenes) is written to a folder under neutral names (``img_000.jpg`` …), so a
file name never gives a word away, and ingested twice in embedded mode with the bundled
model: once with ``MMSEARCH_OCR__ENABLED=false``, once with OCR on (the CLI's path: the pass
runs after the job). Every drawn word is then a keyword query (``store.query_hybrid`` with
keywords only, as the API's ``mode=keyword``); the relevant images are those the word was
drawn on.

- ``p_at_10``: relevant images among the top 10, over min(10, relevant images): 1.0 means every
  image holding the word ranks in the top 10 (plain P@10 would be capped by the few images
  each word is on);
- ``hit_rate``: queries whose top 10 holds at least one relevant image;
- ``ocr_seconds``: wall time of the OCR pass over the whole folder.

    python bench/ocr_search.py            # 12 text + 6 textless images
    python bench/ocr_search.py --text 30 --textless 10

Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocr import Sample, dataset

from ingest.jobs import run_ingest
from search.ids import media_id, point_id
from search.payload import searchable_words
from search.services import IngestRequest, Services
from search.settings import BUNDLED_MODEL, load_settings
from search.store.keywords import KeywordQuery


def write_folder(samples: list[Sample], folder: Path) -> dict[str, Sample]:
    """Point id → sample, for images saved under neutral names."""
    folder.mkdir(parents=True, exist_ok=True)
    by_point = {}
    for i, sample in enumerate(samples):
        path = folder / f"img_{i:03d}.jpg"
        sample.image.convert("RGB").save(path, format="JPEG", quality=90)
        by_point[point_id(BUNDLED_MODEL, media_id(path.absolute().as_uri()), "image")] = sample
    return by_point


def queries(samples: list[Sample]) -> dict[str, tuple[str, set[int]]]:
    """Each drawn word (as the words field spells it) → (language, indexes of the samples holding it)."""
    found: dict[str, tuple[str, set[int]]] = {}
    for i, sample in enumerate(samples):
        for word in sample.words:
            key = searchable_words([word]).lower()
            if key:
                found.setdefault(key, (sample.language, set()))[1].add(i)
    return found


def measure(folder: Path, data_dir: Path, samples: list[Sample], by_point: dict[str, Sample], ocr: bool) -> dict[str, float]:
    settings = load_settings(data_dir=data_dir, model=BUNDLED_MODEL, device="cpu", ocr={"enabled": ocr})
    services = Services(settings)
    try:
        started = time.monotonic()
        run_ingest(services, IngestRequest(paths=[str(folder)]))
        seconds = time.monotonic() - started
        index_of = {pid: samples.index(sample) for pid, sample in by_point.items()}
        figures: dict[str, float] = {"ingest_and_ocr_seconds": round(seconds, 1)}
        for language in sorted({s.language for s in samples if s.language}):
            precisions, hits = [], 0
            for word, (lang, relevant) in queries(samples).items():
                if lang != language:
                    continue
                top = [index_of.get(hit.id) for hit in services.store.query_hybrid(None, KeywordQuery(word), limit=10)]
                good = sum(1 for i in top if i in relevant)
                precisions.append(good / min(10, len(relevant)))
                hits += good > 0
            figures[f"{language}_queries"] = len(precisions)
            figures[f"{language}_p_at_10"] = round(sum(precisions) / max(1, len(precisions)), 3)
            figures[f"{language}_hit_rate"] = round(hits / max(1, len(precisions)), 3)
        return figures
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", type=int, default=12, help="images with rendered text")
    parser.add_argument("--textless", type=int, default=6, help="images without text")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    samples = dataset(args.text, args.textless, args.seed)
    with tempfile.TemporaryDirectory(prefix="mmsearch-ocr-search-") as tmp:
        root = Path(tmp)
        by_point = write_folder(samples, root / "images")
        results = {
            "images": len(samples),
            "off": measure(root / "images", root / "off", samples, by_point, ocr=False),
            "on": measure(root / "images", root / "on", samples, by_point, ocr=True),
        }
    print(f"{'':6} {'language':8} {'queries':>7} {'P@10':>6} {'hit rate':>8}")
    for mode in ("off", "on"):
        figures = results[mode]
        for language in ("eng", "jpn"):
            if f"{language}_queries" in figures:
                q, p, h = (figures[f"{language}_{k}"] for k in ("queries", "p_at_10", "hit_rate"))
                print(f"ocr {mode:3} {language:8} {q:>7.0f} {p:>6.3f} {h:>8.3f}")
        print(f"ocr {mode:3} ingest (+ OCR pass) {figures['ingest_and_ocr_seconds']} s")
    print(json.dumps({"bench": "ocr_search", **results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
