"""The embedder loads open_clip models the way users will, and matches open_clip exactly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image, ImageDraw

from search.embedder import SpecKind, load_embedder, parse_model_spec
from search.errors import ModelUnavailable
from search.settings import load_settings

TEXTS = ["a red circle", "a photo of a dog", "ein Foto einer Katze", "two blue squares on grass"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    images = []
    for i in range(4):
        im = Image.fromarray(rng.integers(0, 255, (180 + 20 * i, 260, 3), dtype=np.uint8))
        ImageDraw.Draw(im).ellipse((30, 30, 120, 120), fill=(200, 30 * i, 40))
        images.append(im)
    return images


@pytest.fixture(scope="module")
def random_vit_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seeded random ViT-B-32, saved as a checkpoint file and as a local model folder."""
    torch.manual_seed(1234)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    root = tmp_path_factory.mktemp("vit")
    file = root / "vit-b-32-random.pt"
    torch.save(model.state_dict(), file)
    folder = root / "vit-folder"
    folder.mkdir()
    config = {
        "model_cfg": open_clip.get_model_config("ViT-B-32"),
        "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)},
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return file, folder


def _reference(file: Path) -> tuple[np.ndarray, np.ndarray]:
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=str(file))
    model.eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(im) for im in _images()]), normalize=True)
        txt = model.encode_text(tokenizer(TEXTS), normalize=True)
    return img.numpy(), txt.numpy()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("form", ["file", "folder"])
def test_embeddings_match_open_clip_for_a_local_vit_b_32_checkpoint(random_vit_checkpoint, form):
    file, folder = random_vit_checkpoint
    spec = f"ViT-B-32:{file}" if form == "file" else str(folder)
    settings = load_settings(model=spec, device="cpu", embedder={"prompt_ensemble": False, "threads": 1})
    embedder = load_embedder(settings)
    ref_images, ref_texts = _reference(file)

    images = embedder.encode_images(_images())
    texts = embedder.encode_texts(TEXTS)

    assert embedder.dim == 512 and embedder.image_size == 224
    assert images.dtype == np.float32 and images.shape == (4, 512)
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert _cosines(images, ref_images).min() >= 0.9999
    assert _cosines(texts, ref_texts).min() >= 0.9999


@pytest.mark.slow
def test_prompt_ensembling_averages_templates_and_raw_path_stays_available(random_vit_checkpoint):
    file, _ = random_vit_checkpoint
    embedder = load_embedder(load_settings(model=f"ViT-B-32:{file}", device="cpu", embedder={"threads": 1}))
    raw = embedder.encode_texts(["a red circle"], ensemble=False)[0]
    ensembled = embedder.encode_texts(["a red circle"])[0]
    phrasings = embedder._encode_raw_texts(["a red circle"] + [t.format("a red circle") for t in embedder.templates[1:]])
    expected = phrasings.mean(axis=0)
    expected /= np.linalg.norm(expected)

    assert np.allclose(ensembled, expected, atol=1e-5)
    assert not np.allclose(raw, ensembled, atol=1e-3)
    assert embedder.encode_texts(["a red circle"])[0] is not None  # served from the cache


def test_unreachable_hub_gives_one_clear_error_quickly():
    settings = load_settings(model="ViT-B-32:laion2b_s34b_b79k", device="cpu", embedder={"threads": 1})
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as raised:
        load_embedder(settings)
    message = str(raised.value)
    assert "ViT-B-32:laion2b_s34b_b79k" in message
    assert "MMSEARCH_MODEL" in message and "mmsearch-synthetic" in message
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    "text, kind",
    [
        ("mmsearch-synthetic", SpecKind.BUNDLED),
        ("ViT-B-32:laion2b_s34b_b79k", SpecKind.PRETRAINED_TAG),
        ("xlm-roberta-base-ViT-B-32:laion5b_s13b_b90k", SpecKind.PRETRAINED_TAG),
        ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", SpecKind.HF_HUB),
        ("ViT-B-32:/models/weights.bin", SpecKind.CHECKPOINT_FILE),
        ("local-dir:/models/clip", SpecKind.LOCAL_DIR),
        ("ViT-B-32:random", SpecKind.RANDOM),
    ],
)
def test_model_specs_parse_to_their_source(text, kind):
    assert parse_model_spec(text).kind is kind


@pytest.mark.parametrize("text", ["", "ViT-B-32", "hf-hub:", ":tag"])
def test_malformed_specs_are_refused_with_the_accepted_forms(text):
    with pytest.raises(ModelUnavailable, match="Use one of"):
        parse_model_spec(text)


def test_missing_checkpoint_file_is_named_in_the_error(tmp_path):
    settings = load_settings(model=f"ViT-B-32:{tmp_path / 'nope.bin'}", device="cpu")
    with pytest.raises(ModelUnavailable, match=r"nope\.bin"):
        load_embedder(settings)
