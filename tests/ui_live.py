"""A live mmsearch API (and UI) for the UI, browser and demo tests: real processes, real data.

One ``mmsearch serve`` process per test session (the first test that asks starts it): a small
corpus is rendered from the procedural world and indexed through the API's own ``POST /ingest``
with the bundled model, so the data path is the one a user's UI takes. Every UI test module
then talks to that one API, which owns the embedded store (it admits one process at a time).
The process is stopped when the test session's interpreter exits.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from mmsearch.serve import stop_process

ROOT = Path(__file__).resolve().parent.parent
MODEL = "mmsearch-synthetic"
SEED = 20261123
N_IMAGES, N_VIDEOS, N_PRODUCTS = 36, 2, 10
READY_TIMEOUT = 120.0
INGEST_TIMEOUT = 240.0


@dataclass(frozen=True)
class LiveData:
    """An indexed corpus plus the ground truth of what is in it."""

    corpus: Path
    truth: dict

    def image_pairs(self, name: str) -> set[tuple[str, str]]:
        """(colour, shape) pairs drawn in the corpus image called ``name``."""
        for image in self.truth["images"]:
            if Path(image["path"]).name == name:
                return {(o["colour"], o["shape"]) for o in image["scene"]["objects"]}
        raise KeyError(name)

    def image_colours(self, name: str) -> set[str]:
        return {colour for colour, _ in self.image_pairs(name)}

    def image_names(self) -> list[str]:
        return [Path(image["path"]).name for image in self.truth["images"]]

    def products(self) -> list[dict]:
        return list(self.truth["products"]["products"])

    def product_by_title(self, title: str) -> dict:
        return next(p for p in self.products() if p["title"] == title)


@dataclass(frozen=True)
class LiveApi:
    """A running ``mmsearch serve`` with the corpus indexed."""

    url: str
    data_dir: Path
    data: LiveData
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


_shared: LiveApi | None = None


def shared_api() -> LiveApi:
    """The session's API, started and filled on first use; later calls return the same one."""
    global _shared
    if _shared is None:
        _shared = _start_shared()
    return _shared


def _start_shared() -> LiveApi:
    base = Path(tempfile.mkdtemp(prefix="mmsearch-ui-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    from synthetic import generate_corpus  # the test process may use the core; the UI may not

    generate_corpus(base / "corpus", seed=SEED, n_images=N_IMAGES, n_videos=N_VIDEOS, n_products=N_PRODUCTS)
    data = LiveData(base / "corpus", json.loads((base / "corpus" / "truth.json").read_text()))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = base / "api.log"
    serve = mmsearch(base / "data", "serve", "--port", str(port), "--root", str(base / "corpus"))  # the corpus may be ingested
    process = start(serve, child_env(), log_path)
    atexit.register(stop, process)
    wait_ready(process, f"{url}/readyz", READY_TIMEOUT, log_path)
    api = LiveApi(url, base / "data", data, log_path)
    _ingest(api)
    return api


def _ingest(api: LiveApi) -> None:
    """Index the corpus through the API, as the UI's Ingest page would, and wait for it."""
    corpus = api.data.corpus
    body = {"paths": [str(corpus / "images"), str(corpus / "videos")], "manifests": [str(corpus / "products" / "products.csv")]}
    job = wait_for_job(api.url, start_job(api.url, body), INGEST_TIMEOUT)
    if job["status"] != "done" or job["failed"] or not job["indexed"]:
        raise RuntimeError(f"ingesting the UI test corpus went wrong: {json.dumps(job)[:3000]}\n{api.log_tail()}")


def start_job(api_url: str, body: dict) -> str:
    response = httpx.post(f"{api_url}/ingest", json=body, timeout=30.0)
    if response.status_code != 202:
        raise RuntimeError(f"POST /ingest answered {response.status_code}: {response.text[:2000]}")
    return str(response.json()["job_id"])


def wait_for_job(api_url: str, job_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{api_url}/jobs/{job_id}", timeout=10.0).json()
        if job.get("finished") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """A child's environment: no inherited MMSEARCH_ settings, one torch thread, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMSEARCH_")}
    env.update(
        MMSEARCH_EMBEDDER__THREADS="1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
        **extra,
    )
    return env


def mmsearch(data_dir: Path, *args: str) -> list[str]:
    """The ``mmsearch`` command line on ``data_dir`` with the bundled model."""
    return [sys.executable, "-m", "mmsearch.cli", "--data-dir", str(data_dir), "--model", MODEL, *args]


def start(command: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a process at low priority (the test machine is shared), output into ``log_path``."""
    log: IO[str] = open(log_path, "w")  # noqa: SIM115 - the child holds it; closed with the process
    try:
        return subprocess.Popen(["nice", "-n", "5", *command], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def wait_ready(process: subprocess.Popen, url: str, timeout: float, log_path: Path) -> None:
    """Poll ``url`` until it answers 200; fail with the process's log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s:\n{log_path.read_text(errors='replace')[-4000:]}")


def stop(process: subprocess.Popen, grace: float = 15.0) -> int | None:
    """Terminate politely, then kill; returns the exit status."""
    stop_process(process, grace)
    return process.returncode


@contextmanager
def live_ui(api_url: str, log_dir: Path, api_key: str | None = None) -> Iterator[str]:
    """The UI as ``mmsearch serve --ui`` starts it (``start_ui``), against ``api_url``."""
    from mmsearch.serve import start_ui

    port = free_port()
    log_path = log_dir / "ui.log"
    process = start_ui(api_url, port, log_path=log_path, api_key=api_key)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/_stcore/health", 90.0, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@contextmanager
def serving_in_thread(app: Any, start_timeout: float = 60.0) -> Iterator[str]:
    """``app`` under uvicorn in a thread of this process, on a socket bound to a free loopback
    port before the server starts (no race for the port); yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
