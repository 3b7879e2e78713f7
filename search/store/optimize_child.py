"""Child process that builds the index of a copied Edge shard: ``python -m search.store.optimize_child``.

It runs apart from the serving process because ``EdgeShard.optimize()`` holds the GIL for
its whole run (see ``search.store.maintenance``). It writes ``COMPLETE_MARKER`` into the
folder only after the shard is optimized and closed, so the parent swaps in nothing else.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import time
from pathlib import Path

import qdrant_edge as qe

from search.settings import IndexSettings
from search.store.edge_config import shard_config

COMPLETE_MARKER = "mmsearch-optimized.json"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def optimize_folder(path: Path, dim: int, index: IndexSettings) -> dict[str, float]:
    """Optimize the shard in ``path`` in place; returns what the marker records."""
    started = time.monotonic()
    shard = qe.EdgeShard.load(str(path), shard_config(dim, index))
    try:
        shard.optimize()
        info = shard.info()
        shard.flush()
    finally:
        shard.close()
    return {"points": info.points_count, "indexed": info.indexed_vectors_count, "seconds": time.monotonic() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--index", required=True, help="IndexSettings as JSON")
    parser.add_argument("--parent", type=int, default=0, help="pid of the owning process")
    args = parser.parse_args(argv)
    if args.parent and not _die_with(args.parent):
        return 1
    index = IndexSettings.model_validate_json(args.index)
    try:
        result = optimize_folder(args.path, args.dim, index)
    except Exception as exc:  # qdrant_edge raises bare Exception; the parent reports the text
        print(f"index build failed: {exc}", file=sys.stderr)
        return 1
    (args.path / COMPLETE_MARKER).write_text(json.dumps(result))
    return 0


def _die_with(parent: int) -> bool:
    """Get SIGKILL when the owning process dies (Linux), so a crashed server leaves no orphan
    build writing into a folder its next start deletes; False if the parent is gone already."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent


if __name__ == "__main__":
    sys.exit(main())
