"""Batched JPEG decoding (torchvision, nvJPEG on a GPU) gives the Pillow path's embeddings, facts and thumbnails.

Every picture is a real JPEG written by Pillow's encoder (several sizes, the three chroma
subsampling modes, grayscale, CMYK, EXIF orientations); both paths run on the same loaded bytes
with the same model, and the batched one must agree to a cosine of 0.999 or better.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image, ImageDraw

from ingest.items import MediaItem
from ingest.stages.batch_decode import BatchDecoder, DecodeAhead, batch_decode_devices, make_batch_decoder
from ingest.stages.decode import DecodeConfig, prepare_image
from ingest.stages.load import Loaded, load_item
from mmsearch.doctor import run_checks
from search.embedder import Embedder, load_embedder, parse_model_spec
from search.errors import ConfigError, MediaError
from search.media import make_thumbnail
from search.media.tensor_image import TensorPreprocess, UnsupportedTransform, thumbnail_dimensions
from search.settings import BUNDLED_MODEL, load_settings

MAX_BYTES = 200 * 1024 * 1024
MIN_COSINE = 0.999
ORIENTATION = 0x0112


# -- real JPEGs -------------------------------------------------------------------------------


def photo(width: int, height: int, seed: int) -> Image.Image:
    """Photo-like content: smooth colour fields, hard-edged shapes and sensor grain."""
    rng = np.random.default_rng(seed)
    field = Image.fromarray(rng.integers(0, 256, (max(2, height // 60), max(2, width // 60), 3), dtype=np.uint8))
    image = field.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(min(width, height) // 12, min(width, height) // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
    grain = rng.integers(-10, 11, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(image, np.int16) + grain, 0, 255).astype(np.uint8))


def save_jpeg(image: Image.Image, path: Path, subsampling: int = 2, orientation: int | None = None) -> Path:
    options: dict[str, object] = {"quality": 90}
    if image.mode != "L" and image.mode != "CMYK":
        options["subsampling"] = subsampling  # 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
    if orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        options["exif"] = exif
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", **options)
    return path


def load(path: Path) -> Loaded:
    return load_item(MediaItem(uri=path.as_uri(), source_id="test", kind="image", path=str(path)), MAX_BYTES)


def config_for(root: Path, embedder: Embedder, name: str) -> DecodeConfig:
    settings = load_settings(data_dir=root / name, model=BUNDLED_MODEL)
    return DecodeConfig.from_settings(settings, embedder.image_size)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)  # both L2-normalised by the embedder


def cpu_decoder(config: DecodeConfig, embedder: Embedder) -> BatchDecoder:
    return BatchDecoder(config, TensorPreprocess.from_transform(embedder.transform), torch.device("cpu"))


# -- models ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled() -> Embedder:
    return load_embedder(load_settings(model=BUNDLED_MODEL, device="cpu", embedder={"threads": 1}))


@pytest.fixture(scope="module")
def vit_b_32() -> Embedder:
    torch.manual_seed(15)
    return load_embedder(load_settings(model="ViT-B-32:random", device="cpu", embedder={"threads": 2}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Sizes from VGA to 12 MP, every subsampling mode, grayscale, portrait, rotated by EXIF."""
    root = tmp_path_factory.mktemp("jpegs")
    return [
        save_jpeg(photo(640, 480, 1), root / "vga-444.jpg", subsampling=0),
        save_jpeg(photo(640, 480, 2), root / "vga-422.jpg", subsampling=1),
        save_jpeg(photo(1920, 1080, 3), root / "hd-420.jpg", subsampling=2),
        save_jpeg(photo(1080, 1920, 4), root / "portrait-422.jpg", subsampling=1),
        save_jpeg(photo(4000, 3000, 5), root / "12mp-420.jpg", subsampling=2),
        save_jpeg(photo(800, 600, 6).convert("L"), root / "grey.jpg"),
        save_jpeg(photo(1024, 768, 7), root / "exif-6.jpg", orientation=6),
        save_jpeg(photo(640, 480, 8), root / "exif-3.jpg", subsampling=0, orientation=3),
    ]


def _both_paths(embedder: Embedder, corpus: list[Path], root: Path) -> tuple[list, list, np.ndarray, np.ndarray]:
    loaded = [load(path) for path in corpus]
    pillow = [prepare_image(item, config_for(root, embedder, "pillow"), embedder.preprocess) for item in loaded]
    decoder = cpu_decoder(config_for(root, embedder, "batched"), embedder)
    try:
        batched = decoder.prepare(loaded)
    finally:
        decoder.close()
    assert batched.fallbacks == []
    reference = embedder.encode_image_tensors(torch.stack([p.tensor for p in pillow]))
    vectors = embedder.encode_image_tensors(torch.stack([p.tensor for p in batched.images]))
    return pillow, batched.images, reference, vectors


