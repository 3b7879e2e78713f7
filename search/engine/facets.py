"""Facet counts: how many of the query's filtered candidates fall in each category, brand, …

The counts come from the engine's facet operation (Qdrant Edge ``shard.facet``, qdrant-client
``facet``) over the same filter the search uses, so a user sees what clicking a value would
leave. Only fields with a keyword or integer payload index can be counted by the engine; asking
for another is a BadQuery listing the ones that can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from search.errors import BadQuery
from search.payload import INDEXED_FIELDS, FieldType
from search.store.base import Filter, VectorStore

_IDENTIFIERS = ("media_id", "video_id", "product_id")  # one value per item: nothing to count
_COUNTED_NUMBERS = ("year",)  # integer fields worth counting (sizes and widths are not)
FACETABLE: tuple[str, ...] = tuple(
    sorted(
        name
        for name, kind in INDEXED_FIELDS.items()
        if (kind is FieldType.KEYWORD and name not in _IDENTIFIERS) or (kind is FieldType.INTEGER and name in _COUNTED_NUMBERS)
    )
)
DEFAULT_FACETS: tuple[str, ...] = tuple(f for f in ("category", "brand", "kind", "source", "year") if f in FACETABLE)
FACET_LIMIT = 20  # values per field, most frequent first


@dataclass(frozen=True)
class FacetCount:
    value: str | int | bool
    count: int


def check_facets(fields: Sequence[str]) -> None:
    """Refuse fields the engine cannot count (BadQuery naming them and listing the facetable ones)."""
    unknown = [f for f in fields if f not in FACETABLE]
    if unknown:
        raise BadQuery(f"Cannot count facets of {', '.join(map(repr, unknown))}; facetable fields: {', '.join(FACETABLE)}.")


def facet_counts(store: VectorStore, flt: Filter, fields: Sequence[str]) -> dict[str, tuple[FacetCount, ...]]:
    """Each field's value counts among the points matching ``flt``."""
    check_facets(fields)
    return {f: tuple(FacetCount(v, n) for v, n in store.facet(f, flt, FACET_LIMIT)) for f in dict.fromkeys(fields)}
