"""Ingestion at the hardware's pace: full-size JPEGs to vectors, Pillow path vs batched decode vs the model alone.

Generates realistic full-size JPEGs (1080p to 12 MP, mixed 4:4:4 / 4:2:2 / 4:2:0 subsampling,
some turned by EXIF) in a temporary folder, then for each model reports images/s for:

- ``model_only``: the forward pass over preprocessed tensors already in memory on the model's
  device, warmed up (the ceiling);
- ``pillow_e2e``: files on disk -> vectors with today's path: ``workers`` threads read, decode
  (Pillow, JPEG draft), thumbnail and preprocess each image; the main thread embeds batches;
- ``batched_cpu_e2e``: reader threads load the bytes, ``decode_batches_in_flight`` batches are
  decoded at once by torchvision on the CPU (``BatchDecoder``), thumbnails from the same pixels;
- ``device_e2e``: the same with ``decode_jpeg(device="cuda")`` (nvJPEG) and the resize on the
  GPU; skipped, saying why, where there is no CUDA GPU or nvJPEG does not work;
- ``*_decode_only``: each of the three paths again without the forward pass (batches stacked on
  the model's device, then dropped): how fast this host can feed the model at all.

End to end here means reading, decoding, thumbnails (written as WebP), preprocessing and the
forward pass; store and catalog writes are left out (``bench/ingest.py`` measures those).
With CUDA it also reports peak GPU memory (``torch.cuda.max_memory_allocated``) and, when
``nvidia-smi`` is present, GPU utilisation sampled during each end-to-end row.

    python bench/gpu.py --quick     # ~100 smaller JPEGs, ViT-B-32 only (a few minutes on 2 CPU cores)
    python bench/gpu.py             # 3000 full-size JPEGs, ViT-B-32 and ViT-L-14 (ViT-L-14 on a CPU only with --all)
    python bench/gpu.py --images 6000 --batch-size 512 --workers 16

Models have random weights (``ARCH:random``): throughput does not depend on the weights.
Prints one line per figure, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageChops, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.items import MediaItem
from ingest.stages.batch_decode import BatchDecoder, DecodeAhead
from ingest.stages.decode import DecodeConfig, prepare_image
from ingest.stages.load import Loaded, load_item
from search.embedder import Embedder, load_embedder
from search.embedder.device import cuda_gpus, nvjpeg_problem
from search.errors import MediaError
from search.media.tensor_image import TensorPreprocess
from search.settings import load_settings

FULL_SIZES = ((1920, 1080), (2560, 1440), (3000, 2000), (3264, 2448), (4000, 3000), (1080, 1920), (3000, 4000))
QUICK_SIZES = ((640, 480), (1024, 768), (1280, 720), (1600, 1200), (720, 1280))
SUBSAMPLING = (0, 1, 2, 2, 2)  # phones and cameras mostly write 4:2:0
MODELS = ("ViT-B-32:random", "ViT-L-14:random")
CPU_SLOW_MODELS = ("ViT-L-14:random",)
ROW_NAMES = (
    "model_only",
    "pillow_e2e",
    "batched_cpu_e2e",
    "device_e2e",
    "pillow_decode_only",
    "batched_cpu_decode_only",
    "device_decode_only",
)
MAX_BYTES = 200 * 1024 * 1024
WAIT_S = 300.0  # no queue in this script waits longer for the next item
_END = object()


@dataclass
class Row:
    model: str
    path: str  # one of ROW_NAMES
    images: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    fallbacks: int = 0
    failures: int = 0
    max_memory_bytes: int | None = None
    gpu_util_mean: float | None = None
    gpu_util_max: float | None = None
    gpu_memory_used_mib: float | None = None
    skipped: str | None = None


@dataclass
class Corpus:
    paths: list[Path]
    megapixels_mean: float
    bytes_mean: float
    seconds: float
    sizes: dict[str, int] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    gpus = cuda_gpus()
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-gpu-") as scratch:
        root = Path(scratch)
        corpus = make_corpus(root / "jpegs", args.images, QUICK_SIZES if args.quick else FULL_SIZES, args.workers)
        print(
            f"{len(corpus.paths)} JPEGs, {corpus.megapixels_mean:.1f} MP and {corpus.bytes_mean / 1e6:.2f} MB on average, "
            f"made in {corpus.seconds:.1f} s; {os.cpu_count()} CPUs; "
            + ("; ".join(g.describe() for g in gpus) if gpus else "no CUDA GPU")
        )
        rows: list[Row] = []
        for model in args.models:
            if model in CPU_SLOW_MODELS and not cuda and not args.all:
                reason = "no CUDA GPU: on the CPU it takes minutes per row (pass --all to run it)"
                rows += [Row(model, p, skipped=reason) for p in ROW_NAMES]
                continue
            rows += bench_model(model, corpus.paths, root / model.replace(":", "-"), args)
    for row in rows:
        print(format_row(row))
    report = {
        "bench": "gpu",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "gpus": [asdict(g) for g in gpus],
        "images": len(corpus.paths),
        "megapixels_mean": round(corpus.megapixels_mean, 2),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "in_flight": args.in_flight,
        "rows": [asdict(r) for r in rows],
    }
    print(json.dumps(report))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~100 smaller JPEGs (VGA to 2 MP), ViT-B-32 only")
    parser.add_argument("--all", action="store_true", help="also run ViT-L-14 on a machine without a GPU")
    parser.add_argument("--models", help=f"comma-separated model specs (default: {','.join(MODELS)})")
    parser.add_argument("--images", type=int, default=None, help="JPEGs to generate (default 3000, quick 96)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default 256 on CUDA, 32 on CPU)")
    parser.add_argument("--workers", type=int, default=None, help="reader/decoder/thumbnail threads (default: CPU count)")
    parser.add_argument("--in-flight", type=int, default=None, help="batches decoding at once (default: the setting, 2)")
    parser.add_argument("--model-seconds", type=float, default=None, help="how long model_only runs (default 5, quick 2)")
    args = parser.parse_args(argv)
    default_models = MODELS[:1] if args.quick else MODELS
    args.models = [m.strip() for m in args.models.split(",")] if args.models else list(default_models)
    args.images = args.images or (96 if args.quick else 3000)
    args.batch_size = args.batch_size or (256 if torch.cuda.is_available() else 32)
    args.workers = args.workers or os.cpu_count() or 2
    args.in_flight = args.in_flight or load_settings().ingest.decode_batches_in_flight
    args.model_seconds = args.model_seconds or (2.0 if args.quick else 5.0)
    return args


# -- the corpus ---------------------------------------------------------------------------------


def make_corpus(folder: Path, count: int, sizes: tuple[tuple[int, int], ...], workers: int) -> Corpus:
    """Photo-like JPEGs written by Pillow's encoder, in parallel (Pillow's encoder releases the GIL)."""
    folder.mkdir(parents=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        paths = list(pool.map(lambda i: write_photo(folder, i, sizes), range(count)))
    elapsed = time.perf_counter() - started
    megapixels, counts = [], {}
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        megapixels.append(w * h / 1e6)
        counts[f"{w}x{h}"] = counts.get(f"{w}x{h}", 0) + 1
    return Corpus(paths, float(np.mean(megapixels)), float(np.mean([p.stat().st_size for p in paths])), elapsed, counts)


def write_photo(folder: Path, index: int, sizes: tuple[tuple[int, int], ...]) -> Path:
    """Smooth colour fields, hard shapes and Gaussian sensor grain; one in ten turned by EXIF."""
    rng = np.random.default_rng(index)
    width, height = sizes[index % len(sizes)]
    field = Image.fromarray(rng.integers(0, 256, (max(2, height // 80), max(2, width // 80), 3), dtype=np.uint8))
    image = field.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(20, min(width, height) // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
    grain = Image.effect_noise((width, height), 10).convert("RGB")
    image = ImageChops.add(image, grain, scale=1.0, offset=-128)
    options: dict[str, Any] = {"quality": int(rng.integers(82, 96)), "subsampling": SUBSAMPLING[index % len(SUBSAMPLING)]}
    if index % 10 == 9:
        exif = Image.Exif()
        exif[0x0112] = 6
        options["exif"] = exif
    path = folder / f"photo-{index:05d}.jpg"
    image.save(path, "JPEG", **options)
    return path


# -- one model ------------------------------------------------------------------------------------


def bench_model(model: str, paths: list[Path], data_dir: Path, args: argparse.Namespace) -> list[Row]:
    settings = load_settings(data_dir=data_dir, model=model, embedder={"batch_size": args.batch_size})
    embedder = load_embedder(settings)
    config = DecodeConfig.from_settings(settings, embedder.image_size)
    transform = TensorPreprocess.from_transform(embedder.transform)
    rows = [model_only(model, embedder, paths, fresh(config, "model-only"), args.model_seconds)]
    cpu = torch.device("cpu")
    problem = nvjpeg_problem(embedder.device) if embedder.device.type == "cuda" else "no CUDA GPU: the model runs on the CPU"
    for forward, suffix in ((True, "e2e"), (False, "decode_only")):
        rows.append(
            measure(
                model,
                f"pillow_{suffix}",
                embedder,
                lambda: pillow_e2e(paths, embedder, fresh(config, "pillow"), args.workers, forward),
            )
        )
        on_cpu = BatchDecoder(fresh(config, "cpu"), transform, cpu, thumbnail_workers=args.workers)
        rows.append(
            measure(model, f"batched_cpu_{suffix}", embedder, lambda: batched_e2e(paths, embedder, on_cpu, args, forward))
        )
        if problem is not None:
            rows.append(Row(model, f"device_{suffix}", skipped=problem))
            continue
        on_gpu = BatchDecoder(fresh(config, "device"), transform, embedder.device, thumbnail_workers=args.workers)
        rows.append(measure(model, f"device_{suffix}", embedder, lambda: batched_e2e(paths, embedder, on_gpu, args, forward)))
    return rows


def fresh(config: DecodeConfig, name: str) -> DecodeConfig:
    """The same knobs with a thumbnail folder of its own, so no row finds another's files."""
    folder = config.thumbnails_dir.parent / f"thumbnails-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    return DecodeConfig(folder, config.thumbnail_size, config.max_pixels, config.draft_size, config.plan)


