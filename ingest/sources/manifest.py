"""Product manifests (CSV or JSONL) and URL lists: text files that name media to index.

A manifest row is one product: an id, a title, a category, a brand, a price and one or more
photos (paths relative to the manifest, absolute paths or URLs). Every other column becomes a
payload field, so a catalogue's own attributes (colour, size, season…) are searchable filters.
Column names are matched loosely (``sku`` or ``id`` for the product id, ``image_url`` or
``images`` for photos) because real exports never agree on them. A bad row is a ``Problem``
naming its line; the other rows still count. No message quotes a line or a cell: whatever file
was named as a list or manifest, its contents never reach a job's failures.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from ingest.items import Problem, Product, Scalar, file_uri

ID_COLUMNS = ("product_id", "id", "sku", "item_id", "productid")
TITLE_COLUMNS = ("title", "name", "product_name")
CATEGORY_COLUMNS = ("category", "product_category", "type")
BRAND_COLUMNS = ("brand", "manufacturer", "vendor")
PRICE_COLUMNS = ("price", "sale_price", "amount")
IMAGE_COLUMNS = ("images", "image", "image_url", "image_urls", "image_path", "image_paths", "photo", "photos", "img", "picture")
_IMAGE_SEPARATORS = re.compile(r"\s*[|;\n]\s*")
_PRICE_NUMBER = re.compile(r"-?\d[\d\s,.']*")


@dataclass(frozen=True)
class ProductPhoto:
    """One photo of one product; ``location`` is a file URI or an http(s) URL."""

    location: str
    product: Product
    fingerprint: str  # digest of the whole row: any change re-indexes the photo
    line: int


def read_url_list(text: str, base: str | None = None, name: str | None = None) -> Iterator[str | Problem]:
    """URLs from a text file, one a line; blank lines and ``#`` comments are ignored.

    ``base`` resolves relative lines of a list on the web; ``name`` says where the list is in
    the URIs of its bad lines (``list.txt#L3``).
    """
    where = name or base or "url list"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        url = urljoin(base, line) if base and "://" not in line else line
        if urlparse(url).scheme in ("http", "https"):
            yield url
        else:
            yield Problem(f"{where}#L{number}", f"line {number} is not an http(s) URL")


def read_manifest(text: str, name: str, base: str) -> Iterator[ProductPhoto | Problem]:
    """Rows of a CSV (sniffed delimiter) or JSONL manifest; ``base`` resolves relative photos."""
    rows = _jsonl_rows(text, name) if _is_jsonl(name, text) else _csv_rows(text, name)
    for line, row in rows:
        if isinstance(row, Problem):
            yield row
            continue
        yield from _photos(row, line, name, base)


def _is_jsonl(name: str, text: str) -> bool:
    suffix = Path(urlparse(name).path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return True
    if suffix in (".csv", ".tsv"):
        return False
    return text.lstrip().startswith("{")


def _csv_rows(text: str, name: str) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                yield line, Problem(f"{name}#L{line}", f"{name} line {line}: more values than columns")
                continue
            yield line, {k.strip(): v for k, v in row.items() if k is not None}
    except csv.Error as exc:
        yield reader.line_num, Problem(f"{name}#L{reader.line_num}", f"{name}: not readable as CSV ({exc})")


def _jsonl_rows(text: str, name: str) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, Problem(f"{name}#L{number}", f"{name} line {number}: invalid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            yield number, Problem(f"{name}#L{number}", f"{name} line {number}: expected a JSON object")
            continue
        yield number, row


def _photos(row: dict[str, Any], line: int, name: str, base: str) -> Iterator[ProductPhoto | Problem]:
    where = f"{name}#L{line}"
    lowered = {str(k).strip().lower(): k for k in row}
    product_id = _first_text(row, lowered, ID_COLUMNS)
    if not product_id:
        yield Problem(where, f"{name} line {line}: no product id (a column named one of {', '.join(ID_COLUMNS)})")
        return
    photos = _photo_locations(row, lowered, base)
    if not photos:
        yield Problem(where, f"{name} line {line}: the product has no image (columns {', '.join(IMAGE_COLUMNS[:4])}…)")
        return
    product = _product(row, lowered, product_id)
    fingerprint = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
    for location in photos:
        yield ProductPhoto(location, product, fingerprint, line)


def _product(row: dict[str, Any], lowered: dict[str, Any], product_id: str) -> Product:
    known = set(TITLE_COLUMNS + CATEGORY_COLUMNS + BRAND_COLUMNS + PRICE_COLUMNS + IMAGE_COLUMNS)
    known.add(next(low for low in ID_COLUMNS if low in lowered and row[lowered[low]] not in (None, "")))  # the id used
    extra = {  # other id-like columns stay: a SKU beside the id is what people search by
        _field_name(key): value
        for low, key in lowered.items()
        if low not in known and (value := _scalar(row[key])) is not None and _field_name(key)
    }
    return Product(
        product_id=product_id,
        title=_first_text(row, lowered, TITLE_COLUMNS),
        category=_first_text(row, lowered, CATEGORY_COLUMNS),
        brand=_first_text(row, lowered, BRAND_COLUMNS),
        price=parse_price(_first_value(row, lowered, PRICE_COLUMNS)),
        extra=extra,
    )


def _photo_locations(row: dict[str, Any], lowered: dict[str, Any], base: str) -> list[str]:
    found: list[str] = []
    for column in IMAGE_COLUMNS:
        if column in lowered:
            value = row[lowered[column]]
            parts = value if isinstance(value, list) else _IMAGE_SEPARATORS.split(str(value or ""))
            found.extend(_resolve(str(p).strip(), base) for p in parts if str(p).strip())
    return list(dict.fromkeys(found))


def _resolve(location: str, base: str) -> str:
    """A photo's absolute location: URLs kept, paths made absolute against the manifest."""
    if urlparse(location).scheme in ("http", "https", "file"):
        return location
    if base.startswith(("http://", "https://")):
        return urljoin(base, location)
    path = Path(location).expanduser()
    return file_uri(path if path.is_absolute() else Path(base) / path)


def parse_price(value: object) -> float | None:
    """``19.99``, ``"$1,299.00"``, ``"19,99 €"`` → a float; None when there is no number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _PRICE_NUMBER.search(str(value))
    if not match:
        return None
    number = re.sub(r"[\s']", "", match.group()).rstrip(".,")
    if "," in number and "." in number:
        number = number.replace(",", "") if number.rfind(".") > number.rfind(",") else number.replace(".", "").replace(",", ".")
    elif "," in number:
        whole, _, frac = number.rpartition(",")
        number = f"{whole.replace(',', '')}.{frac}" if len(frac) != 3 else number.replace(",", "")
    try:
        return float(number)
    except ValueError:
        return None


def _first_value(row: dict[str, Any], lowered: dict[str, Any], columns: tuple[str, ...]) -> Any:
    for column in columns:
        if column in lowered:
            value = row[lowered[column]]
            if value not in (None, ""):
                return value
    return None


def _first_text(row: dict[str, Any], lowered: dict[str, Any], columns: tuple[str, ...]) -> str | None:
    value = _first_value(row, lowered, columns)
    return str(value).strip() or None if value is not None else None


def _scalar(value: object) -> Scalar | None:
    """Manifest cells as payload values: numbers stay numbers, the rest becomes text."""
    if value is None or value == "":
        return None
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    return text or None


def _field_name(column: object) -> str:
    return re.sub(r"[^0-9a-zA-Z_]+", "_", str(column).strip()).strip("_").lower()