def _check_same_as_pillow(embedder: Embedder, corpus: list[Path], root: Path) -> None:
    pillow, batched, reference, vectors = _both_paths(embedder, corpus, root)
    assert [p.loaded.item.uri for p in batched] == [p.loaded.item.uri for p in pillow]
    for p, b in zip(pillow, batched):
        assert b.facts == p.facts  # full upright size, mime, EXIF, frame count
        assert b.thumb == p.thumb
        with (
            Image.open(root / "batched" / "thumbnails" / b.thumb) as ours,
            Image.open(root / "pillow" / "thumbnails" / p.thumb) as theirs,
        ):
            assert (
                (ours.format, ours.size, ours.mode) == (theirs.format, theirs.size, theirs.mode) == ("WEBP", theirs.size, "RGB")
            )
    found = cosines(reference, vectors)
    assert found.min() >= MIN_COSINE, dict(zip([path.name for path in corpus], found.round(5)))


def test_batched_embeddings_match_the_pillow_path_on_the_bundled_model(bundled, corpus, tmp_path):
    _check_same_as_pillow(bundled, corpus, tmp_path)


@pytest.mark.slow
def test_batched_embeddings_match_the_pillow_path_on_a_random_vit_b_32(vit_b_32, corpus, tmp_path):
    _check_same_as_pillow(vit_b_32, corpus, tmp_path)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_the_pixels_as_pillow_does(bundled, tmp_path, orientation):
    picture = photo(320, 240, 9)
    ImageDraw.Draw(picture).rectangle((0, 0, 100, 60), fill=(255, 0, 0))  # a corner that shows any wrong turn
    loaded = load(save_jpeg(picture, tmp_path / f"o{orientation}.jpg", subsampling=0, orientation=orientation))
    upright = load(save_jpeg(picture, tmp_path / "plain.jpg", subsampling=0))
    reference = prepare_image(loaded, config_for(tmp_path, bundled, "pillow"), bundled.preprocess)
    decoder = cpu_decoder(config_for(tmp_path, bundled, "batched"), bundled)
    try:
        turned, unturned = decoder.prepare([loaded, upright]).images
    finally:
        decoder.close()
    assert turned.facts.exif.orientation == orientation
    assert (turned.facts.width, turned.facts.height) == (reference.facts.width, reference.facts.height)
    assert (turned.tensor - reference.tensor).abs().mean() < 0.03
    if orientation != 1:  # the check can tell a turned picture from an unturned one
        assert (unturned.tensor - reference.tensor).abs().mean() > 0.1


def test_cmyk_falls_back_to_pillow_and_the_rest_of_the_batch_is_batched(bundled, tmp_path):
    cmyk = load(save_jpeg(photo(320, 240, 10).convert("CMYK"), tmp_path / "cmyk.jpg"))
    grey = load(save_jpeg(photo(320, 240, 11).convert("L"), tmp_path / "grey.jpg"))
    decoder = cpu_decoder(config_for(tmp_path, bundled, "batched"), bundled)
    try:
        result = decoder.prepare([cmyk, grey])
    finally:
        decoder.close()
    assert [f.loaded for f in result.fallbacks] == [cmyk] and "CMYK" in result.fallbacks[0].reason
    assert (decoder.batchable(cmyk), decoder.batchable(grey)) == (False, True)
    assert [p.loaded for p in result.images] == [grey]
    assert prepare_image(cmyk, config_for(tmp_path, bundled, "pillow"), bundled.preprocess).facts.width == 320


def test_corrupt_jpegs_and_pngs_fall_back_per_image_with_todays_failure_reasons(bundled, tmp_path):
    good = save_jpeg(photo(320, 240, 12), tmp_path / "good.jpg")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + b"not a jpeg at all" * 20)
    png = tmp_path / "plain.png"
    photo(160, 120, 13).save(png, "PNG")
    items = [load(p) for p in (good, truncated, garbage, png, save_jpeg(photo(400, 300, 14), tmp_path / "good2.jpg"))]

    pillow_config = config_for(tmp_path, bundled, "pillow")
    today: dict[str, str] = {}
    for item in items[1:3]:
        with pytest.raises(MediaError) as caught:
            prepare_image(item, pillow_config, bundled.preprocess)
        today[item.item.uri] = str(caught.value)

    def per_image(item: Loaded) -> str:
        """What the pipeline does with a fallback: the Pillow path, its MediaError text as the failure."""
        try:
            return prepare_image(item, config_for(tmp_path, bundled, "fallback"), bundled.preprocess).thumb
        except MediaError as exc:
            return str(exc)

    ahead = DecodeAhead(cpu_decoder(config_for(tmp_path, bundled, "batched"), bundled), 2, per_image)
    try:
        result = ahead.submit(items, timeout=10).result(timeout=60)
    finally:
        ahead.close()
        ahead.decoder.close()
    assert [p.loaded for p in result.images] == [items[0], items[4]]  # one bad file does not cost the batch
    assert result.fallbacks[:2] == [today[items[1].item.uri], today[items[2].item.uri]]
    assert "truncated" in result.fallbacks[0]
    assert result.fallbacks[2] == f"{items[3].item.media_id}.webp"  # the PNG is indexed by Pillow, as before
    assert not (tmp_path / "batched" / "thumbnails" / f"{items[1].item.media_id}.webp").exists()


