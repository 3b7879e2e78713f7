"""The CLIP embedder: one factory from settings to a ready model."""

from __future__ import annotations

import logging

from search.embedder.device import pick_device, pick_precision, set_cpu_threads
from search.embedder.embedder import Embedder
from search.embedder.loader import load_open_clip
from search.embedder.prompts import templates_for_model
from search.embedder.protocol import ImageEmbedder
from search.embedder.spec import ModelSpec, SpecKind, parse_model_spec
from search.settings import Settings

__all__ = ["Embedder", "ImageEmbedder", "ModelSpec", "SpecKind", "load_embedder", "parse_model_spec"]

log = logging.getLogger(__name__)


def load_embedder(settings: Settings) -> Embedder:
    """Load the model the settings name, on the best device, with threads set deliberately."""
    spec = parse_model_spec(settings.model)
    device = pick_device(settings.device)
    precision = pick_precision(settings.embedder.precision, device)
    if device.type == "cpu":
        set_cpu_threads(settings.torch_threads())
    cfg = settings.embedder
    loaded = load_open_clip(spec, device, precision, cfg.cache_dir, cfg.offline)
    model_dir = spec.source if spec.kind in (SpecKind.BUNDLED, SpecKind.LOCAL_DIR) else None
    embedder = Embedder(
        spec,
        loaded,
        device=device,
        precision=precision,
        batch_size=cfg.batch_size,
        templates=templates_for_model(model_dir),
        prompt_ensemble=cfg.prompt_ensemble,
        text_cache_size=cfg.text_cache_size,
    )
    log.info("loaded %s on %s (%s), dim %d", spec.text, device, precision, embedder.dim)
    return embedder