def model_only(model: str, embedder: Embedder, paths: list[Path], config: DecodeConfig, seconds: float) -> Row:
    """Forward passes over one preprocessed batch kept on the model's device, after two warm-up passes."""
    tensors = [prepare_image(load(p), config, embedder.preprocess).tensor for p in paths[: embedder.batch_size]]
    batch = torch.stack([tensors[i % len(tensors)] for i in range(embedder.batch_size)]).to(embedder.device)
    for _ in range(2):
        embedder.encode_image_tensors(batch)
    reset_peak(embedder)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or done == 0:
        embedder.encode_image_tensors(batch)  # returns numpy: the GPU has finished
        done += embedder.batch_size
    elapsed = time.perf_counter() - started
    return Row(model, "model_only", done, round(elapsed, 3), round(done / elapsed, 1), max_memory_bytes=peak(embedder))


@dataclass
class _Run:
    images: int
    fallbacks: int
    failures: int


def measure(model: str, path: str, embedder: Embedder, run: Callable[[], _Run]) -> Row:
    reset_peak(embedder)
    with GpuSampler(embedder.device) as sampler:
        started = time.perf_counter()
        done = run()
        elapsed = time.perf_counter() - started
    return Row(
        model,
        path,
        done.images,
        round(elapsed, 3),
        round(done.images / elapsed, 1),
        done.fallbacks,
        done.failures,
        peak(embedder),
        sampler.util_mean,
        sampler.util_max,
        sampler.memory_mib,
    )


