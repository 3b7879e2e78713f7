"""Load: 30 to 50 concurrent clients of mixed queries against a real ``mmsearch serve``, with and
without an ingest job running in the same process.

Everything stays on loopback: the bench renders a small procedural corpus into a scratch data
directory, starts ``mmsearch serve`` on 127.0.0.1 (embedded Qdrant Edge, the bundled model),
indexes the corpus through ``POST /ingest`` and waits for it, then runs two timed phases of the
same load: ``idle`` (searches only) and ``ingest`` (a second corpus being ingested through the
API meanwhile). Each client is a thread with its own keep-alive connection, sending text, id,
arithmetic, filtered and moment queries in turn. Requests/s, p50/p99 latency and errors are
reported per phase and per query kind.

    python bench/load.py                 # 40 clients, 20 s per phase (about 2 minutes in all)
    python bench/load.py --quick         # 30 clients, 8 s per phase
    python bench/load.py --clients 50 --seconds 30

Bounded: each phase lasts ``--seconds``; start-up, indexing and shutdown have their own
timeouts. Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

HOST = "127.0.0.1"  # loopback only: nothing here is meant to reach another machine
MODEL = "mmsearch-synthetic"
KINDS = ("text", "id", "arithmetic", "filtered", "moments")
TEXTS = ("a red circle", "a blue square", "a green triangle", "a yellow star", "a large purple heart", "a small orange shape")
START_TIMEOUT_S = 180.0
INDEX_TIMEOUT_S = 600.0
REQUEST_TIMEOUT_S = 30.0


@dataclass
class Sample:
    kind: str
    ms: float
    ok: bool


@dataclass
class KindFigures:
    kind: str
    n: int
    errors: int
    p50_ms: float
    p99_ms: float


@dataclass
class Phase:
    name: str
    clients: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    by_kind: list[KindFigures] = field(default_factory=list)
    error_examples: list[str] = field(default_factory=list)
    ingest: dict[str, Any] | None = None  # the job running meanwhile: progress at start and end


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, threads: int) -> dict[str, str]:
    """A clean MMSEARCH_ environment: embedded store and catalog, the bundled model, on the CPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMSEARCH_")}
    env.update(
        {
            "MMSEARCH_DATA_DIR": str(data_dir),
            "MMSEARCH_MODEL": MODEL,
            "MMSEARCH_DEVICE": "cpu",
            "MMSEARCH_EMBEDDER__THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextmanager
def running_server(data_dir: Path, threads: int) -> Iterator[str]:
    """``mmsearch serve`` as a child process on a free loopback port; stopped with SIGINT, then killed."""
    port = free_port()
    log = (data_dir / "serve.log").open("wb")
    command = [sys.executable, "-m", "mmsearch.cli", "serve", "--host", HOST, "--port", str(port)]
    child = subprocess.Popen(command, cwd=REPO, env=server_env(data_dir, threads), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        wait_ready(url, child, data_dir)
        yield url
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)
        log.close()


def wait_ready(url: str, child: subprocess.Popen, data_dir: Path) -> None:
    end = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < end:
        if child.poll() is not None:
            raise SystemExit(f"mmsearch serve exited with {child.returncode}; see {data_dir / 'serve.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"mmsearch serve was not ready within {START_TIMEOUT_S:.0f} s; see {data_dir / 'serve.log'}")


# --- corpus and indexing -------------------------------------------------------------------------


def render(folder: Path, seed: int, images: int, videos: int, products: int) -> dict[str, list[str]]:
    """A procedural corpus, as the body of an ingest request."""
    from synthetic import generate_corpus

    generate_corpus(folder, seed=seed, n_images=images, n_videos=videos, n_products=products)
    body: dict[str, list[str]] = {"paths": [str(folder / "images"), str(folder / "videos")]}
    if products:
        body["manifests"] = [str(folder / "products" / "products.csv")]
    return body


def start_ingest(client: httpx.Client, body: dict[str, list[str]]) -> str:
    response = client.post("/ingest", json=body)
    if response.status_code != 202:
        raise SystemExit(f"POST /ingest answered {response.status_code}: {response.text[:500]}")
    return str(response.json()["job_id"])


def job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}", params={"failures": 3})
    response.raise_for_status()
    return dict(response.json())


def wait_job(client: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = job(client, job_id)
        if state["finished"]:
            return state
        time.sleep(0.5)
    raise SystemExit(f"ingest job {job_id} did not finish within {timeout:.0f} s")


def progress(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state[k] for k in ("status", "discovered", "indexed", "failed", "finished")}


# --- the load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ids:
    """Indexed ids the id and arithmetic queries refer to."""

    images: tuple[str, ...]


def find_ids(client: httpx.Client) -> Ids:
    response = client.post("/search", json={"text": "a shape", "limit": 20, "filters": {"kinds": ["image"]}})
    response.raise_for_status()
    ids = tuple(r["id"] for r in response.json()["results"] if r.get("id"))
    if not ids:
        raise SystemExit("the index has no images to refer to by id")
    return Ids(ids)


def body_for(kind: str, i: int, ids: Ids) -> dict[str, Any]:
    text = TEXTS[i % len(TEXTS)]
    some_id = ids.images[i % len(ids.images)]
    if kind == "text":
        return {"text": text, "limit": 10}
    if kind == "id":
        return {"id": some_id, "limit": 10}
    if kind == "arithmetic":
        return {"query": f'"{text}" + 0.5*id:{some_id} - 0.3*"blue"', "limit": 10}
    if kind == "filtered":
        return {"text": text, "limit": 10, "filters": {"kinds": ["image"]}}
    return {"text": text, "target": "moments", "limit": 5}


def client_loop(url: str, ids: Ids, offset: int, stop_at: float, out: list[Sample], errors: list[str]) -> None:
    """One client: mixed queries back to back until ``stop_at``, each timed from send to body."""
    i = offset
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        while time.monotonic() < stop_at:
            kind = KINDS[i % len(KINDS)]
            started = time.perf_counter()
            try:
                response = client.post("/search", json=body_for(kind, i, ids))
                ok = response.status_code == 200
                detail = "" if ok else f"{kind}: HTTP {response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                ok, detail = False, f"{kind}: {type(exc).__name__} {exc}"
            out.append(Sample(kind, (time.perf_counter() - started) * 1000, ok))
            if not ok and len(errors) < 5:
                errors.append(detail)  # a few examples are enough (list.append is atomic)
            i += 1


def run_phase(name: str, url: str, ids: Ids, clients: int, seconds: float) -> Phase:
    samples: list[list[Sample]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    started = time.monotonic()
    threads = [
        threading.Thread(target=client_loop, args=(url, ids, n, stop_at, samples[n], errors), daemon=True) for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT_S + 5)
    elapsed = time.monotonic() - started
    flat = [s for per_client in samples for s in per_client]
    by_kind = []
    for kind in KINDS:
        of_kind = [s for s in flat if s.kind == kind]
        by_kind.append(KindFigures(kind, len(of_kind), sum(not s.ok for s in of_kind), *percentiles([s.ms for s in of_kind])))
    p50, p99 = percentiles([s.ms for s in flat])
    return Phase(
        name,
        clients,
        round(elapsed, 1),
        len(flat),
        sum(not s.ok for s in flat),
        round(len(flat) / elapsed, 1),
        p50,
        p99,
        by_kind,
        errors[:5],
    )


def percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return round(values[0], 1), round(values[0], 1)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return round(statistics.median(values), 1), round(cuts[98], 1)


def print_table(phases: list[Phase]) -> None:
    print(f"{'phase':<8} {'clients':>7} {'s':>5} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for p in phases:
        print(
            f"{p.name:<8} {p.clients:>7} {p.seconds:>5.1f} {p.requests:>8} {p.errors:>6} {p.rps:>7.1f} {p.p50_ms:>8.1f} {p.p99_ms:>8.1f}"
        )
        for k in p.by_kind:
            print(f"  {k.kind:<12} {k.n:>6} requests, {k.errors} errors, p50 {k.p50_ms:.1f} ms, p99 {k.p99_ms:.1f} ms")
        if p.ingest:
            print(f"  ingest meanwhile: {p.ingest}")
        for example in p.error_examples:
            print(f"  error: {example}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=40, help="concurrent clients (30 to 50 is the measured range)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each timed phase")
    parser.add_argument("--images", type=int, default=120, help="photos in the searched corpus")
    parser.add_argument("--ingest-images", type=int, default=400, help="photos in the corpus ingested during the second phase")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    parser.add_argument("--quick", action="store_true", help="30 clients, 8 s per phase, smaller corpora")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.images, args.ingest_images = 30, 8.0, 60, 200
    data_dir = Path(tempfile.mkdtemp(prefix="mmsearch-load-"))
    try:
        return bench(args, data_dir)
    finally:
        if args.keep:
            print(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def bench(args: argparse.Namespace, data_dir: Path) -> int:
    started = time.monotonic()
    searched = render(data_dir / "corpus", seed=11, images=args.images, videos=2, products=12)
    ingested = render(data_dir / "corpus-ingest", seed=12, images=args.ingest_images, videos=1, products=0)
    print(f"corpora rendered in {time.monotonic() - started:.1f} s", flush=True)
    with running_server(data_dir, args.threads) as url, httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as admin:
        indexed = wait_job(admin, start_ingest(admin, searched), INDEX_TIMEOUT_S)
        print(f"server up and corpus indexed ({indexed['indexed']} items) in {time.monotonic() - started:.1f} s", flush=True)
        ids = find_ids(admin)
        run_phase("warmup", url, ids, min(args.clients, 8), 2.0)
        idle = run_phase("idle", url, ids, args.clients, args.seconds)
        job_id = start_ingest(admin, ingested)
        before = progress(job(admin, job_id))
        busy = run_phase("ingest", url, ids, args.clients, args.seconds)
        busy.ingest = {"job_id": job_id, "at_start": before, "at_end": progress(job(admin, job_id))}
        finished = wait_job(admin, job_id, INDEX_TIMEOUT_S)
        busy.ingest["final"] = progress(finished)
    phases = [idle, busy]
    print_table(phases)
    figures = {
        "bench": "load",
        "model": MODEL,
        "store": "edge",
        "cpu_count": os.cpu_count(),
        "searched_images": args.images,
        "phases": [asdict(p) for p in phases],
    }
    print(json.dumps(figures))
    return 0 if idle.errors == 0 and busy.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
