"""Turn a model spec into an open_clip model, its preprocessing and its tokenizer.

Everything goes through open_clip's own factory, so preprocessing always matches the weights.
Downloads are the one thing that can fail for reasons outside the user's files, so they are
checked first: when the hub cannot be reached the load runs hub-offline (cache only) and a
miss becomes one clear ``ModelUnavailable`` instead of a minute of retries and a deep traceback.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from search.embedder.spec import ModelSpec, SpecKind
from search.errors import ModelUnavailable

log = logging.getLogger(__name__)

HUB_HOST = "huggingface.co"


@dataclass
class LoadedModel:
    model: Any  # open_clip.CLIP or CustomTextCLIP
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]


def load_open_clip(spec: ModelSpec, device: torch.device, precision: str, cache_dir: str | None, offline: bool) -> LoadedModel:
    """Build model, eval preprocessing and tokenizer for ``spec`` on ``device``."""
    import open_clip

    _check_local_files(spec)
    needs_hub = spec.kind in (SpecKind.PRETRAINED_TAG, SpecKind.HF_HUB)
    with _hub_mode(offline=offline or (needs_hub and not hub_reachable())), _quiet_open_clip_errors():
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.open_clip_name,
                pretrained=spec.pretrained,
                load_weights=spec.kind is not SpecKind.RANDOM,
                precision=precision,
                device=device,
                cache_dir=cache_dir,
            )
            tokenizer = open_clip.get_tokenizer(spec.open_clip_name, cache_dir=cache_dir)
        except Exception as exc:  # open_clip raises bare RuntimeError/ValueError for all of these
            raise ModelUnavailable(_explain_failure(spec, exc)) from exc
    model.eval()
    return LoadedModel(model=model, preprocess=preprocess, tokenizer=tokenizer)


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub: cheaper than discovering it through five retries."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_mode(offline: bool) -> Iterator[None]:
    """Temporarily put huggingface_hub in offline mode (cache only) when the hub is out of reach."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


class _DropErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


@contextlib.contextmanager
def _quiet_open_clip_errors() -> Iterator[None]:
    """open_clip logs a failed download on the root logger before raising; we re-raise it once, clearly."""
    root = logging.getLogger()
    quiet = _DropErrors()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _check_local_files(spec: ModelSpec) -> None:
    from pathlib import Path

    if spec.kind in (SpecKind.BUNDLED, SpecKind.LOCAL_DIR):
        folder = Path(spec.source or "")
        if not (folder / "open_clip_config.json").is_file():
            raise ModelUnavailable(
                f"Model folder {folder} has no open_clip_config.json. A local model folder needs "
                "open_clip_config.json (with model_cfg and preprocess_cfg) and a weights file "
                "(open_clip_model.safetensors or open_clip_pytorch_model.bin)."
            )
    if spec.kind is SpecKind.CHECKPOINT_FILE and not Path(spec.source or "").is_file():
        raise ModelUnavailable(f"Checkpoint file {spec.source} for model {spec.text!r} does not exist.")


def _explain_failure(spec: ModelSpec, exc: Exception) -> str:
    """A message that names the model, the cause and the way to supply weights by hand."""
    cause = _first_sentence(str(exc)) or type(exc).__name__
    if spec.kind in (SpecKind.PRETRAINED_TAG, SpecKind.HF_HUB):
        return (
            f"Could not load model {spec.text!r}: its weights are not in the local cache and could not "
            f"be downloaded from the Hugging Face hub. On a machine without internet access, download the weights "
            "elsewhere and point MMSEARCH_MODEL at them: 'ARCH:/path/to/open_clip_pytorch_model.bin' "
            "(e.g. 'ViT-B-32:/models/vit-b-32.bin'), or a folder holding open_clip_config.json and the "
            "weights (a copy of the hub repository). Or set MMSEARCH_EMBEDDER__CACHE_DIR to a folder "
            "that already holds the hub cache. To try mmsearch offline, use the bundled demo model: "
            f"MMSEARCH_MODEL=mmsearch-synthetic. (open_clip said: {cause})"
        )
    return f"Could not load model {spec.text!r}: {cause}"


def _first_sentence(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    cut = line.find(". ")
    line = line[: cut + 1] if 0 < cut < limit else line
    return line if len(line) <= limit else line[: limit - 1] + "…"