def test_decode_ahead_keeps_a_bounded_number_of_batches_in_flight(bundled, tmp_path):
    png = tmp_path / "slow.png"
    photo(64, 48, 15).save(png, "PNG")
    release = threading.Event()

    def waits(item: Loaded) -> str:
        assert release.wait(timeout=30)
        return item.item.uri

    ahead = DecodeAhead(cpu_decoder(config_for(tmp_path, bundled, "batched"), bundled), 2, waits)
    try:
        running = [ahead.submit([load(png)], timeout=5) for _ in range(2)]
        with pytest.raises(TimeoutError):
            ahead.submit([load(png)], timeout=0.2)
        release.set()
        assert [f.result(timeout=30).fallbacks for f in running] == [[png.as_uri()], [png.as_uri()]]
        assert ahead.submit([load(png)], timeout=5).result(timeout=30).fallbacks == [png.as_uri()]
    finally:
        release.set()
        ahead.close()
        ahead.decoder.close()


@pytest.mark.parametrize("size", [(4000, 3000), (1920, 1080), (1081, 1921), (300, 200), (257, 3), (3, 999), (256, 256)])
def test_thumbnail_dimensions_follow_make_thumbnail(size):
    assert thumbnail_dimensions(*size, 256) == make_thumbnail(Image.new("RGB", size), 256).size


def test_open_clip_transforms_without_a_tensor_equivalent_are_refused():
    longest = open_clip.image_transform(224, is_train=False, resize_mode="longest")
    with pytest.raises(UnsupportedTransform, match="ResizeKeepRatio"):
        TensorPreprocess.from_transform(longest)
    squash = TensorPreprocess.from_transform(open_clip.image_transform(224, is_train=False, resize_mode="squash"))
    assert squash.output_size() == (224, 224) and squash.crop is None


def test_device_decode_setting_picks_the_path(bundled, tmp_path):
    cpu = torch.device("cpu")
    assert batch_decode_devices("off", cpu) is None
    assert batch_decode_devices("auto", cpu) is None  # Pillow's draft decoding is faster on a CPU
    assert batch_decode_devices("on", cpu) == (cpu, cpu)
    config = config_for(tmp_path, bundled, "x")
    on = load_settings(model=BUNDLED_MODEL, ingest={"device_decode": "on"})
    decoder = make_batch_decoder(on, bundled, config)
    assert isinstance(decoder, BatchDecoder) and decoder.device == cpu
    decoder.close()
    assert make_batch_decoder(load_settings(model=BUNDLED_MODEL), bundled, config) is None


def test_device_decode_on_with_a_transform_it_cannot_redo_is_a_config_error(tmp_path):
    """A real model folder whose preprocessing letterboxes (resize_mode 'longest'): no tensor equivalent here."""
    source = Path(parse_model_spec(BUNDLED_MODEL).source or "")
    folder = tmp_path / "letterboxed"
    folder.mkdir()
    config = json.loads((source / "open_clip_config.json").read_text())
    config["preprocess_cfg"]["resize_mode"] = "longest"
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    (folder / "open_clip_model.safetensors").symlink_to(source / "open_clip_model.safetensors")
    embedder = load_embedder(load_settings(model=str(folder), device="cpu", embedder={"threads": 1}))
    on = load_settings(model=str(folder), ingest={"device_decode": "on"})
    with pytest.raises(ConfigError, match="MMSEARCH_INGEST__DEVICE_DECODE"):
        make_batch_decoder(on, embedder, config_for(tmp_path, embedder, "x"))
    assert (
        make_batch_decoder(
            load_settings(model=str(folder), ingest={"device_decode": "auto"}), embedder, config_for(tmp_path, embedder, "x")
        )
        is None
    )


def test_device_decode_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("MMSEARCH_INGEST__DEVICE_DECODE", "on")
    monkeypatch.setenv("MMSEARCH_INGEST__DECODE_BATCHES_IN_FLIGHT", "3")
    settings = load_settings()
    assert (settings.ingest.device_decode, settings.ingest.decode_batches_in_flight) == ("on", 3)


def test_doctor_reports_the_gpu_and_nvjpeg(tmp_path):
    checks = {c.name: c for c in run_checks(load_settings(data_dir=tmp_path / "data", model=BUNDLED_MODEL))}
    gpu = checks["gpu"]
    assert gpu.ok, gpu.detail
    if torch.cuda.is_available():
        assert torch.cuda.get_device_name(0) in gpu.detail and "GiB" in gpu.detail and "nvJPEG" in gpu.detail
    else:
        assert "no CUDA GPU" in gpu.detail and "nvJPEG not usable" in gpu.detail
