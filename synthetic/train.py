"""Train the bundled mmsearch-synthetic CLIP model on the procedural world.

Usage (CPU, the way the committed model was trained)::

    python -m synthetic.train --out /tmp/run --minutes 80 --seed 0 --threads 2

On a machine with a GPU, ``--device cuda`` (or the default ``--device auto``) trains there with
bf16 autocast; a larger ``--batch-size`` (512) and ``--pool-size`` are then sensible.

The run evaluates every ``--eval-minutes`` on a fixed rendered set, logs to ``train.log`` and
``metrics.jsonl`` in ``--out``, and keeps the best model so far in ``--out/best`` (the hf-hub
folder layout open_clip loads with ``local-dir:``), so a stopped run still leaves a usable model.
With ``--steps`` the learning-rate schedule is fixed in steps; with ``--minutes`` the cosine decay
follows wall-clock time, so data and initialisation are reproducible from ``--seed`` while the
step count depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from open_clip import ClipLoss
from open_clip.tokenizer import SimpleTokenizer

from synthetic.evaluate import EvalSet, evaluate, render_eval_set
from synthetic.model import (
    WEIGHTS_FILE,
    build_model,
    count_parameters,
    default_model_cfg,
    default_preprocess_cfg,
    save_model_dir,
)
from synthetic.pool import TrainingPool

log = logging.getLogger("mmsearch.train")


@dataclass(frozen=True)
class TrainConfig:
    out: Path
    minutes: float
    steps: int | None
    seed: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup: int
    threads: int
    device: str
    pool_size: int
    refresh_per_step: int
    eval_minutes: float
    eval_per_pair: int
    init: Path | None = None


@dataclass(frozen=True)
class TrainResult:
    steps: int
    seconds: float
    final_loss: float
    best_dir: Path | None
    best_metrics: dict | None


def parse_args(argv: Sequence[str] | None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="python -m synthetic.train", description=__doc__.split("\n")[1])
    p.add_argument("--out", type=Path, required=True, help="run folder (logs, best/ and last/ models)")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget")
    p.add_argument("--steps", type=int, default=None, help="fixed number of steps (overrides the estimate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--pool-size", type=int, default=8192, help="pre-rendered training images")
    p.add_argument("--refresh", type=int, default=24, help="pool images re-rendered per step")
    p.add_argument("--eval-minutes", type=float, default=5.0, help="evaluate and checkpoint this often")
    p.add_argument("--eval-per-pair", type=int, default=12, help="evaluation images per colour-shape pair")
    p.add_argument(
        "--init", type=Path, default=None, help="start from a saved model folder (continue training, usually with a lower --lr)"
    )
    a = p.parse_args(argv)
    if a.minutes <= 0 and not a.steps:
        p.error("give a positive --minutes or --steps")
    return TrainConfig(
        out=a.out,
        minutes=a.minutes,
        steps=a.steps,
        seed=a.seed,
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        warmup=a.warmup,
        threads=a.threads,
        device=a.device,
        pool_size=a.pool_size,
        refresh_per_step=a.refresh,
        eval_minutes=a.eval_minutes,
        eval_per_pair=a.eval_per_pair,
        init=a.init,
    )


def load_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The fp32 state dict of a saved model folder (saved weights are fp16)."""
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(Path(model_dir) / WEIGHTS_FILE)).items()}


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} was asked for but no CUDA device is available")
    return name


