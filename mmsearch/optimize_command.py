"""``mmsearch optimize``: build the vector index now, in the foreground, with a progress line.

The embedded store does this by itself in the background once enough points await indexing
(``search.store.maintenance``); the verb is for an operator who wants it done before serving,
or who turned ``MMSEARCH_INDEX__AUTO_OPTIMIZE`` off. A Qdrant server indexes by itself, so
there the verb only reports the state.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from mmsearch.output import EXIT_OK, EXIT_PARTIAL, emit_json, say
from search.services import Services
from search.settings import Settings
from search.store import IndexState


def run_optimize_command(args: argparse.Namespace, settings: Settings) -> int:
    services = Services(settings)
    try:
        store = services.store
        before = store.index_state()
        if not args.json:
            say(describe(before))
        run = store.build_index(progress=None if args.json else _progress_line, force=True)
        if not args.json and sys.stderr.isatty():
            sys.stderr.write("\n")
        after = store.index_state()
        if args.json:
            emit_json({"before": asdict(before), "run": None if run is None else asdict(run), "after": asdict(after)})
        elif run is None:
            say(
                "nothing to do: "
                + ("the server indexes in the background" if store.backend == "server" else "a build runs already")
            )
        else:
            say(f"{'done' if run.ok else 'failed'} in {run.seconds:.1f} s: {run.detail}")
            say(describe(after))
        return EXIT_OK if run is None or run.ok else EXIT_PARTIAL
    finally:
        services.close()


def describe(state: IndexState) -> str:
    line = f"{state.indexed:,} of {state.points:,} points in the HNSW index"
    if state.optimizing:
        line += "; a build is running"
    return line


def _progress_line(elapsed: float) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\rbuilding the index… {elapsed:5.0f} s")
        sys.stderr.flush()


def add_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print one JSON document")
