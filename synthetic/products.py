"""A product catalogue: several photos per product, near-duplicate copies, CSV and JSONL manifests.

Every product has the text a shop gives it: a title naming brand, colour, kind and accent
("Brightline Blue Ring with Black Dot"), a brand, a category and a SKU code (``sku_of``).

A product is one object (colour, shape) with a small accent dot of a second colour, so products
that share colour and shape still look different. Its photos vary background, placement, size,
rotation and noise; near-duplicates are re-encoded, slightly cropped copies of a photo, the kind
of file a shop catalogue accumulates and image-to-image search should find.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from synthetic.images import item_rng, save_image
from synthetic.render import render_scene
from synthetic.scene import ObjectSpec, Scene, sample_background
from synthetic.truth import NearDuplicate, Product, ProductTruth
from synthetic.vocab import ALL_PAIRS, COLOUR_NAMES

_STREAM_PRODUCTS = 3
CATEGORY_BY_SHAPE: dict[str, str] = {
    "circle": "coasters",
    "square": "tiles",
    "triangle": "pennants",
    "star": "badges",
    "heart": "pendants",
    "cross": "patches",
    "diamond": "kites",
    "ring": "rings",
}
_SINGULAR = {
    "coasters": "Coaster",
    "tiles": "Tile",
    "pennants": "Pennant",
    "badges": "Badge",
    "pendants": "Pendant",
    "patches": "Patch",
    "kites": "Kite",
    "rings": "Ring",
}
BRANDS: tuple[str, ...] = ("Orbis", "Polyform", "Brightline", "Kestrel & Co", "Nimbus", "Vertex Works", "Lumen", "Acorn Studio")
CSV_FIELDS = ("id", "sku", "title", "category", "brand", "price", "colour", "shape", "accent", "images")


def sku_of(product: Product) -> str:
    """The product's stock-keeping code, as a shop writes it: brand, number, colour ("ORB-1012-RE").

    Derived from what the product is, so truth.json needs no field for it; keyword search
    must match it exactly (``bench/quality.py``'s keyword section asks for every one)."""
    letters = "".join(ch for ch in product.brand.upper() if ch.isalpha())[:3]
    return f"{letters}-{1000 + int(product.id[1:])}-{product.colour[:2].upper()}"


def _product_photo(rng: np.random.Generator, colour: str, shape: str, accent: str) -> Scene:
    """One photo: the product large near the centre, its accent dot on it, a random background."""
    dx, dy = (float(v) for v in rng.uniform(-0.07, 0.07, size=2))
    radius = float(rng.uniform(0.19, 0.25))
    main = ObjectSpec(colour, shape, "large", "center", dx, dy, radius, float(rng.uniform(-20, 20)), int(rng.integers(-10, 11)))
    dot = ObjectSpec(accent, "circle", "small", "center", dx, dy + 0.02, radius * 0.28, 0.0, 0)
    return Scene((main, dot), sample_background(rng), float(rng.uniform(0, 6)), int(rng.integers(0, 2**31 - 1)))


def _near_duplicate(path: Path, rng: np.random.Generator) -> Image.Image:
    """The photo cropped by 2-6 % per side and resized back, to be saved at lower JPEG quality."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        w, h = rgb.size
        c = [int(round(v)) for v in rng.uniform(0.02, 0.06, size=4) * np.array([w, h, w, h])]
        return rgb.crop((c[0], c[1], w - c[2], h - c[3])).resize((w, h), Image.Resampling.BICUBIC)


def generate_products(
    out_dir: Path | str,
    n: int,
    seed: int,
    size: int = 256,
    photos: tuple[int, int] = (3, 5),
    near_duplicate_fraction: float = 0.3,
) -> ProductTruth:
    """Write ``n`` products' photos plus ``products.csv`` and ``products.jsonl`` to ``out_dir``."""
    combos = len(ALL_PAIRS) * (len(COLOUR_NAMES) - 1)
    if not 0 <= n <= combos:
        raise ValueError(f"n must be between 0 and {combos} (distinct colour, shape, accent combinations)")
    if not 1 <= photos[0] <= photos[1]:
        raise ValueError("photos must be (min, max) with 1 <= min <= max")
    out = Path(out_dir)
    photo_dir = out / "photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    catalogue_rng = item_rng(seed, _STREAM_PRODUCTS, 10**6)
    chosen = catalogue_rng.choice(combos, size=n, replace=False)
    products, duplicates = [], []
    for i, combo in enumerate(chosen):
        rng = item_rng(seed, _STREAM_PRODUCTS, i)
        colour, shape = ALL_PAIRS[int(combo) // (len(COLOUR_NAMES) - 1)]
        accents = [c for c in COLOUR_NAMES if c != colour]
        accent = accents[int(combo) % len(accents)]
        pid = f"P{i:05d}"
        paths = []
        for k in range(int(rng.integers(photos[0], photos[1] + 1))):
            path = photo_dir / f"{pid}_{k}.jpg"
            save_image(render_scene(_product_photo(rng, colour, shape, accent), size), path, "jpeg", quality=92)
            paths.append(path.resolve())
        if rng.random() < near_duplicate_fraction:
            dup = photo_dir / f"{pid}_0_copy.jpg"
            save_image(_near_duplicate(paths[0], rng), dup, "jpeg", quality=int(rng.integers(60, 76)))
            duplicates.append(NearDuplicate(dup.resolve(), paths[0], pid))
        category = CATEGORY_BY_SHAPE[shape]
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        title = f"{brand} {colour.title()} {_SINGULAR[category]} with {accent.title()} Dot"
        price = float(int(rng.uniform(4, 150))) + 0.99
        products.append(Product(pid, title, category, brand, price, colour, shape, accent, tuple(paths)))
    truth = ProductTruth(out / "products.csv", out / "products.jsonl", tuple(products), tuple(duplicates))
    _write_manifests(truth, out)
    return truth


def _write_manifests(truth: ProductTruth, root: Path) -> None:
    """CSV and JSONL rows list every photo file of a product, near-duplicate copies included.

    A real catalogue export does not say which uploads are copies of each other; search has to
    find that out (``dedup``), so the manifests don't either. ``truth.json`` keeps the pairs.
    """
    copies: dict[str, list[str]] = {}
    for d in truth.near_duplicates:
        copies.setdefault(d.product_id, []).append(d.path.relative_to(root.resolve()).as_posix())
    rows = []
    for p in truth.products:
        row = p.to_dict(root)
        row["sku"] = sku_of(p)
        row["images"] = row["images"] + copies.get(p.id, [])
        rows.append(row)
    with open(truth.csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row | {"images": ";".join(row["images"])})
    with open(truth.manifest_path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
