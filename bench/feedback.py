"""Feedback: which way of using liked/disliked results refines a query better, measured.

On the procedural world (its truth says which colours each photo shows), for each colour a
text query ("a shape") is refined by one liked photo of that colour and one disliked photo of
another colour, three ways: the arithmetic path the engine uses when the request has a query
(query + 0.5 liked - 0.5 disliked), the engine's recommend query on the examples alone
(best-score strategy), and the plain query for reference. Precision at 10 counts results
showing the liked colour; the examples themselves are not counted. One JSON line at the end.

    python -m bench.feedback [--images 120]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from ingest.jobs import run_ingest
from search import engine
from search.engine import FilterSpec, SearchRequest
from search.query import TextTerm
from search.services import IngestRequest, Services
from search.settings import load_settings
from synthetic import generate_corpus

COLOURS = ("red", "green", "blue", "yellow")
K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-feedback-") as tmp:
        root = Path(tmp)
        generate_corpus(root / "corpus", seed=11, n_images=args.images, n_videos=0, n_products=1)
        truth = json.loads((root / "corpus" / "truth.json").read_text())
        colours = {str(root / "corpus" / i["path"]): {o["colour"] for o in i["scene"]["objects"]} for i in truth["images"]}
        settings = load_settings(data_dir=str(root / "data"), model="mmsearch-synthetic", embedder={"threads": 1})
        services = Services(settings)
        try:
            run_ingest(services, IngestRequest(paths=(str(root / "corpus" / "images"),)))
            scores = {"query": [], "arithmetic": [], "recommend": []}
            images = FilterSpec(kinds=("image",))
            for colour in COLOURS:
                pool = engine.search(services, SearchRequest(terms=(TextTerm("a shape"),), filters=images, limit=100)).items
                liked = next((i for i in pool if colours.get(i.payload.path or "") == {colour}), None)
                other = next((i for i in pool if colour not in colours.get(i.payload.path or "", {colour})), None)
                if liked is None or other is None:
                    continue
                examples = {liked.point_id, other.point_id}

                def precision(request: SearchRequest) -> float:
                    items = [i for i in engine.search(services, request).items if i.point_id not in examples][:K]
                    return sum(colour in colours.get(i.payload.path or "", set()) for i in items) / K

                base = SearchRequest(terms=(TextTerm("a shape"),), filters=images, limit=K + 2, mode="vector")
                scores["query"].append(precision(base))
                scores["arithmetic"].append(precision(replace(base, like=(liked.point_id,), dislike=(other.point_id,))))
                scores["recommend"].append(
                    precision(SearchRequest(positive=(liked.point_id,), negative=(other.point_id,), filters=images, limit=K + 2))
                )
        finally:
            services.close()
    figures = {name: round(statistics.mean(values), 3) for name, values in scores.items() if values}
    print(f"P@{K} of the liked colour over {len(scores['query'])} colours: " + ", ".join(f"{n} {v}" for n, v in figures.items()))
    print(json.dumps({"bench": "feedback", "k": K, "colours": len(scores["query"]), **figures}))


if __name__ == "__main__":
    main()
