"""Long videos: decode speed (sequential against keyframe seeking) and a one-hour ingest.

Generates a low-bitrate procedural H.264 video (FFmpeg ``testsrc2``, a keyframe every
``--gop`` seconds): two minutes are encoded, then looped by stream copy to ``--minutes``, so
making an hour costs seconds while decoding it costs what any hour of that resolution costs.
Then, each in its own child process (so peak RSS is that phase's own):

- ``sequential``: ``sample_frames`` at ``--rate`` frames/s decoding every frame (seek=never);
- ``seek``: the same samples, seeking to the keyframe before each (seek=always);
- ``ingest``: ``run_ingest`` of the video with the bundled model (Qdrant Edge, SQLite), the
  settings' sampling (1 frame/s, max_frames_per_video raised to cover the hour).

For each: wall seconds, x realtime (video seconds per wall second), frames, peak RSS in MiB.
Decode phases may be limited to the first ``--decode-minutes`` to bound the run.

    python bench/video.py --minutes 60 --height 1080          # the issue's hour of 1080p
    python bench/video.py --minutes 2 --height 360 --quick    # a smoke run

Prints one line per phase, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"


def make_video(folder: Path, minutes: float, height: int, fps: int, gop: float) -> Path:
    """A ``minutes`` long H.264 MP4: a 2-minute procedural piece looped by stream copy."""
    width = height * 16 // 9 // 2 * 2
    piece = folder / "piece.mp4"
    seconds = min(120.0, minutes * 60)
    args = [FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(int(gop * fps)), "-b:v", "800k", "-pix_fmt", "yuv420p"]
    subprocess.run([*args, str(piece)], check=True, timeout=1800, stdin=subprocess.DEVNULL)
    loops = max(1, int(round(minutes * 60 / seconds)))
    out = folder / "media" / "long.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    loop = [FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-stream_loop", str(loops - 1), "-i", str(piece)]
    subprocess.run([*loop, "-c", "copy", str(out)], check=True, timeout=600, stdin=subprocess.DEVNULL)
    piece.unlink()
    return out


def _decode(path: str, rate: float, seek: str, limit_s: float, queue: Any) -> None:
    from search.media.video import SamplingPlan, probe_video, sample_frames

    info = probe_video(Path(path))
    started, kept, last = time.perf_counter(), 0, 0.0
    for frame in sample_frames(Path(path), SamplingPlan(rate=rate, max_frames=10**6, min_side=224, seek=seek), info):
        kept, last = kept + 1, frame.t
        if frame.t >= limit_s:
            break
    wall = time.perf_counter() - started
    queue.put({"wall_s": wall, "video_s": last, "frames": kept, "peak_rss_mib": _rss_mib()})


def _ingest(path: str, data_dir: str, queue: Any) -> None:
    from ingest.jobs import run_ingest
    from search.services import IngestRequest, Services
    from search.settings import BUNDLED_MODEL, load_settings

    settings = load_settings(data_dir=data_dir, model=BUNDLED_MODEL, ingest={"max_frames_per_video": 100_000})
    services = Services(settings)
    services.embedder  # noqa: B018 - load the model before the clock starts
    started = time.perf_counter()
    job = run_ingest(services, IngestRequest(paths=[str(Path(path).parent)]))
    wall = time.perf_counter() - started
    frames = services.store.count()
    services.close()
    queue.put({"wall_s": wall, "indexed": job.indexed, "failed": job.failed, "points": frames, "peak_rss_mib": _rss_mib()})


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _child(target: Any, *args: Any, timeout: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    try:
        return queue.get(timeout=timeout)
    except Exception:
        return {"error": f"no result within {timeout:.0f} s"}
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mmsearch-video-bench-", dir=args.workdir))
    try:
        started = time.perf_counter()
        video = make_video(work, args.minutes, args.height, args.fps, args.gop)
        figures: dict[str, Any] = {
            "minutes": args.minutes,
            "height": args.height,
            "fps": args.fps,
            "gop_s": args.gop,
            "rate": args.rate,
            "cores": os.cpu_count(),
            "file_mib": round(video.stat().st_size / 2**20, 1),
            "generate_s": round(time.perf_counter() - started, 1),
        }
        print(
            f"video: {args.minutes:g} min {args.height}p {args.fps} fps, {figures['file_mib']} MiB, made in {figures['generate_s']} s"
        )
        limit = args.decode_minutes * 60
        for mode in ("never", "always"):
            found = _child(_decode, str(video), args.rate, mode, limit, timeout=args.timeout)
            name = "sequential" if mode == "never" else "seek"
            if "wall_s" in found:
                found["x_realtime"] = round(found["video_s"] / found["wall_s"], 1)
            figures[name] = found
            print(f"{name:>10}: {found}")
        if not args.quick:
            found = _child(_ingest, str(video), str(work / "data"), timeout=args.timeout)
            if "wall_s" in found:
                found["x_realtime"] = round(args.minutes * 60 / found["wall_s"], 1)
            figures["ingest"] = found
            print(f"{'ingest':>10}: {found}")
        print(json.dumps({"bench": "video", **figures}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=float, default=2.0, help="seconds between keyframes")
    parser.add_argument("--rate", type=float, default=1.0, help="sampled frames per second")
    parser.add_argument("--decode-minutes", type=float, default=60.0, help="decode phases stop after this much video")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds each phase may take")
    parser.add_argument("--quick", action="store_true", help="decode phases only (no ingest)")
    parser.add_argument("--workdir", default=None, help="where the video is made (default: the system temp folder)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
