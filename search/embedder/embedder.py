"""CLIP embeddings of images and texts: batched, L2-normalised, float32 numpy out."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from search.embedder.loader import LoadedModel
from search.embedder.prompts import expand
from search.embedder.spec import ModelSpec

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Embedder:
    """One loaded CLIP model. Thread-safe for inference; texts are cached in an LRU.

    ``model_name`` is the spec text: it names the collection, so two models never share a
    vector space.
    """

    def __init__(
        self,
        spec: ModelSpec,
        loaded: LoadedModel,
        device: torch.device,
        precision: str,
        batch_size: int,
        templates: tuple[str, ...],
        prompt_ensemble: bool,
        text_cache_size: int,
    ) -> None:
        self.spec = spec
        self.model_name = spec.text
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.templates = templates
        self.prompt_ensemble = prompt_ensemble
        self._model = loaded.model
        self._preprocess = loaded.preprocess
        self._tokenizer = loaded.tokenizer
        self._dtype = _DTYPES.get(precision.replace("pure_", ""), torch.float32)
        self._lock = threading.Lock()
        self._text_cache: OrderedDict[tuple[str, bool], np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self.dim = int(self._probe_dim())
        self.image_size = _image_size(self._model)

    # -- images ---------------------------------------------------------------------------

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The exact preprocessing open_clip pairs with these weights (resize, crop, normalise)."""
        return self._preprocess(image)

    @property
    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """open_clip's preprocessing object itself, for code that redoes it on tensors (batched decode)."""
        return self._preprocess

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        chunks = [
            self.encode_image_tensors(torch.stack([self.preprocess(im) for im in images[i : i + self.batch_size]]))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def encode_image_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """Embed an already preprocessed batch: the hot path of ingestion."""
        if self.device.type == "cuda" and not batch.is_cuda:  # batched decode hands over tensors already there
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        else:
            batch = batch.to(self.device)
        with self._lock, torch.inference_mode():
            features = self._model.encode_image(batch.to(self._dtype))
        return _normalise(features)

    # -- texts ----------------------------------------------------------------------------

    def encode_texts(self, texts: Sequence[str], ensemble: bool | None = None) -> np.ndarray:
        """One vector per text; with ensembling, the mean over prompt templates, renormalised."""
        use_ensemble = self.prompt_ensemble if ensemble is None else ensemble
        vectors = [self._encode_text(text, use_ensemble) for text in texts]
        return np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32)

    def _encode_text(self, text: str, ensemble: bool) -> np.ndarray:
        key = (text, ensemble)
        with self._lock:
            cached = self._text_cache.get(key)
            if cached is not None:
                self._text_cache.move_to_end(key)
                return cached
        phrasings = expand(text, self.templates) if ensemble else [text]
        vector = _normalise_rows(self._encode_raw_texts(phrasings).mean(axis=0, keepdims=True))[0]
        vector.setflags(write=False)
        with self._lock:
            self._text_cache[key] = vector
            if len(self._text_cache) > self._text_cache_size:
                self._text_cache.popitem(last=False)
        return vector

    def _encode_raw_texts(self, texts: Sequence[str]) -> np.ndarray:
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self._tokenizer(list(texts[i : i + self.batch_size])).to(self.device)
            with self._lock, torch.inference_mode():
                chunks.append(_normalise(self._model.encode_text(tokens)))
        return np.concatenate(chunks)

    def _probe_dim(self) -> int:
        tokens = self._tokenizer(["probe"]).to(self.device)
        with torch.inference_mode():
            return self._model.encode_text(tokens).shape[-1]


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(getattr(model, "visual", None), "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _normalise(features: torch.Tensor) -> np.ndarray:
    return _normalise_rows(features.float().cpu().numpy())


def _normalise_rows(array: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return (array / np.maximum(norms, 1e-12)).astype(np.float32)
