"""Products per page with grouping on and off, on the demo world's catalogue.

The Products page shows 24 cards with "Collapse duplicates" on. Without grouping, a product's
distinct photos each take a card (collapse only joins near-identical pictures), so a page shows
fewer distinct products than cards; grouped, every card is a different product. This script
renders the demo's catalogue (``mmsearch demo``'s seed and size), ingests it with the bundled
model on the embedded store, runs one query per product title and per colour, and prints the
mean number of distinct products on the first page in both modes, then one JSON line.

    python -m bench.grouping [--products 40] [--limit 24]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from ingest.jobs import run_ingest
from mmsearch.demo import DEMO_SEED
from search import engine
from search.engine import FilterSpec, SearchRequest
from search.payload import ProductPayload
from search.query import TextTerm
from search.services import IngestRequest, Services
from search.settings import load_settings
from synthetic import generate_corpus


def distinct_products(services: Services, text: str, limit: int, group: bool) -> tuple[int, int]:
    """(distinct product ids, cards) on the first page, near-duplicates collapsed as the page does."""
    request = SearchRequest(
        terms=(TextTerm(text),), filters=FilterSpec(kinds=("product",)), limit=limit, dedup=True, group=group, mode="vector"
    )
    items = engine.search(services, request).items
    ids = {i.payload.product_id for i in items if isinstance(i.payload, ProductPayload)}
    return len(ids), len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=40)
    parser.add_argument("--limit", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-grouping-") as tmp:
        root = Path(tmp)
        generate_corpus(root / "corpus", seed=DEMO_SEED, n_images=1, n_videos=0, n_products=args.products)
        truth = json.loads((root / "corpus" / "truth.json").read_text())
        settings = load_settings(data_dir=str(root / "data"), model="mmsearch-synthetic", embedder={"threads": 1})
        services = Services(settings)
        try:
            run_ingest(services, IngestRequest(manifests=(str(root / "corpus" / "products" / "products.csv"),)))
            products = truth["products"]["products"]
            queries = sorted({p["title"] for p in products} | {f"a {p['colour']} product" for p in products})
            rows = {group: [distinct_products(services, q, args.limit, group) for q in queries] for group in (False, True)}
        finally:
            services.close()
    photos = sum(len(p["images"]) for p in products) if products and "images" in products[0] else None
    figures = {
        "products": len(products),
        "product_photos": photos,
        "queries": len(queries),
        "limit": args.limit,
        "distinct_per_page_ungrouped": round(statistics.mean(d for d, _ in rows[False]), 2),
        "cards_per_page_ungrouped": round(statistics.mean(c for _, c in rows[False]), 2),
        "distinct_per_page_grouped": round(statistics.mean(d for d, _ in rows[True]), 2),
        "cards_per_page_grouped": round(statistics.mean(c for _, c in rows[True]), 2),
    }
    print(f"{figures['products']} products, {len(queries)} queries, first page of {args.limit}, duplicates collapsed")
    print(
        f"  grouping off: {figures['distinct_per_page_ungrouped']} distinct products on {figures['cards_per_page_ungrouped']} cards"
    )
    print(
        f"  grouping on:  {figures['distinct_per_page_grouped']} distinct products on {figures['cards_per_page_grouped']} cards"
    )
    print(json.dumps({"bench": "grouping", **figures}))


if __name__ == "__main__":
    main()
