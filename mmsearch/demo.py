"""``mmsearch demo``: from nothing to a searchable archive, offline, in a few minutes.

It renders a corpus from the procedural world (photos, videos, a product catalogue) into the data
directory, ingests it through the real pipeline with the bundled model, then serves the API and
the UI. A second run finds the corpus in place and ingests incrementally (every file unchanged,
so nothing is embedded again) before serving.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from mmsearch.output import EXIT_OK, EXIT_PARTIAL, say
from search.services import IngestRequest, Services
from search.settings import BUNDLED_MODEL, Settings

DEMO_SEED = 20261122
CORPUS_DIR = "demo-corpus"
TRY = ("a red circle", '"a blue star" - "blue" + "yellow"', "a large green heart")


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    settings = demo_settings(settings)
    if not args.no_serve:
        check_ports(settings, args)  # before minutes of work, not after
    say(f"mmsearch demo: model {settings.model}, data in {settings.data_dir.resolve()}")
    corpus = prepare_corpus(settings.data_dir / CORPUS_DIR, args.images, args.videos, args.products)
    services = Services(settings)
    try:
        failed = ingest_corpus(services, corpus)
    except BaseException:
        services.close()
        raise
    if args.no_serve:
        services.close()
        return EXIT_PARTIAL if failed else EXIT_OK
    from mmsearch.serve import serve

    say("try: " + "   ".join(TRY))
    return serve(settings, host=args.host, port=args.port, with_ui=not args.no_ui, ui_port=args.ui_port, services=services)


def check_ports(settings: Settings, args: argparse.Namespace) -> None:
    from mmsearch.serve import ensure_free

    ensure_free(args.host or settings.api.host, args.port or settings.api.port, "API")
    if not args.no_ui:
        ensure_free("127.0.0.1", args.ui_port or settings.api.ui_port, "UI")


def demo_settings(settings: Settings) -> Settings:
    """The bundled model unless the user chose one: the demo must run offline."""
    if "model" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"model": BUNDLED_MODEL})


def prepare_corpus(folder: Path, n_images: int, n_videos: int, n_products: int) -> Path:
    """Render the corpus once; a finished render (its truth file) of the same size is reused."""
    from synthetic import generate_corpus

    if corpus_size(folder) == (n_images, n_videos, n_products):
        say(f"demo corpus already in {folder}")
        return folder
    started = time.perf_counter()
    say(f"rendering the demo corpus into {folder} ...")
    shutil.rmtree(folder, ignore_errors=True)  # another size: start clean (the rescan drops the old points)
    generate_corpus(folder, seed=DEMO_SEED, n_images=n_images, n_videos=n_videos, n_products=n_products)
    counts = ", ".join(_plural(n, word) for n, word in ((n_images, "photo"), (n_videos, "video"), (n_products, "product")))
    say(f"  {counts} in {time.perf_counter() - started:.1f} s")
    return folder


def corpus_size(folder: Path) -> tuple[int, int, int] | None:
    """(photos, videos, products) of a finished render, None when there is none."""
    try:
        truth = json.loads((folder / "truth.json").read_text())
    except (OSError, ValueError):
        return None
    products = (truth.get("products") or {}).get("products", [])
    return len(truth.get("images", [])), len(truth.get("videos", [])), len(products)


def corpus_request(corpus: Path) -> IngestRequest:
    """Photos, videos and the product manifest, each when the render has it (a size may be 0)."""
    folders = [corpus / "images", corpus / "videos"]
    manifest = corpus / "products" / "products.csv"
    return IngestRequest(
        paths=[str(folder) for folder in folders if folder.is_dir()],
        manifests=[str(manifest)] if manifest.is_file() else [],
    )


def ingest_corpus(services: Services, corpus: Path) -> int:
    """Index the corpus; unchanged files are skipped on a re-run. Returns the failure count."""
    from ingest.jobs import run_ingest
    from mmsearch.ingest_command import print_summary, progress_bar

    started = time.perf_counter()
    say("loading the model and indexing (unchanged files are skipped) ...")
    with progress_bar("indexing") as progress:
        job = run_ingest(services, corpus_request(corpus), progress=progress)
    say(f"indexed in {time.perf_counter() - started:.1f} s")
    print_summary(job, services.catalog)
    return job.failed


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
