"""The bundled model's architecture, and saving/loading it in open_clip's hf-hub folder layout.

The folder holds ``open_clip_config.json`` ({"model_cfg", "preprocess_cfg"}), the fp16 weights in
``open_clip_model.safetensors`` and ``mmsearch_prompts.json`` (the query templates it was trained
with). open_clip itself loads it with ``create_model_and_transforms("local-dir:<folder>")``, the
same code path as hub models, so nothing here is special-cased at search time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from open_clip import CLIP, create_model_and_transforms, get_tokenizer
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from safetensors.torch import save_file

from synthetic.captions import QUERY_TEMPLATES

IMAGE_SIZE = 64
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
PROMPTS_FILE = "mmsearch_prompts.json"
METRICS_FILE = "metrics.json"


def default_model_cfg() -> dict[str, Any]:
    """A small ModifiedResNet image tower and a 4-layer text transformer (about 6.5 M parameters).

    A ViT of this size learned colour but not shape in the feasibility runs on 2 CPU cores; the
    convolutional tower learned both. Most parameters are the 49408-token embedding table.
    """
    return {
        "embed_dim": 256,
        "vision_cfg": {"image_size": IMAGE_SIZE, "layers": [1, 1, 1, 1], "width": 24, "head_width": 32},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 4},
    }


def default_preprocess_cfg() -> dict[str, Any]:
    return {
        "size": IMAGE_SIZE,
        "mode": "RGB",
        "mean": list(OPENAI_DATASET_MEAN),
        "std": list(OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }


def build_model(model_cfg: dict[str, Any]) -> CLIP:
    """A randomly initialised open_clip CLIP from a model_cfg dict."""
    return CLIP(**model_cfg)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_model_dir(
    model: CLIP,
    out_dir: Path,
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write the hf-hub style folder; the weights go to a temp name first so a reader never sees half a file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or default_preprocess_cfg()}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out_dir / PROMPTS_FILE).write_text(json.dumps({"templates": list(QUERY_TEMPLATES)}, indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    tmp = out_dir / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(out_dir / WEIGHTS_FILE)
    if metrics is not None:
        (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return out_dir


@dataclass
class LoadedModel:
    model: CLIP
    preprocess: Any  # torchvision transform: PIL image -> normalised tensor
    tokenizer: Any  # open_clip tokenizer: list[str] -> LongTensor


def load_model_dir(model_dir: Path, device: str = "cpu") -> LoadedModel:
    """Load a saved folder through open_clip's own ``local-dir:`` path, in float32 eval mode."""
    name = f"local-dir:{Path(model_dir).resolve()}"
    model, _, preprocess = create_model_and_transforms(name, device=device)
    model = model.float().eval()
    return LoadedModel(model, preprocess, get_tokenizer(name))
