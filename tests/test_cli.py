"""The CLI contract of the foundation: help, doctor, embed, exit codes and configuration errors."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mmsearch.cli import main


@pytest.fixture()
def bundled(monkeypatch, tmp_path):
    monkeypatch.setenv("MMSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MMSEARCH_MODEL", "mmsearch-synthetic")
    monkeypatch.delenv("MMSEARCH_BROKER_URL", raising=False)
    return tmp_path


def test_console_script_is_installed_and_lists_every_command():
    exe = shutil.which("mmsearch") or ".venv/bin/mmsearch"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120, check=True).stdout
    for command in ("ingest", "search", "serve", "demo", "jobs", "doctor", "embed", "worker"):
        assert command in out


def test_doctor_passes_with_the_bundled_model(bundled, capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert {"settings", "model", "store", "catalog", "broker", "video"} <= set(checks)
    assert "mmsearch-synthetic" in checks["model"]["detail"]


def test_doctor_reports_an_unloadable_model_and_exits_2(bundled, capsys, tmp_path):
    assert main(["--model", f"ViT-B-32:{tmp_path / 'missing.bin'}", "doctor"]) == 2
    out = capsys.readouterr().out
    assert "[FAIL] model" in out and "missing.bin" in out
    assert "[  ok] catalog" in out  # one failure does not hide the other checks


def test_bad_settings_name_the_environment_variable(bundled, monkeypatch, capsys):
    monkeypatch.setenv("MMSEARCH_DEVICE", "tpu")
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert "MMSEARCH_DEVICE" in err and "tpu" in err


def test_embed_prints_unit_vectors_that_match_text_and_image(bundled, capsys):
    image = bundled / "red.png"
    picture = Image.new("RGB", (128, 128), (128, 128, 128))
    ImageDraw.Draw(picture).ellipse((24, 24, 104, 104), fill=(220, 30, 30))
    picture.save(image)
    vectors = {}
    texts = {"red": ["--text", "a red circle"], "blue": ["--text", "a blue circle"]}
    for key, args in {**texts, "image": ["--image", str(image)]}.items():
        assert main(["embed", *args, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["model"] == "mmsearch-synthetic" and doc["dim"] == len(doc["vector"])
        vectors[key] = np.asarray(doc["vector"], dtype=np.float32)
        assert np.linalg.norm(vectors[key]) == pytest.approx(1.0, abs=1e-3)
    assert vectors["image"] @ vectors["red"] > vectors["image"] @ vectors["blue"]


def test_embed_refuses_a_file_that_is_not_an_image(bundled, capsys):
    text_file = bundled / "notes.jpg"
    text_file.write_text("not an image at all")
    assert main(["embed", "--image", str(text_file)]) == 2
    assert "not an image" in capsys.readouterr().err
