"""Query latency: engine and HTTP API, Qdrant Edge vs qdrant-client local mode, 10k and 100k points;
hybrid (dense + BM25 fused in one engine call) and keyword-only text search beside vector-only.

Measured through the real code: ``search.engine.search`` in-process, and the FastAPI app
served by a live uvicorn over a keep-alive HTTP connection. Points are synthetic (random unit
vectors of the model's size, payloads shaped like ingest's), the query text goes through the
real text encoder. The encoder's time is reported apart: ``encode`` is a fresh text through the
model, and the API rows show the API's own overhead (``overhead = latency - encode_ms`` as the
server reports it; repeated texts hit the LRU, so their encode time is near zero).

    python bench/query.py                        # 10k and 100k, both backends (a few minutes)
    python bench/query.py --quick                # 2k points, few queries: a smoke run (~1 min)

Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.embedder import Embedder, load_embedder
from search.engine import FilterSpec, SearchRequest, search
from search.ids import media_id, point_id
from search.payload import normalise_payload
from search.query import IdTerm, TextTerm
from search.services import Services
from search.settings import Settings, load_settings
from search.store import Point, VectorStore, open_store

FOLDERS = [f"/data/photos/{year}" for year in range(2012, 2024)]
T0 = 1_325_376_000.0  # 2012-01-01
YEAR = 365 * 86_400.0
TEXTS = ["a red circle", "a blue square", "a green triangle", "a yellow star", "sunset over the sea", "a dog"]
# hybrid and keyword rows: words that name things (file names, brands, titles) and plain visual text
KEYWORD_TEXTS = ["IMG_000042.jpg", "photos 2019", "acme shoes", "Product 77", "a red circle", "zeta hats"]
QUERY_KINDS = ("text", "hybrid", "keyword", "id", "arithmetic")  # text: vector mode
INDEXED_THRESHOLD = 20_000  # points: the fill waits until at most this many remain outside the HNSW index
INDEX_WAIT_S = 3_600.0
FILTER = FilterSpec(kinds=("image",), path_prefix="/data/photos/2019", taken_after=T0 + 7 * YEAR)
FILTER_JSON = {"kinds": ["image"], "path_prefix": "/data/photos/2019", "taken_after": T0 + 7 * YEAR}


@dataclass(frozen=True)
class Row:
    backend: str
    points: int
    via: str  # engine | api
    query: str  # text | id | arithmetic
    filtered: bool
    n: int
    p50_ms: float
    p99_ms: float
    qps: float
    encode_p50_ms: float
    overhead_p50_ms: float  # latency minus the encoder's share


class _Prebuilt(Services):
    """Services over an embedder and store built once by the bench (loading the model per run
    would measure start-up, not queries)."""

    def __init__(self, settings: Settings, embedder: Embedder, store: VectorStore) -> None:
        super().__init__(settings)
        self._embedder = embedder
        self._store = store


# --- corpus -----------------------------------------------------------------------------------


def payload(i: int, model: str) -> dict:
    """A payload shaped like ingest's: 70% images, 20% frames, 10% products."""
    folder = FOLDERS[i % len(FOLDERS)]
    kind = "image" if i % 10 < 7 else "frame" if i % 10 < 9 else "product"
    uri = f"file://{folder}/IMG_{i:06d}.jpg"
    mid = media_id(uri)
    p = {
        "kind": kind,
        "media_id": mid,
        "source": f"src{i % 3}",
        "uri": uri,
        "path": uri[7:],
        "dirs": ["/data", "/data/photos", folder],
        "name": f"IMG_{i:06d}.jpg",
        "taken_at": T0 + (i * 7919 % 12_000) / 12_000 * 12 * YEAR,
        "size_bytes": 200_000 + i % 5_000_000,
        "width": 4032,
        "height": 3024,
        "thumb": f"{mid}.webp",
        "model": model,
    }
    if kind == "frame":
        p.update(video_id=mid, t=float(i % 60), duration=60.0)
    if kind == "product":
        p.update(
            product_id=f"P{i}",
            title=f"Product {i}",
            category=["shoes", "bags", "hats"][i % 3],
            brand=["acme", "zeta"][i % 2],
            price=float(i % 300),
        )
    return normalise_payload(p) or p  # as ingest writes it: with the derived fields (searchable words, …)


