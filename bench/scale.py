"""The embedded store at archive scale: build, index, query, recall and memory, with and without int8.

Points go in through the store facade (``open_store`` + ``upsert``), and the index is built the
way a user's store builds it: by the background maintainer once the unindexed part passes its
threshold. The benchmark never calls ``optimize()``; it only waits until the maintainer reports
the collection indexed, and times that wait. Vectors are clustered (a few thousand centres with
noise, like photos of the same scenes), so recall@10 against exact search means something;
payloads are shaped like ingest's (bench/query.py).

    python bench/scale.py                      # 100k and 1M points, int8 and float (hours on 2 cores)
    python bench/scale.py --sizes 100000       # one size
    python bench/scale.py --quick              # 20k points, int8 only: a smoke run (~2 min)

qdrant-client's local mode (the server's stand-in in tests) is left out on purpose: it scores
every vector in Python, so beyond ~10k points it measures Python, not Qdrant.

Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.query import payload, wait_indexed  # the same ingest-shaped payloads and index wait
from search.ids import point_id
from search.settings import IndexSettings, load_settings
from search.store import Filter, Match, Point, VectorStore, open_store

MODEL = "bench-scale"
BATCH = 2048


@dataclass(frozen=True)
class Result:
    points: int
    quantization: str
    build_s: float  # upserts through the facade
    index_wait_s: float  # from the last upsert until the maintainer reports it indexed
    indexed: int
    p50_ms: float
    p99_ms: float
    p50_selective_ms: float  # filter matching ~1% (one folder of one source)
    p50_broad_ms: float  # filter matching ~70% (kind = image)
    recall_at_10: float
    rss_mb: float
    disk_mb: float


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(16, n // 200), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def fill(store: VectorStore, vectors: np.ndarray) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(vectors), BATCH):
        points = []
        for j, vector in enumerate(vectors[start : start + BATCH]):
            p = payload(start + j, MODEL)
            pid = point_id(MODEL, p["media_id"], p["kind"], t=p.get("t"))
            points.append(Point(pid, vector, p))
            ids.append(pid)
        store.upsert(points)
    return ids


def latencies(store: VectorStore, queries: np.ndarray, flt: Filter | None) -> list[float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        store.query(q, flt, limit=10)
        times.append((time.perf_counter() - t) * 1000)
    return times


def recall(store: VectorStore, vectors: np.ndarray, ids: list[str], queries: np.ndarray) -> float:
    """Mean overlap of the store's top 10 with the exact top 10 computed here in numpy."""
    found = 0
    for q in queries:
        exact = {ids[i] for i in np.argsort(-(vectors @ q))[:10]}
        found += len(exact & {h.id for h in store.query(q, None, limit=10)})
    return found / (10 * len(queries))


def bench_one(n: int, dim: int, quantization: str, n_queries: int, root: Path, limit_s: float) -> Result:
    index = IndexSettings(quantization=quantization)  # type: ignore[arg-type]
    settings = load_settings(data_dir=root / f"{n}-{quantization}", index=index)
    store = open_store(settings, dim=dim, model=MODEL)
    try:
        vectors = clustered(n, dim)
        rng = np.random.default_rng(1)
        queries = vectors[rng.integers(0, n, n_queries)] + 0.05 * rng.normal(size=(n_queries, dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        t = time.monotonic()
        ids = fill(store, vectors)
        build_s = time.monotonic() - t
        del vectors  # RSS below is the store's, not this benchmark's copy (regenerated for recall)
        index_wait_s = wait_indexed(store, index.threshold_points, limit_s)
        latencies(store, queries[:20], None)  # warm the caches
        memory = rss_mb()
        plain = latencies(store, queries, None)
        selective = latencies(store, queries, Filter(must=(Match("dirs", ("/data/photos/2019",)), Match("source", ("src1",)))))
        broad = latencies(store, queries, Filter(must=(Match("kind", ("image",)),)))
        state = store.index_state()
        return Result(
            points=n,
            quantization=quantization,
            build_s=round(build_s, 1),
            index_wait_s=round(index_wait_s, 1),
            indexed=state.indexed,
            p50_ms=round(statistics.median(plain), 2),
            p99_ms=round(float(np.percentile(plain, 99)), 2),
            p50_selective_ms=round(statistics.median(selective), 2),
            p50_broad_ms=round(statistics.median(broad), 2),
            recall_at_10=round(recall(store, clustered(n, dim), ids, queries[: min(100, n_queries)]), 4),
            rss_mb=round(memory, 0),
            disk_mb=round(disk_mb(settings.data_dir), 0),
        )
    finally:
        store.close()
        shutil.rmtree(settings.data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated point counts")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quantization", default="int8,none", help="int8, none, or both")
    parser.add_argument("--limit-s", type=float, default=4 * 3600, help="give up waiting for the index after this")
    parser.add_argument("--quick", action="store_true", help="20k points, int8 only")
    args = parser.parse_args(argv)
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    modes = ["int8"] if args.quick else args.quantization.split(",")
    root = Path(tempfile.mkdtemp(prefix="mmsearch-scale-"))
    results = []
    try:
        for quantization in modes:
            for n in sizes:
                result = bench_one(n, args.dim, quantization, args.queries, root, args.limit_s)
                results.append(result)
                print(
                    f"{n:>9} pts {quantization:>5}: build {result.build_s:7.1f} s, indexed after {result.index_wait_s:7.1f} s, "
                    f"p50 {result.p50_ms:6.2f} ms (p99 {result.p99_ms:6.2f}), selective {result.p50_selective_ms:6.2f} ms, "
                    f"broad {result.p50_broad_ms:6.2f} ms, recall@10 {result.recall_at_10:.4f}, "
                    f"RSS {result.rss_mb:.0f} MB, disk {result.disk_mb:.0f} MB",
                    flush=True,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"bench": "scale", "cpus": os.cpu_count(), "results": [asdict(r) for r in results]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
