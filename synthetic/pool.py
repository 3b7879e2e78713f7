"""A pre-rendered, periodically refreshed pool of training images with their scenes.

Rendering a 64 px scene costs about 2 ms on one core, a training step several hundred: rendering
every image fresh would steal a noticeable share of the two cores. The pool renders once, then
replaces a few images per step, so the model keeps seeing new scenes at a small, bounded cost.
Captions are drawn fresh for every use, so each image is seen with many phrasings.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from synthetic.captions import sample_caption
from synthetic.render import render_scene
from synthetic.scene import Scene, sample_training_scene


def render_training_image(rng: np.random.Generator, scene: Scene, size: int, jpeg_p: float) -> np.ndarray:
    """One (3, size, size) uint8 array; some images go through JPEG like real corpus files."""
    image = render_scene(scene, size)
    if rng.random() < jpeg_p:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=int(rng.integers(55, 96)))
        buf.seek(0)
        image = Image.open(buf).convert("RGB")
    return np.array(image, dtype=np.uint8).transpose(2, 0, 1).copy()


class TrainingPool:
    """Scenes from the seen pairs only, rendered at ``size`` px, sampled into (images, captions) batches."""

    def __init__(self, seed: int, pool_size: int, size: int, jpeg_p: float = 0.5) -> None:
        if pool_size < 2:
            raise ValueError("the training pool needs at least 2 images")
        self.size = size
        self.jpeg_p = jpeg_p
        self.rng = np.random.default_rng([seed, 1])
        self.scenes: list[Scene] = []
        self.pixels = torch.empty((pool_size, 3, size, size), dtype=torch.uint8)
        for i in range(pool_size):
            self._render_into(i, append=True)

    def __len__(self) -> int:
        return len(self.scenes)

    def _render_into(self, index: int, append: bool = False) -> None:
        scene = sample_training_scene(self.rng)
        self.pixels[index] = torch.from_numpy(render_training_image(self.rng, scene, self.size, self.jpeg_p))
        if append:
            self.scenes.append(scene)
        else:
            self.scenes[index] = scene

    def refresh(self, count: int) -> None:
        """Replace ``count`` random pool entries by newly drawn scenes."""
        for index in self.rng.choice(len(self), size=min(count, len(self)), replace=False):
            self._render_into(int(index))

    def batch(self, batch_size: int) -> tuple[torch.Tensor, list[str]]:
        """Distinct pool entries and one freshly sampled caption each."""
        indices = self.rng.choice(len(self), size=min(batch_size, len(self)), replace=False)
        captions = [sample_caption(self.rng, self.scenes[int(i)]) for i in indices]
        return self.pixels[torch.from_numpy(indices)], captions