def fill(store: VectorStore, n: int, dim: int, model: str, batch: int = 2048) -> list[str]:
    rng = np.random.default_rng(0)
    ids: list[str] = []
    for start in range(0, n, batch):
        vectors = rng.normal(size=(min(batch, n - start), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        points = []
        for j, vector in enumerate(vectors):
            p = payload(start + j, model)
            pid = point_id(model, p["media_id"], p["kind"], t=p.get("t"))
            points.append(Point(pid, vector, p))
            ids.append(pid)
        store.upsert(points)
    wait_indexed(store, INDEXED_THRESHOLD, INDEX_WAIT_S)
    return ids


def wait_indexed(store: VectorStore, threshold: int, limit_s: float) -> float:
    """Seconds until the index maintainer has built the HNSW index over all but a remainder
    below ``threshold`` (as bench/scale.py waits): queries are timed on an indexed store."""
    started = time.monotonic()
    store.request_index()
    while time.monotonic() - started < limit_s:
        state = store.index_state()
        if not state.optimizing and state.unindexed < threshold:
            return time.monotonic() - started
        time.sleep(1.0)
    raise TimeoutError(f"not indexed after {limit_s:.0f} s: {store.index_state()}")


# --- measurement ------------------------------------------------------------------------------


def timed(action: Callable[[], float], n: int, warmup: int) -> tuple[list[float], list[float], float]:
    """Latencies (ms), encoder shares (ms) and wall seconds of ``n`` calls after ``warmup``."""
    for _ in range(warmup):
        action()
    latencies, encodes = [], []
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        encode_ms = action()
        latencies.append((time.perf_counter() - t0) * 1000)
        encodes.append(encode_ms)
    return latencies, encodes, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def row(backend: str, points: int, via: str, query: str, filtered: bool, samples: tuple[list[float], list[float], float]) -> Row:
    lat, enc, wall = samples
    overhead = [a - b for a, b in zip(lat, enc)]
    return Row(
        backend,
        points,
        via,
        query,
        filtered,
        len(lat),
        round(pct(lat, 0.5), 3),
        round(pct(lat, 0.99), 3),
        round(len(lat) / wall, 1),
        round(statistics.median(enc), 3),
        round(pct(overhead, 0.5), 3),
    )


def engine_request(kind: str, i: int, ids: list[str], filtered: bool) -> SearchRequest:
    spec = FILTER if filtered else FilterSpec()
    text = TEXTS[i % len(TEXTS)]
    if kind in ("hybrid", "keyword"):
        words = KEYWORD_TEXTS[i % len(KEYWORD_TEXTS)]
        return SearchRequest(terms=(TextTerm(words),), query_text=words, mode=kind, filters=spec, limit=24, dedup=False)
    if kind == "text":
        return SearchRequest(terms=(TextTerm(text),), mode="vector", filters=spec, limit=24, dedup=False)
    if kind == "id":
        terms: tuple = (IdTerm(ids[(i * 7) % len(ids)]),)
    else:
        terms = (TextTerm(text), IdTerm(ids[(i * 7) % len(ids)]), TextTerm(TEXTS[(i + 1) % len(TEXTS)], -0.5))
    return SearchRequest(terms=terms, filters=spec, limit=24, mode="vector")


def api_body(kind: str, i: int, ids: list[str], filtered: bool) -> dict:
    text, other = TEXTS[i % len(TEXTS)], TEXTS[(i + 1) % len(TEXTS)]
    ident = ids[(i * 7) % len(ids)]
    words = KEYWORD_TEXTS[i % len(KEYWORD_TEXTS)]
    body: dict = {
        "text": {"text": text, "mode": "vector", "dedup": False},
        "hybrid": {"query": words, "mode": "hybrid", "dedup": False},
        "keyword": {"query": words, "mode": "keyword", "dedup": False},
        "id": {"id": ident, "mode": "vector"},
        "arithmetic": {"query": f'"{text}" + id:{ident} - 0.5*"{other}"', "mode": "vector"},
    }[kind]
    body["limit"] = 24
    if filtered:
        body["filters"] = FILTER_JSON
    return body


@contextmanager
def live_api(settings: Settings, services: Services) -> Iterator[str]:
    """The real app under uvicorn in a thread, on a free local port."""
    import uvicorn

    from search.api import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, services=services), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def bench_backend(backend: str, size: int, settings: Settings, embedder: Embedder, n: int, warmup: int) -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix=f"mmsearch-bench-{backend}-"))
    url = f"edge://{root}" if backend == "edge" else "memory://"
    run_settings = settings.model_copy(update={"store_url": url, "data_dir": root})
    store = open_store(run_settings, dim=embedder.dim, model=embedder.model_name)
    t0 = time.perf_counter()
    ids = fill(store, size, embedder.dim, embedder.model_name)
    print(f"  {backend}: {size} points indexed in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    services = _Prebuilt(run_settings, embedder, store)
    rows: list[Row] = []
    for kind in QUERY_KINDS:
        for filtered in (False, True):
            counter = iter(range(10**9))

            def via_engine() -> float:
                return search(services, engine_request(kind, next(counter), ids, filtered)).timings.encode_ms

            rows.append(row(backend, size, "engine", kind, filtered, timed(via_engine, n, warmup)))
    import httpx

    with live_api(run_settings, services) as base, httpx.Client(base_url=base, timeout=120) as client:
        for kind in QUERY_KINDS:
            for filtered in (False, True):
                counter = iter(range(10**9))

                def via_api() -> float:
                    response = client.post("/search", json=api_body(kind, next(counter), ids, filtered))
                    response.raise_for_status()
                    return response.json()["timings"]["encode_ms"]

                rows.append(row(backend, size, "api", kind, filtered, timed(via_api, n, warmup)))
    store.close()
    shutil.rmtree(root, ignore_errors=True)  # a 100k-point store is hundreds of MB
    return rows


def encoder_row(embedder: Embedder, n: int) -> dict:
    """A fresh text each time: the model's own cost, which the LRU saves on repeats."""
    latencies = []
    for i in range(n):
        t0 = time.perf_counter()
        embedder.encode_texts([f"a photo number {i} of something {time.perf_counter_ns()}"])
        latencies.append((time.perf_counter() - t0) * 1000)
    embedder.encode_texts(["a photo number 0 of something"])  # now in the LRU
    t0 = time.perf_counter()
    embedder.encode_texts(["a photo number 0 of something"])
    cached = (time.perf_counter() - t0) * 1000
    return {
        "fresh_p50_ms": round(pct(latencies, 0.5), 3),
        "fresh_p99_ms": round(pct(latencies, 0.99), 3),
        "cached_ms": round(cached, 4),
    }


def print_table(rows: list[Row]) -> None:
    header = f"{'backend':7} {'points':>7} {'via':6} {'query':10} {'filter':6} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'q/s':>7} {'enc p50':>8} {'ovh p50':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.backend:7} {r.points:>7} {r.via:6} {r.query:10} {'yes' if r.filtered else 'no':6} {r.n:>4} "
            f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.qps:>7.1f} {r.encode_p50_ms:>8.3f} {r.overhead_p50_ms:>8.2f}"
        )


