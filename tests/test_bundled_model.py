"""The bundled mmsearch-synthetic model loads offline and really separates colours and shapes.

Images are rendered at 256 px, saved as JPEG and reopened, then embedded through the project's
embedder (MMSEARCH_MODEL=mmsearch-synthetic), the path demo and benchmark take.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synthetic.evaluate import pair_prompt
from synthetic.model import CONFIG_FILE, WEIGHTS_FILE, load_model_dir
from synthetic.render import render_scene
from synthetic.scene import sample_scene
from synthetic.vocab import ALL_PAIRS, COLOUR_NAMES, HELD_OUT_PAIRS, SHAPE_NAMES

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "search" / "models" / "mmsearch-synthetic"
SEEN_SAMPLE = (("red", "circle"), ("blue", "square"), ("yellow", "star"), ("black", "heart"))
QUALITY_FIGURES = (
    "t2i_p10_seen",
    "t2i_p10_heldout",
    "zs_colour_acc",
    "zs_shape_acc",
    "i2i_p10",
    "arith_p10",
    "moment_r1_iou50",
    "video_r1_mean",
    "video_r1_topk",
)


@pytest.fixture(scope="module")
def embedder():
    from search.embedder import load_embedder
    from search.settings import load_settings

    previous = torch.get_num_threads()
    settings = load_settings(model="mmsearch-synthetic", device="cpu", embedder={"threads": 1, "offline": True})
    yield load_embedder(settings)
    torch.set_num_threads(previous)


def _jpeg(scene, size: int = 256) -> Image.Image:
    buf = io.BytesIO()
    render_scene(scene, size).save(buf, format="JPEG", quality=90)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _images(pairs: list[tuple[str, str]], seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [_jpeg(sample_scene(rng, pairs=[p], n_objects=1)) for p in pairs]


def _ranking_precision(embedder, query: str, target: tuple[str, str], seed: int) -> float:
    """Precision@10 of ``query`` over 40 images: 10 targets, 10 same colour, 10 same shape, 10 neither."""
    colour, shape = target
    rng = np.random.default_rng(seed)
    same_colour = [(colour, s) for s in SHAPE_NAMES if s != shape]
    same_shape = [(c, shape) for c in COLOUR_NAMES if c != colour]
    neither = [p for p in ALL_PAIRS if p[0] != colour and p[1] != shape]
    pairs = [target] * 10
    for group in (same_colour, same_shape, neither):
        pairs += [group[int(i)] for i in rng.integers(len(group), size=10)]
    images = embedder.encode_images(_images(pairs, seed))
    scores = images @ embedder.encode_texts([query])[0]
    top = np.argsort(-scores)[:10]
    return float(np.mean([pairs[i] == target for i in top]))


def test_folder_is_an_open_clip_hub_layout_that_loads_offline():
    config = json.loads((MODEL_DIR / CONFIG_FILE).read_text())
    assert set(config) >= {"model_cfg", "preprocess_cfg"}
    assert (MODEL_DIR / WEIGHTS_FILE).stat().st_size < 15_000_000
    loaded = load_model_dir(MODEL_DIR)  # open_clip's own local-dir: loader, no network
    with torch.no_grad():
        features = loaded.model.encode_text(loaded.tokenizer(["a red circle"]))
    assert features.shape == (1, config["model_cfg"]["embed_dim"])


def test_embedder_loads_the_bundled_model_by_name(embedder):
    assert embedder.model_name == "mmsearch-synthetic"
    assert embedder.image_size == 64
    vectors = embedder.encode_texts(["a red circle", "a blue star"])
    assert vectors.shape == (2, embedder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_pair_queries_rank_the_pair_above_same_colour_and_same_shape_distractors(embedder):
    precisions = [_ranking_precision(embedder, pair_prompt(p), p, seed=101 + i) for i, p in enumerate(SEEN_SAMPLE)]
    assert np.mean(precisions) >= 0.8, dict(zip(SEEN_SAMPLE, precisions))
    assert min(precisions) >= 0.5, dict(zip(SEEN_SAMPLE, precisions))


def test_held_out_pair_queries_still_find_their_pair(embedder):
    # None of these pairs appeared in training, in images or captions: this is composition, not memory.
    precisions = [_ranking_precision(embedder, pair_prompt(p), p, seed=201 + i) for i, p in enumerate(HELD_OUT_PAIRS)]
    assert np.mean(precisions) >= 0.6, dict(zip(HELD_OUT_PAIRS, precisions))


def test_zero_shot_colour_and_shape_accuracy_on_fifty_images(embedder):
    rng = np.random.default_rng(103)
    pairs = [ALL_PAIRS[int(i)] for i in rng.integers(len(ALL_PAIRS), size=50)]
    images = embedder.encode_images(_images(pairs, seed=103))
    prompts = embedder.encode_texts([pair_prompt(p) for p in ALL_PAIRS])
    predicted = [ALL_PAIRS[i] for i in (images @ prompts.T).argmax(axis=1)]
    colour_acc = np.mean([p[0] == t[0] for p, t in zip(predicted, pairs)])
    shape_acc = np.mean([p[1] == t[1] for p, t in zip(predicted, pairs)])
    assert colour_acc >= 0.9
    assert shape_acc >= 0.7


def test_image_queries_find_the_same_colour_and_shape(embedder):
    found = []
    for i, (colour, shape) in enumerate(SEEN_SAMPLE[:3]):
        query = embedder.encode_images(_images([(colour, shape)], seed=301 + i))[0]
        other_colour = COLOUR_NAMES[(COLOUR_NAMES.index(colour) + 1) % len(COLOUR_NAMES)]
        other_shape = SHAPE_NAMES[(SHAPE_NAMES.index(shape) + 1) % len(SHAPE_NAMES)]
        pairs = [(colour, shape), (colour, other_shape), (other_colour, shape), (other_colour, other_shape)] * 5
        scores = embedder.encode_images(_images(pairs, seed=311 + i)) @ query
        found.append(sum(pairs[j] == (colour, shape) for j in np.argsort(-scores)[:5]))
    assert sum(found) >= 10, found  # of 15 (chance: 3.75): the five best of twenty are mostly the same pair


@pytest.mark.slow
def test_quality_benchmark_runs_end_to_end_and_prints_its_figures_last(tmp_path):
    """bench/quality.py as a user runs it: render, ingest through the pipeline, query, one JSON line."""
    env = {**os.environ, "MMSEARCH_EMBEDDER__THREADS": "1", "MMSEARCH_BROKER_URL": "redis://nowhere:1/0"}
    command = [
        sys.executable,
        str(ROOT / "bench" / "quality.py"),
        "--images",
        "40",
        "--videos",
        "1",
        "--queries",
        "8",
        "--data",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(0.0 <= figures[name] <= 1.0 for name in QUALITY_FIGURES), figures
    assert figures["gallery_images"] == 40 and figures["videos"] == 1 and figures["moment_queries"] >= 1
    assert figures["ingest"]["failed"] == 0 and figures["model"] == "mmsearch-synthetic"
    assert figures["zs_colour_acc"] >= 0.8  # colour is the first thing the model learned
    assert (tmp_path / "world" / "truth.json").is_file() and (tmp_path / "index").is_dir()
