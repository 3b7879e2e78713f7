"""Still images of random scenes, written as real JPEG, PNG and WebP files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthetic.captions import canonical_caption
from synthetic.render import render_scene
from synthetic.scene import sample_scene
from synthetic.truth import ImageTruth

IMAGE_FORMATS: tuple[tuple[str, str, float], ...] = (("jpeg", "jpg", 0.7), ("png", "png", 0.15), ("webp", "webp", 0.15))
_STREAM_IMAGES = 1  # per-artefact stream ids keep images, videos and products independent of each other


def item_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator for one item: item i never depends on how many items came before it."""
    return np.random.default_rng([seed, stream, index])


def save_image(image, path: Path, fmt: str, quality: int = 90) -> None:
    """Save with fixed encoder settings, so the same pixels always give the same bytes."""
    if fmt == "jpeg":
        image.save(path, format="JPEG", quality=quality)
    elif fmt == "png":
        image.save(path, format="PNG", optimize=False)
    elif fmt == "webp":
        image.save(path, format="WEBP", quality=quality, method=4)
    else:
        raise ValueError(f"unknown image format {fmt!r}")


def generate_images(out_dir: Path | str, n: int, seed: int, size: int = 256, formats: bool = True) -> list[ImageTruth]:
    """Write ``n`` scenes of one to three objects (all pairs, held-out included) to ``out_dir``.

    ``formats=False`` writes JPEG only; otherwise about 15 % PNG and 15 % WebP are mixed in.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [f[0] for f in IMAGE_FORMATS]
    probs = [f[2] for f in IMAGE_FORMATS]
    truths = []
    for i in range(n):
        rng = item_rng(seed, _STREAM_IMAGES, i)
        scene = sample_scene(rng)
        fmt = str(rng.choice(names, p=probs)) if formats else "jpeg"
        ext = dict((f[0], f[1]) for f in IMAGE_FORMATS)[fmt]
        path = out / f"img_{i:05d}.{ext}"
        save_image(render_scene(scene, size), path, fmt)
        truths.append(ImageTruth(path.resolve(), size, size, fmt, scene, canonical_caption(scene)))
    return truths
