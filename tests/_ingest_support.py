"""Real media, real servers and real worker processes for the ingestion tests.

Everything here makes genuine artefacts: images through Pillow's encoders, videos through
PyAV's libx264, a site served by ``http.server`` on 127.0.0.1, scratch PostgreSQL databases,
and ``mmsearch worker`` subprocesses on the local Redis. Point ids are computed independently of
the pipeline (``search.ids``), so a test states exactly which points must exist.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
from PIL import Image

from search.embedder import Embedder
from search.ids import media_id, point_id
from search.services import Services
from search.settings import BUNDLED_MODEL, Settings, load_settings
from synthetic.video import write_video

REPO = Path(__file__).resolve().parent.parent
MODEL = BUNDLED_MODEL
REDIS_URL = os.environ.get("MMSEARCH_TEST_REDIS", "redis://127.0.0.1:6379/13")
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 50, 220), "yellow": (240, 220, 30)}


# -- media ------------------------------------------------------------------------------------


def make_image(path: Path, colour: str | tuple[int, int, int], size: tuple[int, int] = (96, 72), fmt: str | None = None) -> Path:
    """A flat-colour picture with a white square, so decoders have edges to chew on."""
    rgb = COLOURS[colour] if isinstance(colour, str) else colour
    image = Image.new("RGB", size, rgb)
    w, h = size
    image.paste((255, 255, 255), (w // 3, h // 3, w // 3 + max(2, w // 6), h // 3 + max(2, h // 6)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or _format_of(path)
    image.save(path, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return path


def _format_of(path: Path) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".gif": "GIF"}[path.suffix.lower()]


def make_video(
    path: Path, colours: Sequence[str], seconds_each: float = 2.0, fps: int = 8, size: tuple[int, int] = (96, 64)
) -> Path:
    """An H.264 MP4 showing each colour for ``seconds_each`` seconds (yuv420p, real encoder)."""
    width, height = size
    frames = []
    for colour in colours:
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[:] = COLOURS[colour]
        frames += [pixels] * int(round(seconds_each * fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps, width, height)
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An MP4 holding only an AAC stream: a 'video' file without a video stream."""
    rate = 16000
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = int(seconds * rate)
        tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / rate) * 0.2).astype(np.float32)
        step = 1024
        for start in range(0, samples, step):
            chunk = tone[start : start + step].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_bad_folder(root: Path) -> dict[str, str]:
    """One file per failure mode; returns file name → a phrase its failure reason must contain.

    The oversized image counts on ``BAD_MAX_PIXELS`` being the pixel limit of the settings.
    """
    root.mkdir(parents=True, exist_ok=True)
    good = make_image(root / "whole.jpg", "red", (160, 120))
    data = good.read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("this is a shopping list, not a photo\n" * 4)
    make_image(root / "huge.png", "blue", (700, 600))  # 0.42 MP, over BAD_MAX_PIXELS
    make_audio_only(root / "voice.mp4")
    clip = make_video(root / "clip.mp4", ["green", "blue"], seconds_each=1.0).read_bytes()
    (root / "broken.mp4").write_bytes(clip[:48] + secrets.token_bytes(len(clip) // 2))
    (root / "clip.mp4").unlink()
    return {
        "truncated.jpg": "truncated",
        "empty.jpg": "empty file",
        "notes.jpg": "not an image or a video: the content is text",
        "huge.png": "megapixels, over the limit",
        "voice.mp4": "no video stream",
        "broken.mp4": "corrupt",
    }


BAD_MAX_PIXELS = 300_000


# -- expected points ----------------------------------------------------------------------------


def file_uri(path: Path) -> str:
    return path.absolute().as_uri()


def image_point_id(path: Path, kind: str = "image", model: str = MODEL) -> str:
    return point_id(model, media_id(file_uri(path)), kind)


def video_point_ids(
    path: Path, frame_times: Sequence[float], windows: Sequence[tuple[float, float]], model: str = MODEL
) -> set[str]:
    """Frame points at ``frame_times`` and segment points over ``windows`` (start, end)."""
    video = media_id(file_uri(path))
    frames = {point_id(model, video, "frame", t=t) for t in frame_times}
    segments = {point_id(model, video, "segment", t=a, t_end=b) for a, b in windows}
    return frames | segments


# -- the standard folder ---------------------------------------------------------------------------

IMAGES = {"red.jpg": "red", "green.png": "green", "sub/blue.webp": "blue", "sub/deeper/yellow.jpg": "yellow"}
# a 4 s video (2 s red, 2 s blue) at 8 fps: frames sampled at 1/s and one 4 s window (stride 2)
VIDEO = "clips/redblue.mp4"
VIDEO_FRAMES = (0.0, 1.0, 2.0, 3.0)
VIDEO_WINDOWS = ((0.0, 4.0),)


def build_media(root: Path) -> Path:
    for name, colour in IMAGES.items():
        make_image(root / name, colour)
    make_video(root / VIDEO, ["red", "blue"], seconds_each=2.0)
    make_image(root / ".hidden" / "secret.jpg", "red")  # hidden folders are skipped
    make_image(root / ".dotfile.jpg", "red")  # so are hidden files
    (root / "readme.txt").write_text("not media: not even a candidate")
    return root


def expected_ids(root: Path) -> set[str]:
    ids = {image_point_id(root / name) for name in IMAGES}
    return ids | video_point_ids(root / VIDEO, VIDEO_FRAMES, VIDEO_WINDOWS)


# -- settings and processes ----------------------------------------------------------------------


def base_settings(data_dir: Path, **overrides: object) -> Settings:
    """Test settings: the bundled model, one torch thread, everything else as given.

    Store, catalog and broker default to the embedded ones whatever the environment says, so
    a developer's MMSEARCH_BROKER_URL cannot turn an in-process test into a distributed one.
    """
    for name in ("store_url", "catalog_url", "broker_url"):
        overrides.setdefault(name, None)
    embedder = {"threads": 1, "batch_size": 16, **dict(overrides.pop("embedder", {}) or {})}  # type: ignore[call-overload]
    ingest = {"decode_workers": 2, **dict(overrides.pop("ingest", {}) or {})}  # type: ignore[call-overload]
    # OCR costs seconds an image here: only the tests of OCR turn it on
    ocr = {"enabled": False, **dict(overrides.pop("ocr", {}) or {})}  # type: ignore[call-overload]
    return load_settings(data_dir=data_dir, model=MODEL, device="cpu", embedder=embedder, ingest=ingest, ocr=ocr, **overrides)


class SharedModelServices(Services):
    """``Services`` whose embedder was loaded once for a whole test module (a load costs seconds)."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        super().__init__(settings)
        self._embedder = embedder


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess build the same settings (MMSEARCH_ variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMSEARCH_")}
    env.update(
        {
            "MMSEARCH_DATA_DIR": str(settings.data_dir),
            "MMSEARCH_MODEL": settings.model,
            "MMSEARCH_DEVICE": settings.device,
            "MMSEARCH_EMBEDDER__THREADS": str(settings.embedder.threads or 1),
            "MMSEARCH_EMBEDDER__BATCH_SIZE": str(settings.embedder.batch_size),
            "MMSEARCH_OCR__ENABLED": "true" if settings.ocr.enabled else "false",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name in ("store_url", "catalog_url", "broker_url"):
        value = getattr(settings, name)
        if value:
            env[f"MMSEARCH_{name.upper()}"] = value
    for name, value in settings.ingest.model_dump().items():
        default = type(settings.ingest).model_fields[name].default
        if name in settings.ingest.model_fields_set or value != default:
            env[f"MMSEARCH_INGEST__{name.upper()}"] = _env_value(value)
    return env


def _env_value(value: object) -> str:
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def mmsearch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmsearch.cli", *args]


class Worker:
    """A real ``mmsearch worker`` subprocess in its own process group (so SIGKILL takes it all)."""

    def __init__(self, settings: Settings, log_path: Path, queues: str = "cpu,gpu") -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 -- closed in stop(); the worker outlives this call
        self.process = subprocess.Popen(
            ["nice", "-n", "10", *mmsearch_command("worker", "--queues", queues, "--concurrency", "1", "--loglevel", "INFO")],
            cwd=REPO,
            env=settings_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until Celery logs 'ready' (imports done, consuming)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        """Warm shutdown (SIGTERM): the worker finishes its task and closes the store."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group: as if the machine died."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._log.close()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")


@contextmanager
def running_worker(settings: Settings, log_path: Path, queues: str = "cpu,gpu") -> Iterator[Worker]:
    worker = Worker(settings, log_path, queues)
    try:
        worker.wait_ready()
        yield worker
    finally:
        if worker.process.poll() is None:
            worker.stop()


def scratch_queues() -> dict[str, str]:
    """Queue names of our own, so other users of the shared Redis never see our tasks."""
    tag = secrets.token_hex(4)
    return {"cpu_queue": f"test-cpu-{tag}", "gpu_queue": f"test-gpu-{tag}", "enrich_queue": f"test-enrich-{tag}"}


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"mmsearch_ingest_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- a small web site ----------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves a folder, answers the configured redirects and statuses, logs request paths."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        redirects = getattr(self.server, "redirects", {})
        if self.path in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        statuses = getattr(self.server, "statuses", {})
        if self.path in statuses:
            code = statuses[self.path].pop(0) if statuses[self.path] else 200
            if code != 200:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        super().do_GET()


@contextmanager
def serve_folder(
    root: Path, redirects: dict[str, str] | None = None, statuses: dict[str, list[int]] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Serve ``root`` on 127.0.0.1 (a free port) in a thread; yields (base URL, requested paths)."""

    def handler(*args: object, **kwargs: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    server.requests = []  # type: ignore[attr-defined]
    server.redirects = redirects or {}  # type: ignore[attr-defined]
    server.statuses = statuses or {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
