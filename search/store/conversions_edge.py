"""mmsearch's store types to Qdrant Edge's (``qdrant_edge``) and back. Only ``edge.py`` uses it."""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from search.errors import BadQuery
from search.store.base import Condition, FieldType, Filter, GeoBox, GeoRadius, HasId, Hit, Match, Range
from search.store.conversions import as_float32, check_geo, known_ids, match_groups

# Full text: words, lower-cased and ASCII-folded, with BM25 statistics so a TextQuery can rank
# by it; the same parameters as conversions_server's, so both backends tokenize alike.
SCHEMA_TYPES: dict[FieldType, qe.PayloadSchemaType | qe.TextIndexParams] = {
    FieldType.KEYWORD: qe.PayloadSchemaType.Keyword,
    FieldType.INTEGER: qe.PayloadSchemaType.Integer,
    FieldType.FLOAT: qe.PayloadSchemaType.Float,
    FieldType.BOOL: qe.PayloadSchemaType.Bool,
    FieldType.DATETIME: qe.PayloadSchemaType.Datetime,
    FieldType.GEO: qe.PayloadSchemaType.Geo,
    FieldType.TEXT: qe.TextIndexParams(
        tokenizer=qe.TokenizerType.Word, lowercase=True, ascii_folding=True, phrase_matching=True, scoring=True
    ),
}

EdgeCondition = Any  # FieldCondition | HasIdCondition | Filter: the stub's ConditionType


def to_filter(flt: Filter | None) -> qe.Filter | None:
    """Our Filter as Edge's; None for an empty one, which Edge reads as 'everything'."""
    if not flt:
        return None
    return qe.Filter(
        must=[to_condition(c) for c in flt.must] or None,
        must_not=[to_condition(c) for c in flt.must_not] or None,
    )


def to_condition(condition: Condition) -> EdgeCondition:
    if isinstance(condition, Match):
        return _match(condition)
    if isinstance(condition, Range):
        return qe.FieldCondition(
            condition.key,
            range=qe.RangeFloat(gte=condition.gte, gt=condition.gt, lte=condition.lte, lt=condition.lt),
        )
    if isinstance(condition, HasId):
        return qe.HasIdCondition(set(known_ids(condition.ids)))
    if isinstance(condition, GeoRadius):
        check_geo(condition)
        radius = qe.GeoRadius(center=qe.GeoPoint(lon=condition.lon, lat=condition.lat), radius=condition.km * 1000.0)
        return qe.FieldCondition(condition.key, geo_radius=radius)
    if isinstance(condition, GeoBox):
        check_geo(condition)
        box = qe.GeoBoundingBox(
            top_left=qe.GeoPoint(lon=condition.west, lat=condition.north),
            bottom_right=qe.GeoPoint(lon=condition.east, lat=condition.south),
        )
        return qe.FieldCondition(condition.key, geo_bounding_box=box)
    raise TypeError(f"Unknown filter condition {condition!r}")


def _match(match: Match) -> EdgeCondition:
    """One 'any' per value type; a field holding a list matches when any element does.

    Booleans are refused: qdrant-edge-py 0.9 converts ``MatchValue(True)`` to the integer 1,
    which never matches a stored boolean, so the filter would silently match nothing.
    """
    strings, ints, bools = match_groups(match)
    if bools:
        raise BadQuery(
            f"The embedded store cannot filter {match.key!r} on true/false values "
            "(a Qdrant Edge limitation); store the flag as text such as 'yes'/'no'."
        )
    parts: list[EdgeCondition] = [qe.FieldCondition(match.key, match=qe.MatchAny(group)) for group in (strings, ints) if group]
    return parts[0] if len(parts) == 1 else qe.Filter(should=parts)


def to_hit(point: Any, score: float | None = None) -> Hit:
    """An Edge ScoredPoint or Record as our Hit; a Record (no score) counts as a perfect match."""
    return Hit(
        id=str(point.id),
        score=float(point.score if score is None else score),
        payload=dict(point.payload or {}),
        vector=as_float32(point.vector.get("") if isinstance(point.vector, dict) else point.vector),  # dense only
    )