def pillow_e2e(paths: list[Path], embedder: Embedder, config: DecodeConfig, workers: int, forward: bool = True) -> _Run:
    """Today's path: each thread reads, decodes, thumbnails and preprocesses one image at a time."""
    ready: queue.Queue[object] = queue.Queue(maxsize=4 * embedder.batch_size)

    def prepare(path: Path) -> object:
        try:
            return prepare_image(load(path), config, embedder.preprocess).tensor
        except MediaError as exc:
            return exc

    feed_threads(paths, prepare, ready, workers)
    batch: list[torch.Tensor] = []
    images = failures = ends = 0
    while ends < workers:
        unit = ready.get(timeout=WAIT_S)
        if unit is _END:
            ends += 1
        elif isinstance(unit, Exception):
            failures += 1
        else:
            batch.append(unit)  # type: ignore[arg-type]
        if len(batch) == embedder.batch_size or (batch and ends == workers):
            images += embed(embedder, batch, forward)
    return _Run(images, 0, failures)


def batched_e2e(
    paths: list[Path], embedder: Embedder, decoder: BatchDecoder, args: argparse.Namespace, forward: bool = True
) -> _Run:
    """Reader threads load bytes; ``in_flight`` batches decode at once while the main thread embeds the oldest."""
    ready: queue.Queue[object] = queue.Queue(maxsize=4 * embedder.batch_size)
    feed_threads(paths, load, ready, args.workers)

    def per_image(loaded: Loaded) -> object:
        try:
            return prepare_image(loaded, decoder.config, embedder.preprocess).tensor
        except MediaError as exc:
            return exc

    ahead = DecodeAhead(decoder, args.in_flight, per_image)
    pending: deque = deque()
    counts = _Run(0, 0, 0)

    def take_oldest() -> None:
        result = pending.popleft().result(timeout=WAIT_S)
        tensors = [p.tensor for p in result.images] + [t for t in result.fallbacks if isinstance(t, torch.Tensor)]
        counts.fallbacks += len(result.fallbacks)
        counts.failures += sum(isinstance(t, Exception) for t in result.fallbacks)
        counts.images += embed(embedder, tensors, forward)

    try:
        gathered: list[Loaded] = []
        ends = 0
        while ends < args.workers:
            unit = ready.get(timeout=WAIT_S)
            if unit is _END:
                ends += 1
            else:
                gathered.append(unit)  # type: ignore[arg-type]
            if len(gathered) == embedder.batch_size or (gathered and ends == args.workers):
                if len(pending) >= args.in_flight:
                    take_oldest()
                pending.append(ahead.submit(gathered, timeout=WAIT_S))
                gathered = []
        while pending:
            take_oldest()
    finally:
        ahead.close()
        decoder.close()
    return counts


