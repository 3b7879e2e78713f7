"""The duplicate finder at archive scale: run time of the near-duplicate pass, and what it finds.

Synthetic unit vectors go into an embedded store through the facade (``open_store`` +
``upsert``): random "distinct" pictures plus planted clusters of near copies (each copy is its
original plus small noise, cosine ≈ 0.98 to it). The HNSW index is built first (as the
embedded store's maintainer would), then ``search.duplicates.find_duplicates`` runs over the
whole collection with an empty catalog, so what is timed is the batched nearest-neighbour pass.

    python bench/duplicates.py                    # 100k points, 512 dimensions
    python bench/duplicates.py --points 20000     # a quicker run

Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.catalog import Catalog
from search.duplicates import find_duplicates
from search.ids import media_id, point_id
from search.settings import load_settings
from search.store import Point, open_store

MODEL = "bench-duplicates"
BATCH = 2048


def planted(points: int, clusters: int, dim: int, seed: int) -> tuple[np.ndarray, list[set[int]]]:
    """``points`` unit vectors, of which ``clusters`` groups of 2-4 are near copies of each other."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((points, dim)).astype(np.float32)
    groups: list[set[int]] = []
    index = 0
    for _ in range(clusters):
        size = int(rng.integers(2, 5))
        members = set(range(index, index + size))
        for member in range(index + 1, index + size):
            vectors[member] = vectors[index] + rng.standard_normal(dim).astype(np.float32) * 0.15
        groups.append(members)
        index += size
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, groups


def payload(i: int) -> dict:
    uri = f"file:///archive/{i // 1000:03d}/IMG_{i:06d}.jpg"
    return {"kind": "image", "media_id": media_id(uri), "uri": uri, "size_bytes": 2_000_000 + i, "taken_at": 1.6e9 + i}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--clusters", type=int, default=2_000, help="planted groups of near copies")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--neighbours", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256, help="points per batched query")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    vectors, groups = planted(args.points, args.clusters, args.dim, args.seed)
    root = Path(tempfile.mkdtemp(prefix="mmsearch-bench-dup-"))
    try:
        settings = load_settings(data_dir=root, model=MODEL, store_url=None, catalog_url=None)
        store = open_store(settings, dim=args.dim, model=MODEL)
        catalog = Catalog.open(settings.resolved_catalog_url)
        ids = [point_id(MODEL, payload(i)["media_id"], "image") for i in range(args.points)]
        started = time.perf_counter()
        for start in range(0, args.points, BATCH):
            stop = min(start + BATCH, args.points)
            store.upsert([Point(ids[i], vectors[i], payload(i)) for i in range(start, stop)])
        upsert_s = time.perf_counter() - started
        started = time.perf_counter()
        store.build_index(force=True)  # None when the maintainer is building already: then wait for it
        while (state := store.index_state()).optimizing or state.indexed < state.points // 2:
            if time.perf_counter() - started > 3600:
                raise TimeoutError(f"not indexed after an hour: {state}")
            time.sleep(1.0)
            if not state.optimizing:
                store.build_index(force=True)
        index_s = time.perf_counter() - started

        cpu_started = time.process_time()
        report = find_duplicates(
            store, catalog, threshold=args.threshold, neighbours=args.neighbours, batch=args.batch, exact=False
        )
        find_cpu_s = time.process_time() - cpu_started  # this process's threads: the figure a busy machine distorts least
        found = [{_number(i.uri) for i in g.items} for g in report.near]
        planted_sets = {frozenset(g) for g in groups}
        exact_recovered = sum(1 for g in found if frozenset(g) in planted_sets)
        in_planted = {m for g in groups for m in g}
        false_members = sum(1 for g in found for m in g if m not in in_planted)
        figures = {
            "points": args.points,
            "dim": args.dim,
            "planted_groups": len(groups),
            "found_groups": len(report.near),
            "groups_recovered_exactly": exact_recovered,
            "recall_groups": round(exact_recovered / len(groups), 4) if groups else None,
            "false_members": false_members,
            "upsert_s": round(upsert_s, 1),
            "index_build_s": round(index_s, 1),
            "indexed": state.indexed,
            "find_s": round(report.seconds, 2),
            "find_cpu_s": round(find_cpu_s, 2),
            "points_per_s": round(report.points_checked / report.seconds, 1),
            "threshold": args.threshold,
            "neighbours": args.neighbours,
            "batch": args.batch,
        }
        for key, value in figures.items():
            print(f"{key:>26}: {value}")
        print(json.dumps({"bench": "duplicates", **figures}))
        store.close()
        catalog.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _number(uri: str) -> int:
    return int(uri.rsplit("_", 1)[1].split(".")[0])


if __name__ == "__main__":
    main()
