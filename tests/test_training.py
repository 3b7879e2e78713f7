"""The training script: a few real steps on a tiny world leave a loadable, finite model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from synthetic.model import CONFIG_FILE, PROMPTS_FILE, WEIGHTS_FILE, load_model_dir
from synthetic.train import lr_at, parse_args, train


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_a_few_steps_write_a_checkpoint_open_clip_can_load(tmp_path):
    out = tmp_path / "run"
    cfg = parse_args(
        [
            "--out",
            str(out),
            "--steps",
            "4",
            "--batch-size",
            "16",
            "--pool-size",
            "32",
            "--refresh",
            "2",
            "--eval-per-pair",
            "1",
            "--threads",
            "1",
            "--device",
            "cpu",
        ]
    )
    result = train(cfg)
    assert result.steps == 4 and math.isfinite(result.final_loss)
    best = out / "best"
    assert {CONFIG_FILE, WEIGHTS_FILE, PROMPTS_FILE} <= {p.name for p in best.iterdir()}
    config = json.loads((best / CONFIG_FILE).read_text())
    assert config["model_cfg"]["vision_cfg"]["image_size"] == config["preprocess_cfg"]["size"] == 64
    assert (out / "train.log").read_text().count("eval") >= 1
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4

    loaded = load_model_dir(best)
    from PIL import Image

    with torch.no_grad():
        image = loaded.model.encode_image(loaded.preprocess(Image.new("RGB", (100, 80), "red")).unsqueeze(0))
        text = loaded.model.encode_text(loaded.tokenizer(["a red circle"]))
    assert image.shape == text.shape == (1, config["model_cfg"]["embed_dim"])
    assert torch.isfinite(image).all() and torch.isfinite(text).all()


def test_learning_rate_warms_up_then_decays_to_zero():
    assert lr_at(0, 0.0, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(9, 0.0, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(55, 0.5, 1.0, 10) == pytest.approx(0.5)
    assert lr_at(100, 1.0, 1.0, 10) == pytest.approx(0.0)


def test_arguments_are_checked(tmp_path):
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path), "--minutes", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--minutes", "1"])
