"""Ingestion throughput: end to end (files on disk -> points in the store) vs the model alone.

For each model it measures, on the same machine and the same images:

- ``model_only``: the embedder's forward pass over already preprocessed tensors, in the
  ingest batch size: the ceiling ingestion can reach (measured just before and just after
  the end-to-end run and averaged, so a drifting load on a shared machine biases neither);
- ``end_to_end``: ``ingest.jobs.run_ingest`` over a folder of JPEG/PNG/WebP files, in-process
  (Qdrant Edge + SQLite), including discovery, reading, decoding, thumbnails, preprocessing,
  embedding, store upserts and catalog writes (model and store opened before the clock starts);
- ``ratio`` = end_to_end / model_only (the issue's target: at least 0.85);

and, once, video sampling: frames/s kept and x realtime for PyAV sampling at 1 frame/s of a
360p H.264 clip, converting kept frames to the model's input size.

    python bench/ingest.py --quick                  # about a minute: bundled model, fewer images
    python bench/ingest.py                          # bundled model and ViT-B-32 (random weights)
    python bench/ingest.py --models ViT-B-32:random --images 512

On a GPU: ``MMSEARCH_DEVICE=cuda MMSEARCH_EMBEDDER__BATCH_SIZE=256 MMSEARCH_INGEST__DECODE_WORKERS=8
python bench/ingest.py --images 4096``. The embedder then runs in fp16 (``precision=auto``) and
copies batches from pinned memory with non-blocking transfers; raise ``DECODE_WORKERS`` until the
ratio stops improving, since on a GPU decoding, not the model, is what has to keep up.
Settings come from ``MMSEARCH_`` variables as everywhere (threads, batch size, decode workers).

Prints one line per figure, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.jobs import run_ingest
from search.embedder import Embedder
from search.media import SamplingPlan, decode_image, probe_video, sample_frames
from search.services import IngestRequest, Services
from search.settings import BUNDLED_MODEL, load_settings
from synthetic.images import generate_images
from synthetic.video import write_video

DEFAULT_MODELS = (BUNDLED_MODEL, "ViT-B-32:random")
TARGET_RATIO = 0.85


@dataclass(frozen=True)
class ModelFigures:
    model: str
    device: str
    threads: int
    batch_size: int
    decode_workers: int
    images: int
    model_only_per_s: float
    end_to_end_per_s: float
    ratio: float
    points: int


@dataclass(frozen=True)
class VideoFigures:
    duration_s: float
    resolution: str
    fps: float
    frames_kept: int
    seconds: float
    frames_per_s: float
    x_realtime: float


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-ingest-") as scratch:
        root = Path(scratch)
        folder = make_images(root / "images", args.images, args.image_size)
        results = [bench_model(model, folder, root / f"data-{i}", args.images) for i, model in enumerate(args.models)]
        video = bench_video(root / "clip.mp4", args.video_seconds, min_side=args.video_min_side)
    for row in results:
        flag = "ok" if row.ratio >= TARGET_RATIO else f"below the {TARGET_RATIO:.0%} target"
        print(
            f"{row.model:<22} {row.device}/{row.threads} threads, batch {row.batch_size}, {row.decode_workers} decoders: "
            f"model only {row.model_only_per_s:7.1f} img/s | end to end {row.end_to_end_per_s:7.1f} img/s | "
            f"ratio {row.ratio:.2f} ({flag})"
        )
    print(
        f"video sampling {video.resolution} {video.fps:g} fps, {video.duration_s:g} s at 1 frame/s: "
        f"{video.frames_per_s:.1f} frames/s kept, {video.x_realtime:.1f}x realtime"
    )
    print(
        json.dumps(
            {"bench": "ingest", "models": [asdict(r) for r in results], "video": asdict(video), "cpu_count": os.cpu_count()}
        )
    )
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="bundled model, 256 images, 20 s video (about a minute)")
    parser.add_argument("--models", help=f"comma-separated model specs (default: {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--images", type=int, default=None, help="images to ingest (default 512, quick 256)")
    parser.add_argument("--image-size", type=int, default=320, help="side of the generated images in pixels")
    parser.add_argument("--video-seconds", type=float, default=None, help="length of the sampled clip (default 60, quick 20)")
    parser.add_argument("--video-min-side", type=int, default=224, help="kept frames are converted to this shortest side")
    args = parser.parse_args(argv)
    default_models = (BUNDLED_MODEL,) if args.quick else DEFAULT_MODELS
    args.models = [m.strip() for m in args.models.split(",")] if args.models else list(default_models)
    args.images = args.images or (256 if args.quick else 512)
    args.video_seconds = args.video_seconds or (20.0 if args.quick else 60.0)
    return args


def make_images(folder: Path, count: int, size: int) -> Path:
    """Procedural photos, mixed JPEG/PNG/WebP as in the demo corpus (rendered, not timed)."""
    generate_images(folder, count, seed=7, size=size)
    return folder


def bench_model(model: str, folder: Path, data_dir: Path, count: int) -> ModelFigures:
    settings = load_settings(data_dir=data_dir, model=model)
    services = Services(settings)
    try:
        embedder = services.embedder
        services.store  # noqa: B018 - open it before the clock starts, like a long-running process
        before = model_only_rate(embedder, folder, count)
        started = time.perf_counter()
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        elapsed = time.perf_counter() - started
        model_rate = (before + model_only_rate(embedder, folder, count)) / 2  # brackets e2e: a shared machine drifts
        if job.indexed != count:
            raise RuntimeError(f"{model}: indexed {job.indexed} of {count} images ({job.failed} failed)")
        points = services.store.count()
    finally:
        services.close()
    e2e = count / elapsed
    return ModelFigures(
        model,
        str(embedder.device),
        settings.torch_threads(),
        embedder.batch_size,
        settings.ingest.decode_workers,
        count,
        round(model_rate, 2),
        round(e2e, 2),
        round(e2e / model_rate, 3),
        points,
    )


def model_only_rate(embedder: Embedder, folder: Path, count: int) -> float:
    """Images/s of ``encode_image_tensors`` alone, in ingest-sized batches, after a warm-up."""
    files = sorted(folder.iterdir())[: min(count, embedder.batch_size * 2)]
    tensors = [embedder.preprocess(decode_image(path, draft_size=embedder.image_size).image) for path in files]
    batch = torch.stack([tensors[i % len(tensors)] for i in range(embedder.batch_size)])
    embedder.encode_image_tensors(batch)  # warm-up: allocations, kernel selection
    batches = max(2, count // embedder.batch_size)
    started = time.perf_counter()
    for _ in range(batches):
        embedder.encode_image_tensors(batch)
    return batches * embedder.batch_size / (time.perf_counter() - started)


def bench_video(path: Path, seconds: float, min_side: int) -> VideoFigures:
    """PyAV sampling at 1 frame/s of a 640x360, 30 fps H.264 clip (rendered, not timed)."""
    make_clip(path, seconds, fps=30, width=640, height=360)
    info = probe_video(path)
    started = time.perf_counter()
    kept = sum(1 for _ in sample_frames(path, SamplingPlan(rate=1.0, min_side=min_side), info))
    elapsed = time.perf_counter() - started
    return VideoFigures(
        round(info.duration, 2),
        f"{info.width}x{info.height}",
        round(info.fps, 2),
        kept,
        round(elapsed, 3),
        round(kept / elapsed, 2),
        round(info.duration / elapsed, 2),
    )


def make_clip(path: Path, seconds: float, fps: int, width: int, height: int) -> None:
    """A textured, moving scene (so the encoder does real work) with a cut every 5 seconds."""
    rng = np.random.default_rng(11)
    textures = [rng.integers(0, 255, (height, width * 2, 3), np.uint8) for _ in range(3)]

    def frames():  # type: ignore[no-untyped-def]
        for i in range(int(seconds * fps)):
            texture = textures[(i // (5 * fps)) % len(textures)]
            offset = (i * 4) % width
            frame = np.ascontiguousarray(texture[:, offset : offset + width])
            x = (i * 6) % (width - 80)
            frame[100:180, x : x + 80] = (230, 40, 40)
            yield frame

    write_video(path, frames(), fps, width, height)


if __name__ == "__main__":
    sys.exit(main())