def feed_threads(paths: Iterable[Path], work: Callable[[Path], object], out: queue.Queue[object], workers: int) -> None:
    """``workers`` daemon threads apply ``work`` to the paths and put the results, then one end marker each."""
    todo: queue.SimpleQueue[Path] = queue.SimpleQueue()
    for path in paths:
        todo.put(path)

    def loop() -> None:
        while True:
            try:
                path = todo.get_nowait()
            except queue.Empty:
                out.put(_END, timeout=WAIT_S)
                return
            out.put(work(path), timeout=WAIT_S)

    for i in range(workers):
        threading.Thread(target=loop, name=f"bench-feed-{i}", daemon=True).start()


def embed(embedder: Embedder, batch: list[torch.Tensor], forward: bool = True) -> int:
    """Embed and count a batch; ``forward=False`` (the decode-only rows) stacks it on the device and stops there."""
    if not batch:
        return 0
    stacked = torch.stack([t.to(embedder.device) for t in batch])
    count = len(embedder.encode_image_tensors(stacked)) if forward else int(stacked.shape[0])
    if not forward and stacked.is_cuda:
        torch.cuda.synchronize(stacked.device)
    batch.clear()
    return count


def load(path: Path) -> Loaded:
    return load_item(MediaItem(uri=path.as_uri(), source_id="bench", kind="image", path=str(path)), MAX_BYTES)


# -- GPU figures ---------------------------------------------------------------------------------


def reset_peak(embedder: Embedder) -> None:
    if embedder.device.type == "cuda":
        torch.cuda.synchronize(embedder.device)
        torch.cuda.reset_peak_memory_stats(embedder.device)


def peak(embedder: Embedder) -> int | None:
    return int(torch.cuda.max_memory_allocated(embedder.device)) if embedder.device.type == "cuda" else None


class GpuSampler:
    """Samples ``nvidia-smi`` utilisation and memory every quarter second while a row runs (CUDA only)."""

    def __init__(self, device: torch.device) -> None:
        self._exe = shutil.which("nvidia-smi") if device.type == "cuda" else None
        self._index = device.index or 0
        self._stop = threading.Event()
        self._util: list[float] = []
        self._memory: list[float] = []
        self._thread = threading.Thread(target=self._loop, name="bench-nvidia-smi", daemon=True)
        self.util_mean: float | None = None
        self.util_max: float | None = None
        self.memory_mib: float | None = None

    def __enter__(self) -> GpuSampler:
        if self._exe:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._exe:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        if self._util:
            self.util_mean, self.util_max = round(float(np.mean(self._util)), 1), max(self._util)
            self.memory_mib = max(self._memory)

    def _loop(self) -> None:
        query = [self._exe, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-i", str(self._index)]
        while not self._stop.wait(0.25):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5, check=True).stdout  # type: ignore[arg-type]
                util, memory = (float(v) for v in out.strip().splitlines()[0].split(","))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                continue
            self._util.append(util)
            self._memory.append(memory)


def format_row(row: Row) -> str:
    if row.skipped:
        return f"{row.model:<17} {row.path:<24} skipped: {row.skipped}"
    extra = ""
    if row.max_memory_bytes is not None:
        extra += f", peak {row.max_memory_bytes / 2**30:.2f} GiB allocated"
    if row.gpu_util_mean is not None:
        extra += f", GPU busy {row.gpu_util_mean:.0f}% mean / {row.gpu_util_max:.0f}% max, {row.gpu_memory_used_mib:.0f} MiB used"
    if row.fallbacks or row.failures:
        extra += f", {row.fallbacks} via Pillow, {row.failures} failed"
    return f"{row.model:<17} {row.path:<24} {row.images_per_s:8.1f} img/s ({row.images} in {row.seconds:.1f} s{extra})"


if __name__ == "__main__":
    sys.exit(main())
