"""A whole demo/benchmark corpus: images, videos and products, plus ``truth.json``.

truth.json layout (paths relative to the corpus folder)::

    {"version": 1, "seed": S, "counts": {"images": N, "videos": N, "products": N},
     "vocabulary": {"colours": [...], "shapes": [...], "sizes": [...], "positions": [...]},
     "held_out": [["red", "triangle"], ...],
     "images":   [{"path", "width", "height", "format", "caption", "held_out", "scene": {...}}],
     "videos":   [{"path", "duration", "fps", "width", "height", "background_changes": [...],
                   "moments": [{"colour", "shape", "start", "end", "position", "size", "held_out"}],
                   "subtitles": "videos/vid_000.srt" or null,
                   "cues": [{"start", "end", "text", "kind", "colour", "shape"}]}],
     "products": {"csv", "manifest", "products": [{"id", "title", "category", "brand", "price",
                   "colour", "shape", "accent", "images": [...]}],
                  "near_duplicates": [{"path", "original", "product_id"}]}}
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from synthetic.images import generate_images
from synthetic.products import generate_products
from synthetic.truth import TRUTH_VERSION, CorpusTruth, ImageTruth, ProductTruth, VideoTruth
from synthetic.video import generate_videos
from synthetic.vocab import COLOUR_NAMES, HELD_OUT, POSITIONS, SHAPE_NAMES, SIZES

TRUTH_FILE = "truth.json"
DESCRIBED_EVERY = 3  # one JPEG photo in three carries an EXIF description
_IMAGE_DESCRIPTION = 0x010E


def generate_corpus(
    out_dir: Path | str,
    seed: int,
    n_images: int = 200,
    n_videos: int = 4,
    n_products: int = 40,
    image_size: int = 256,
    video_size: int = 160,
    subtitles: bool = False,
) -> CorpusTruth:
    """Write images/, videos/, products/ and truth.json under ``out_dir``; return the truth.
    ``subtitles``: the videos get sidecar ``.srt`` files and cuts at some appearances
    (``synthetic.video.generate_videos``)."""
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    truth = CorpusTruth(
        root=root,
        seed=seed,
        images=tuple(describe_some(generate_images(root / "images", n_images, seed, image_size))),
        videos=tuple(generate_videos(root / "videos", n_videos, seed, size=video_size, subtitles=subtitles)),
        products=generate_products(root / "products", n_products, seed, image_size) if n_products else None,
    )
    write_truth(truth)
    return truth


def describe_some(images: list[ImageTruth], every: int = DESCRIBED_EVERY) -> list[ImageTruth]:
    """Give every ``every``-th JPEG photo an EXIF description, as a photographer's caption
    would: its canonical caption, in ImageDescription. Keyword search reads it; the pixels
    are unchanged (the segment is spliced in, the JPEG data kept byte for byte)."""
    for i, image in enumerate(images):
        if i % every or image.format != "jpeg":
            continue
        exif = Image.Exif()
        exif[_IMAGE_DESCRIPTION] = image.caption
        _insert_exif(image.path, image.path.read_bytes(), exif.tobytes())
    return images


def _insert_exif(path: Path, jpeg: bytes, exif: bytes) -> None:
    """Put an APP1 Exif segment right after the JPEG's SOI marker, leaving the image data as it is."""
    segment = b"\xff\xe1" + (len(exif) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + exif
    path.write_bytes(jpeg[:2] + segment + jpeg[2:])


def truth_to_dict(truth: CorpusTruth) -> dict:
    root = truth.root
    return {
        "version": TRUTH_VERSION,
        "seed": truth.seed,
        "counts": {
            "images": len(truth.images),
            "videos": len(truth.videos),
            "products": len(truth.products.products) if truth.products else 0,
        },
        "vocabulary": {
            "colours": list(COLOUR_NAMES),
            "shapes": list(SHAPE_NAMES),
            "sizes": list(SIZES),
            "positions": list(POSITIONS),
        },
        "held_out": [list(p) for p in sorted(HELD_OUT)],
        "images": [i.to_dict(root) for i in truth.images],
        "videos": [v.to_dict(root) for v in truth.videos],
        "products": truth.products.to_dict(root) if truth.products else None,
    }


def write_truth(truth: CorpusTruth) -> Path:
    path = truth.root / TRUTH_FILE
    path.write_text(json.dumps(truth_to_dict(truth), indent=1) + "\n", encoding="utf-8")
    return path


def load_truth(path: Path | str) -> CorpusTruth:
    """Read a truth.json (or the folder holding one); paths come back absolute."""
    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no {TRUTH_FILE} at {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if data.get("version") != TRUTH_VERSION:
        raise ValueError(f"{path} has truth version {data.get('version')!r}, expected {TRUTH_VERSION}")
    root = path.parent.resolve()
    return CorpusTruth(
        root=root,
        seed=data["seed"],
        images=tuple(ImageTruth.from_dict(d, root) for d in data["images"]),
        videos=tuple(VideoTruth.from_dict(d, root) for d in data["videos"]),
        products=ProductTruth.from_dict(data["products"], root) if data.get("products") else None,
        held_out=tuple(tuple(p) for p in data["held_out"]),
    )
