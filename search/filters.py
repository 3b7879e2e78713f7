"""What users filter on, translated to a store ``Filter`` that Qdrant applies during the search.

Filters are pushed into the vector store (never applied to a page of results afterwards), so
``limit`` results come back even when the filter is very selective. Every condition here names
an indexed field of the payload contract (``search.payload``), except ``fields``: any other
manifest column or EXIF value, matched on its raw payload value.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from search.errors import BadQuery
from search.payload import (
    BRAND,
    CATEGORY,
    DIRS,
    GEO,
    HEIGHT,
    KIND,
    KINDS,
    MEDIA_ID,
    PRICE,
    SIZE_BYTES,
    SOURCE,
    TAKEN_AT,
    VIDEO_ID,
    WIDTH,
)
from search.store.base import Condition, Filter, GeoBox, GeoRadius, Match, Range
from search.store.conversions import check_geo

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_VALUES = 256


class BadFilter(BadQuery):
    """A filter that cannot mean anything (unknown kind, empty range, bad field name)."""


@dataclass(frozen=True)
class FieldFilter:
    """One payload field: equal to one of ``values``, or within [gte, lte] when numeric."""

    key: str
    values: tuple[str | int | bool, ...] = ()
    gte: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class Near:
    """Within ``km`` kilometres of a place (decimal degrees): where the photo was taken (EXIF GPS)."""

    lat: float
    lon: float
    km: float


@dataclass(frozen=True)
class Area:
    """Inside a latitude/longitude box; ``west > east`` is a box across the antimeridian."""

    north: float
    west: float
    south: float
    east: float


@dataclass(frozen=True)
class FilterSpec:
    """Restrictions a query may carry; every field left empty leaves that dimension open."""

    kinds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    path_prefix: str | None = None  # a folder: files anywhere beneath it match
    taken_after: float | None = None  # unix seconds, inclusive (EXIF date, else file time)
    taken_before: float | None = None
    min_size: int | None = None  # bytes
    max_size: int | None = None
    min_width: int | None = None
    min_height: int | None = None
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    fields: tuple[FieldFilter, ...] = ()
    media_ids: tuple[str, ...] = ()
    video_ids: tuple[str, ...] = ()
    near: Near | None = None  # media without a GPS position never match a place filter
    area: Area | None = None

    def is_empty(self) -> bool:
        return self == FilterSpec()


def to_store_filter(spec: FilterSpec, kinds: Sequence[str] = ()) -> Filter:
    """Translate ``spec`` (plus the kinds a target needs) into a store Filter; BadFilter if invalid.

    ``kinds`` from the target narrow the search space (e.g. frames for moments); when the user
    also asked for kinds, both must hold, and an empty intersection is an error rather than a
    silently empty result.
    """
    chosen = _kinds(spec.kinds, kinds)
    must: list[Condition] = []
    if chosen:
        must.append(Match(KIND, chosen))
    must += _keyword(SOURCE, spec.sources)
    must += _keyword(CATEGORY, spec.categories)
    must += _keyword(BRAND, spec.brands)
    must += _keyword(MEDIA_ID, spec.media_ids)
    must += _keyword(VIDEO_ID, spec.video_ids)
    if spec.path_prefix is not None:
        folder = normalise_folder(spec.path_prefix)
        if folder != "/":
            must.append(Match(DIRS, (folder,)))
    must += _range(TAKEN_AT, spec.taken_after, spec.taken_before, "taken_after", "taken_before")
    must += _range(SIZE_BYTES, spec.min_size, spec.max_size, "min_size", "max_size")
    must += _range(WIDTH, spec.min_width, None, "min_width", "")
    must += _range(HEIGHT, spec.min_height, None, "min_height", "")
    must += _range(PRICE, spec.min_price, spec.max_price, "min_price", "max_price")
    for field in spec.fields:
        must.append(_field(field))
    must += _places(spec.near, spec.area)
    return Filter(tuple(must))


def normalise_folder(path: str) -> str:
    """The form ingest writes into ``dirs``: absolute, no trailing slash, no ``..``."""
    text = path.strip()
    if not text.startswith("/"):
        raise BadFilter(f"path_prefix must be an absolute folder path, got {path!r}.")
    return posixpath.normpath(text)


def _kinds(asked: Sequence[str], needed: Sequence[str]) -> tuple[str, ...]:
    unknown = [k for k in asked if k not in KINDS]
    if unknown:
        raise BadFilter(f"Unknown kind {unknown[0]!r}; use one of: {', '.join(KINDS)}.")
    if not needed:
        return tuple(dict.fromkeys(asked))
    if not asked:
        return tuple(needed)
    both = tuple(k for k in needed if k in asked)
    if not both:
        raise BadFilter(f"The kind filter {list(asked)} excludes what this search returns ({', '.join(needed)}).")
    return both


def _keyword(key: str, values: Sequence[str]) -> list[Condition]:
    if not values:
        return []
    if len(values) > _MAX_VALUES:
        raise BadFilter(f"At most {_MAX_VALUES} values may be given for {key}.")
    if any(not isinstance(v, str) or not v for v in values):
        raise BadFilter(f"Values of {key} must be non-empty strings.")
    return [Match(key, tuple(dict.fromkeys(values)))]


def _range(key: str, low: float | None, high: float | None, low_name: str, high_name: str) -> list[Condition]:
    if low is None and high is None:
        return []
    for name, value in ((low_name, low), (high_name, high)):
        if value is not None and (isinstance(value, bool) or not math.isfinite(float(value))):
            raise BadFilter(f"{name} must be a finite number.")
    if low is not None and high is not None and low > high:
        raise BadFilter(f"{low_name} ({low}) is greater than {high_name} ({high}): nothing can match.")
    return [Range(key, gte=None if low is None else float(low), lte=None if high is None else float(high))]


def _field(field: FieldFilter) -> Condition:
    if not _FIELD_NAME.match(field.key):
        raise BadFilter(f"Field name {field.key!r} is not valid (letters, digits and _ only).")
    has_range = field.gte is not None or field.lte is not None
    if has_range == bool(field.values):
        raise BadFilter(f"Filter on {field.key!r} needs either values to match or a gte/lte range, not both.")
    if has_range:
        return _range(field.key, field.gte, field.lte, f"{field.key}.gte", f"{field.key}.lte")[0]
    if len(field.values) > _MAX_VALUES:
        raise BadFilter(f"At most {_MAX_VALUES} values may be given for {field.key}.")
    kinds = {type(v) for v in field.values}
    if not (kinds <= {str} or kinds <= {int} or kinds == {bool}):
        raise BadFilter(
            f"Values of {field.key!r} must all be strings, all integers or one boolean; use gte/lte for decimal numbers."
        )
    if kinds == {bool} and len(field.values) != 1:
        raise BadFilter(f"Filter on {field.key!r} takes a single true/false value.")
    return Match(field.key, tuple(dict.fromkeys(field.values)))


def _places(near: Near | None, area: Area | None) -> list[Condition]:
    """Geo conditions on the EXIF position (the ``geo`` field, which has a geo index)."""
    found: list[GeoRadius | GeoBox] = []
    if near is not None:
        found.append(GeoRadius(GEO, near.lat, near.lon, near.km))
    if area is not None:
        found.append(GeoBox(GEO, area.north, area.west, area.south, area.east))
    for condition in found:
        check_geo(condition)  # a bad position is the request's fault: said now, naming the number
    return list(found)