def hybrid_cost(rows: list[Row]) -> dict:
    """Hybrid (and keyword-only) engine latency next to vector-only text search, per backend and size."""
    lines, figures = [], []
    for r in rows:
        if r.via != "engine" or r.query != "text":
            continue
        same = {
            x.query: x for x in rows if (x.backend, x.points, x.via, x.filtered) == (r.backend, r.points, "engine", r.filtered)
        }
        h, k = same.get("hybrid"), same.get("keyword")
        if h is None or k is None:
            continue
        filt = "filtered" if r.filtered else "unfiltered"
        lines.append(
            f"hybrid vs vector, {r.backend} {r.points} points {filt}: p50 {h.p50_ms:.2f} vs {r.p50_ms:.2f} ms "
            f"(keyword only {k.p50_ms:.2f}), p99 {h.p99_ms:.2f} vs {r.p99_ms:.2f} ms"
        )
        figures.append(
            {
                "backend": r.backend,
                "points": r.points,
                "filtered": r.filtered,
                "vector_p50_ms": r.p50_ms,
                "hybrid_p50_ms": h.p50_ms,
                "keyword_p50_ms": k.p50_ms,
                "vector_p99_ms": r.p99_ms,
                "hybrid_p99_ms": h.p99_ms,
            }
        )
    return {"lines": lines, "figures": figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated point counts")
    parser.add_argument("--backends", default="edge,server", help="edge and/or server (qdrant-client local mode)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per row on Edge")
    parser.add_argument("--server-queries", type=int, default=5, help="timed queries per row on local mode (slow)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--model", default=os.environ.get("MMSEARCH_MODEL", "mmsearch-synthetic"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: settings default)")
    parser.add_argument("--quick", action="store_true", help="2k points, 30 queries per row: check it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.queries, args.server_queries, args.warmup = "2000", 30, 5, 2
    settings = load_settings(model=args.model, device="cpu", embedder={"threads": args.threads})
    embedder = load_embedder(settings)
    rows: list[Row] = []
    for size in (int(s) for s in args.sizes.split(",")):
        for backend in args.backends.split(","):
            n = args.queries if backend == "edge" else args.server_queries
            rows += bench_backend(backend, size, settings, embedder, n, args.warmup if backend == "edge" else 1)
    encoder = encoder_row(embedder, 20)
    print_table(rows)
    hybrid = hybrid_cost(rows)
    for line in hybrid["lines"]:
        print(line)
    print(
        f"text encoder ({embedder.model_name}): fresh p50 {encoder['fresh_p50_ms']} ms, p99 {encoder['fresh_p99_ms']} ms; cached {encoder['cached_ms']} ms"
    )
    edge_api = [r for r in rows if r.backend == "edge" and r.via == "api" and r.points == max(r.points for r in rows)]
    worst = max((r.overhead_p50_ms for r in edge_api), default=float("nan"))
    print(
        f"API overhead p50 on Edge at {edge_api[0].points if edge_api else '-'} points, worst row: {worst:.2f} ms (target <= 10 ms)"
    )
    print(
        json.dumps(
            {
                "model": embedder.model_name,
                "encoder": encoder,
                "edge_api_overhead_p50_worst_ms": worst,
                "hybrid_vs_vector": hybrid["figures"],
                "rows": [asdict(r) for r in rows],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
