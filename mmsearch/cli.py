"""The ``mmsearch`` command: parse arguments, build settings once, dispatch to a command.

Exit codes: 0 success, 1 partial failure (some items failed), 2 usage or configuration error.
Core code raises ``MMSearchError``; this is the one place that turns it into a message.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from mmsearch.output import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, emit_json, fail, say
from search.errors import MMSearchError
from search.settings import Settings, describe_settings_error, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(**_overrides(args))
        return args.handler(args, settings)
    except MMSearchError as exc:
        return fail(str(exc))
    except ValidationError as exc:
        return fail(f"invalid configuration: {describe_settings_error(exc)}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmsearch", description="Semantic search over photos, video moments and products.")
    parser.add_argument("--data-dir", help="where the embedded store, catalog and thumbnails live (MMSEARCH_DATA_DIR)")
    parser.add_argument("--model", help="model spec (MMSEARCH_MODEL), e.g. ViT-B-32:laion2b_s34b_b79k or mmsearch-synthetic")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in (_ingest, _watch, _duplicates, _search, _serve, _demo, _jobs, _optimize, _doctor, _embed, _worker, _train):
        register(commands)
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.model:
        overrides["model"] = args.model
    return overrides


def _command(commands: argparse._SubParsersAction, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=help, description=help)
    sub.set_defaults(handler=handler)
    return sub


# -- ingest and jobs --------------------------------------------------------------------


def _ingest(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "ingest", _run_ingest, "index files, folders, URLs, crawls and product manifests")
    sub.add_argument("paths", nargs="*", metavar="PATH_OR_URL", help="files, folders or http(s) URLs")
    sub.add_argument("--manifest", action="append", default=[], metavar="FILE", help="CSV or JSONL product manifest")
    sub.add_argument("--crawl", action="append", default=[], metavar="URL", help="start page of a web crawl")
    sub.add_argument("--url-list", action="append", default=[], metavar="FILE", help="text file, one URL per line")
    sub.add_argument("--include", action="append", default=[], metavar="GLOB", help="only files matching a glob")
    sub.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files matching a glob")
    sub.add_argument("--json", action="store_true", help="print one JSON document")


def _run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from mmsearch.ingest_command import run_ingest_command

    return run_ingest_command(args, settings)


def _watch(commands: argparse._SubParsersAction) -> None:
    from mmsearch.watch import add_arguments

    add_arguments(commands, _command)


def _duplicates(commands: argparse._SubParsersAction) -> None:
    from mmsearch.duplicates_command import add_arguments

    add_arguments(commands, _command)


def _jobs(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "jobs", _run_jobs, "list ingest jobs and their counters")
    sub.add_argument("job_id", nargs="?", help="show one job with its failures")
    sub.add_argument("--limit", type=int, default=20)
    sub.add_argument("--json", action="store_true")


def _run_jobs(args: argparse.Namespace, settings: Settings) -> int:
    from mmsearch.ingest_command import run_jobs_command

    return run_jobs_command(args, settings)


def _optimize(commands: argparse._SubParsersAction) -> None:
    from mmsearch.optimize_command import add_arguments

    add_arguments(
        _command(commands, "optimize", _run_optimize, "build the vector index now (the embedded store also does it by itself)")
    )


def _run_optimize(args: argparse.Namespace, settings: Settings) -> int:
    from mmsearch.optimize_command import run_optimize_command

    return run_optimize_command(args, settings)


def _worker(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "worker", _run_worker, "run a Celery worker (distributed mode)")
    sub.add_argument("--queues", default="cpu,gpu", help="comma-separated queues: cpu, gpu, enrich (OCR)")
    sub.add_argument("--concurrency", type=int, default=None)
    sub.add_argument("--loglevel", default="INFO")


def _run_worker(args: argparse.Namespace, settings: Settings) -> int:
    from mmsearch.worker import run_worker_command

    return run_worker_command(args, settings)


# -- search ------------------------------------------------------------------------------


def _search(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "search", _run_search, 'search by text, image or arithmetic (\'"beach" + id:42 - 0.5*"people"\')')
    sub.add_argument("text", nargs="?", default=None, help="text or arithmetic query")
    sub.add_argument("--image", metavar="FILE", help="query image")
    sub.add_argument("--limit", type=int, default=10)
    sub.add_argument("--target", choices=["images", "moments", "videos"], default="images")
    sub.add_argument("--kind", action="append", default=[], help="restrict to kinds: image, frame, segment, product")
    sub.add_argument("--pooling", choices=["topk", "mean"], default="topk", help="video pooling for moments and videos")
    sub.add_argument("--folder", metavar="DIR", help="only files under this absolute folder")
    sub.add_argument("--offset", type=int, default=0, help="skip this many results (paging)")
    sub.add_argument(
        "--mode",
        choices=["hybrid", "vector", "keyword"],
        default=None,
        help='text queries: visual and keyword ranking fused (default), or either alone; "quoted phrases" rank first',
    )
    sub.add_argument("--keywords", action="store_true", help="arithmetic queries: their text terms count as keywords too")
    sub.add_argument("--explain", action="store_true", help="show each term's contribution to each score")
    sub.add_argument(
        "--sort",
        metavar="FIELD",
        help="after the cutoff, order by taken_at, price, name or size_bytes (--sort=-FIELD: descending)",
    )
    sub.add_argument("--cutoff", type=float, metavar="SCORE", help="only results scoring at least this (the relevance cutoff)")
    sub.add_argument("--diverse", action="store_true", help="MMR-diversified results: near-identical shots do not fill the page")
    sub.add_argument("--like", action="append", default=[], metavar="ID", help="a result to be more like (repeatable)")
    sub.add_argument("--dislike", action="append", default=[], metavar="ID", help="a result to be less like (repeatable)")
    sub.add_argument(
        "--group", action=argparse.BooleanOptionalAction, default=None, help="one result per product (default: on for products)"
    )
    sub.add_argument(
        "--facet", action="append", default=[], metavar="FIELD", help="also count values of a field: category, brand, …"
    )
    sub.add_argument("--json", action="store_true", help="print the API's response document")


def _run_search(args: argparse.Namespace, settings: Settings) -> int:
    from mmsearch.search_command import run_search_command

    return run_search_command(args, settings)


# -- serving and the demo ----------------------------------------------------------------


def _serve(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "serve", _run_serve, "run the search API (and the UI with --ui)")
    sub.add_argument("--host", default=None)
    sub.add_argument("--port", type=int, default=None)
    sub.add_argument("--ui", action="store_true", help="also start the Streamlit UI")
    sub.add_argument("--ui-port", type=int, default=None)
    sub.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder ingest requests sent to this server may read (repeatable; the data dir always may)",
    )
    sub.add_argument(
        "--insecure",
        action="store_true",
        help="serve on a non-loopback address without an API key (anyone reaching it has full access)",
    )


def _run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from mmsearch.serve import serve

    return serve(
        settings, host=args.host, port=args.port, with_ui=args.ui, ui_port=args.ui_port, roots=args.root, insecure=args.insecure
    )


def _demo(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "demo", _run_demo, "generate a demo corpus, index it with the bundled model, serve API and UI")
    sub.add_argument("--no-ui", action="store_true", help="serve the API only")
    sub.add_argument("--no-serve", action="store_true", help="prepare and index, then exit")
    sub.add_argument("--host", default=None)
    sub.add_argument("--port", type=int, default=None)
    sub.add_argument("--ui-port", type=int, default=None)
    sub.add_argument("--images", type=int, default=300, help="demo photos to generate")
    sub.add_argument("--videos", type=int, default=4, help="demo videos to generate")
    sub.add_argument("--products", type=int, default=40, help="demo products to generate")


def _run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from mmsearch.demo import run_demo

    return run_demo(args, settings)


# -- tools --------------------------------------------------------------------------------


def _doctor(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "doctor", _run_doctor, "check settings, model, store, catalog and broker")
    sub.add_argument("--json", action="store_true")


def _run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from mmsearch.doctor import checks_as_dicts, run_checks

    checks = run_checks(settings)
    if args.json:
        emit_json({"ok": all(c.ok for c in checks), "checks": checks_as_dicts(checks)})
    else:
        for check in checks:
            say(f"[{'ok' if check.ok else 'FAIL':>4}] {check.name:<8} {check.detail}")
    return EXIT_OK if all(c.ok for c in checks) else EXIT_USAGE


def _embed(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "embed", _run_embed, "print the normalised embedding of a text or an image")
    group = sub.add_mutually_exclusive_group(required=True)
    group.add_argument("--text")
    group.add_argument("--image", metavar="FILE")
    sub.add_argument("--raw", action="store_true", help="no prompt ensembling for text")
    sub.add_argument("--json", action="store_true")


def _run_embed(args: argparse.Namespace, settings: Settings) -> int:
    from search.embedder import load_embedder
    from search.media import decode_image

    embedder = load_embedder(settings)
    if args.text is not None:
        vector = embedder.encode_texts([args.text], ensemble=not args.raw)[0]
    else:
        image = decode_image(args.image, max_pixels=settings.ingest.max_image_pixels).image
        vector = embedder.encode_images([image])[0]
    if args.json:
        emit_json({"model": embedder.model_name, "dim": embedder.dim, "vector": [round(float(x), 7) for x in vector]})
    else:
        say(" ".join(f"{x:.7f}" for x in vector))
    return EXIT_OK


def _train(commands: argparse._SubParsersAction) -> None:
    sub = _command(commands, "train-demo-model", _run_train, "train the bundled demo model on the procedural world")
    sub.add_argument("train_args", nargs=argparse.REMAINDER, help="arguments for synthetic.train (see --help)")


def _run_train(args: argparse.Namespace, settings: Settings) -> int:
    from synthetic.train import main as train_main

    return int(train_main(args.train_args) or 0)


if __name__ == "__main__":
    sys.exit(main())