def lr_at(step: int, progress: float, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero as ``progress`` reaches 1."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def schedule_progress(step: int, warmup: int, elapsed: float, cfg: TrainConfig) -> float:
    """How far through the decay we are: by steps with ``--steps``, else by wall-clock time.

    Time-based decay keeps the schedule right on a contended machine, where the speed of the
    first steps is a poor guide to the rest of the run.
    """
    if cfg.steps:
        return (step - warmup) / max(1, cfg.steps - warmup)
    budget = cfg.minutes * 60.0
    return elapsed / budget


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW without decay on gains, biases and the logit scale (as open_clip's trainer does)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        exclude = param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(param)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


class _Normalise:
    """uint8 pool tensors to the float tensors the model was told to expect in preprocess_cfg."""

    def __init__(self, device: str) -> None:
        cfg = default_preprocess_cfg()
        self.mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1)
        self.device = device

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(self.device, non_blocking=True).float().div_(255.0)
        return (x - self.mean) / self.std


def _setup_logging(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.handlers[:] = [handler, logging.StreamHandler()]
    log.setLevel(logging.INFO)
    log.propagate = False


def train(cfg: TrainConfig) -> TrainResult:
    """Run one training job as configured; returns what it did."""
    _setup_logging(cfg.out)
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model_cfg = default_model_cfg()
    model = build_model(model_cfg)
    if cfg.init is not None:
        model.load_state_dict(load_weights(cfg.init))
        log.info("continuing from %s", cfg.init)
    model = model.to(device)
    log.info("model: %d parameters, device %s, config %s", count_parameters(model), device, json.dumps(model_cfg))
    log.info("train config: %s", json.dumps({k: str(v) for k, v in cfg.__dict__.items()}))

    t_start = time.monotonic()
    image_size = model_cfg["vision_cfg"]["image_size"]
    pool = TrainingPool(cfg.seed, cfg.pool_size, image_size)
    eval_set = render_eval_set(per_pair=cfg.eval_per_pair)
    log.info(
        "pool of %d images and eval set of %d rendered in %.1fs", len(pool), len(eval_set.images), time.monotonic() - t_start
    )

    from open_clip import image_transform

    pre = default_preprocess_cfg()
    eval_preprocess = image_transform(
        image_size,
        is_train=False,
        mean=pre["mean"],
        std=pre["std"],
        interpolation=pre["interpolation"],
        resize_mode=pre["resize_mode"],
    )
    tokenizer = SimpleTokenizer(context_length=model_cfg["text_cfg"]["context_length"])
    normalise = _Normalise(device)
    optimizer = _optimizer(model, cfg.lr, cfg.weight_decay)
    loss_fn = ClipLoss()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast("cpu", enabled=False)

    budget = cfg.minutes * 60.0
    total_steps = cfg.steps or 10**9
    t0 = time.monotonic()
    last_eval = t0
    best_score, best_metrics = -1.0, None
    step, loss_value, smoothed = 0, float("nan"), None
    model.train()
    while step < total_steps and (cfg.steps or time.monotonic() - t0 < budget):
        progress = schedule_progress(step, cfg.warmup, time.monotonic() - t0, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, progress, cfg.lr, cfg.warmup)
        pixels, captions = pool.batch(cfg.batch_size)
        images = normalise(pixels)
        tokens = tokenizer(captions).to(device)
        with autocast:
            image_features, text_features, logit_scale = model(images, tokens)
            loss = loss_fn(image_features, text_features, logit_scale)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss_value = float(loss.item())
        smoothed = loss_value if smoothed is None else 0.98 * smoothed + 0.02 * loss_value
        step += 1
        pool.refresh(cfg.refresh_per_step)
        if step % 50 == 0:
            log.info(
                "step %d loss %.4f (avg %.4f) lr %.2e scale %.1f elapsed %.1fm",
                step,
                loss_value,
                smoothed,
                optimizer.param_groups[0]["lr"],
                model.logit_scale.exp().item(),
                (time.monotonic() - t0) / 60,
            )
        if time.monotonic() - last_eval >= cfg.eval_minutes * 60:
            best_score, best_metrics = _evaluate_and_save(
                model, model_cfg, eval_set, eval_preprocess, tokenizer, device, cfg, step, smoothed, t0, best_score, best_metrics
            )
            last_eval = time.monotonic()
    best_score, best_metrics = _evaluate_and_save(
        model,
        model_cfg,
        eval_set,
        eval_preprocess,
        tokenizer,
        device,
        cfg,
        step,
        smoothed,
        t0,
        best_score,
        best_metrics,
        final=True,
    )
    seconds = time.monotonic() - t0
    log.info("done: %d steps in %.1f minutes; best %s", step, seconds / 60, json.dumps(best_metrics))
    best_dir = cfg.out / "best" if best_metrics else None
    return TrainResult(step, seconds, loss_value, best_dir, best_metrics)


def _evaluate_and_save(
    model,
    model_cfg,
    eval_set: EvalSet,
    preprocess,
    tokenizer,
    device: str,
    cfg: TrainConfig,
    step: int,
    smoothed,
    t0: float,
    best_score: float,
    best_metrics,
    final: bool = False,
):
    metrics = evaluate(model, preprocess, tokenizer, eval_set, device).to_dict()
    record = {"step": step, "minutes": round((time.monotonic() - t0) / 60, 2), "loss_avg": smoothed, **metrics}
    with open(cfg.out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    log.info("eval %s", json.dumps(record))
    score = 0.5 * (metrics["p10_seen"] + metrics["p10_held_out"])
    info = {
        **record,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "threads": cfg.threads,
        "device": device,
        "parameters": count_parameters(model),
    }
    if final:
        save_model_dir(model, cfg.out / "last", model_cfg, metrics=info)
    if score > best_score:
        save_model_dir(model, cfg.out / "best", model_cfg, metrics=info)
        return score, info
    return best_score, best_metrics


def main(argv: Sequence[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
