"""What ingestion needs of a model: the image half of ``Embedder``, as a structural type.

The pipeline types its model with this rather than the concrete class so that the contract is
written down in one place, and so a part built another way (a wrapper that batches, one that
injects faults in a test) fits without inheriting from ``Embedder``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from PIL import Image


class ImageEmbedder(Protocol):
    """Preprocesses images in the prefetch threads and embeds finished batches of them."""

    @property
    def model_name(self) -> str:
        """The model spec text: it names the collection and goes into every point id."""
        ...

    @property
    def batch_size(self) -> int:
        """How many preprocessed images one ``encode_image_tensors`` call should get."""
        ...

    @property
    def image_size(self) -> int:
        """The side of the model's square input; decoding needs no more pixels than this."""
        ...

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image to the model's input tensor (resize, crop, normalise); thread-safe."""
        ...

    def encode_image_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """A stacked batch of preprocessed images to L2-normalised float32 vectors, one row each."""
        ...
