"""Zero-shot evaluation of a CLIP model on freshly rendered scenes of the procedural world.

Images are rendered at 256 px, JPEG-encoded and run through the model's own preprocessing, the
same path a real corpus takes, so the numbers describe search quality rather than training fit.
Held-out colour-shape pairs are reported separately: they test composition, not memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from synthetic.render import render_scene
from synthetic.scene import sample_scene
from synthetic.vocab import ALL_PAIRS, HELD_OUT

EVAL_SEED = 20261123


@dataclass(frozen=True)
class EvalSet:
    images: list[Image.Image]
    pairs: list[tuple[str, str]]  # the single object's pair, per image


@dataclass(frozen=True)
class EvalMetrics:
    p10_seen: float  # text->image precision@10 over seen pairs ("a red circle")
    p10_held_out: float  # the same over held-out pairs
    colour_acc: float  # zero-shot: argmax over all 80 pair prompts, colour correct
    shape_acc: float
    pair_acc_seen: float
    pair_acc_held_out: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def render_eval_set(per_pair: int = 12, seed: int = EVAL_SEED, size: int = 256, quality: int = 90) -> EvalSet:
    """``per_pair`` single-object JPEG images of every colour-shape pair, held-out pairs included."""
    rng = np.random.default_rng(seed)
    images: list[Image.Image] = []
    pairs: list[tuple[str, str]] = []
    for pair in ALL_PAIRS:
        for _ in range(per_pair):
            scene = sample_scene(rng, pairs=[pair], n_objects=1)
            buf = io.BytesIO()
            render_scene(scene, size).save(buf, format="JPEG", quality=quality)
            buf.seek(0)
            images.append(Image.open(buf).convert("RGB"))
            pairs.append(pair)
    return EvalSet(images, pairs)


@torch.no_grad()
def encode_images(model: Any, preprocess: Callable, images: list[Image.Image], device: str = "cpu") -> torch.Tensor:
    feats = []
    for start in range(0, len(images), 256):
        batch = torch.stack([preprocess(im) for im in images[start : start + 256]]).to(device)
        feats.append(torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1))
    return torch.cat(feats).cpu()


@torch.no_grad()
def encode_texts(model: Any, tokenizer: Callable, texts: list[str], device: str = "cpu") -> torch.Tensor:
    tokens = tokenizer(texts).to(device)
    return torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1).cpu()


def pair_prompt(pair: tuple[str, str]) -> str:
    from synthetic.captions import with_article

    return with_article(f"{pair[0]} {pair[1]}")


def evaluate(model: Any, preprocess: Callable, tokenizer: Callable, eval_set: EvalSet, device: str = "cpu") -> EvalMetrics:
    """Retrieval and zero-shot classification metrics of ``model`` on ``eval_set``."""
    was_training = model.training
    model.eval()
    try:
        img = encode_images(model, preprocess, eval_set.images, device)
        txt = encode_texts(model, tokenizer, [pair_prompt(p) for p in ALL_PAIRS], device)
    finally:
        model.train(was_training)
    sims = txt @ img.T  # (pairs, images)
    truth = np.array([ALL_PAIRS.index(p) for p in eval_set.pairs])
    p10: dict[bool, list[float]] = {True: [], False: []}
    top = torch.topk(sims, k=10, dim=1).indices.numpy()
    for qi, pair in enumerate(ALL_PAIRS):
        p10[pair in HELD_OUT].append(float(np.mean(truth[top[qi]] == qi)))
    predicted = sims.argmax(dim=0).numpy()
    pred_pairs = [ALL_PAIRS[i] for i in predicted]
    colour_ok = [pp[0] == tp[0] for pp, tp in zip(pred_pairs, eval_set.pairs)]
    shape_ok = [pp[1] == tp[1] for pp, tp in zip(pred_pairs, eval_set.pairs)]
    held = np.array([p in HELD_OUT for p in eval_set.pairs])
    pair_ok = predicted == truth
    return EvalMetrics(
        p10_seen=float(np.mean(p10[False])),
        p10_held_out=float(np.mean(p10[True])) if p10[True] else float("nan"),
        colour_acc=float(np.mean(colour_ok)),
        shape_acc=float(np.mean(shape_ok)),
        pair_acc_seen=float(np.mean(pair_ok[~held])),
        pair_acc_held_out=float(np.mean(pair_ok[held])) if held.any() else float("nan"),
    )
