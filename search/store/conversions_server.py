"""mmsearch's store types to qdrant-client's REST models and back. Only ``server.py`` uses it."""

from __future__ import annotations

from typing import Any

from qdrant_client import models

from search.store.base import Condition, FieldType, Filter, GeoBox, GeoRadius, HasId, Hit, Match, Range
from search.store.conversions import as_float32, check_geo, known_ids, match_groups

# Full text as in conversions_edge: words, lower-cased and ASCII-folded, BM25-scorable.
SCHEMA_TYPES: dict[FieldType, models.PayloadSchemaType | models.TextIndexParams] = {
    FieldType.KEYWORD: models.PayloadSchemaType.KEYWORD,
    FieldType.INTEGER: models.PayloadSchemaType.INTEGER,
    FieldType.FLOAT: models.PayloadSchemaType.FLOAT,
    FieldType.BOOL: models.PayloadSchemaType.BOOL,
    FieldType.DATETIME: models.PayloadSchemaType.DATETIME,
    FieldType.GEO: models.PayloadSchemaType.GEO,
    FieldType.TEXT: models.TextIndexParams(
        type=models.TextIndexType.TEXT,
        tokenizer=models.TokenizerType.WORD,
        lowercase=True,
        ascii_folding=True,
        phrase_matching=True,
        scoring=True,
    ),
}

ServerCondition = Any  # models.FieldCondition | models.HasIdCondition | models.Filter


def to_filter(flt: Filter | None) -> models.Filter | None:
    """Our Filter as qdrant-client's; None for an empty one, which Qdrant reads as 'everything'."""
    if not flt:
        return None
    return models.Filter(
        must=[to_condition(c) for c in flt.must] or None,
        must_not=[to_condition(c) for c in flt.must_not] or None,
    )


def to_condition(condition: Condition) -> ServerCondition:
    if isinstance(condition, Match):
        return _match(condition)
    if isinstance(condition, Range):
        return models.FieldCondition(
            key=condition.key,
            range=models.Range(gte=condition.gte, gt=condition.gt, lte=condition.lte, lt=condition.lt),
        )
    if isinstance(condition, HasId):
        ids: list[models.ExtendedPointId] = list(known_ids(condition.ids))
        return models.HasIdCondition(has_id=ids)
    if isinstance(condition, GeoRadius):
        check_geo(condition)
        radius = models.GeoRadius(center=models.GeoPoint(lon=condition.lon, lat=condition.lat), radius=condition.km * 1000.0)
        return models.FieldCondition(key=condition.key, geo_radius=radius)
    if isinstance(condition, GeoBox):
        check_geo(condition)
        box = models.GeoBoundingBox(
            top_left=models.GeoPoint(lon=condition.west, lat=condition.north),
            bottom_right=models.GeoPoint(lon=condition.east, lat=condition.south),
        )
        return models.FieldCondition(key=condition.key, geo_bounding_box=box)
    raise TypeError(f"Unknown filter condition {condition!r}")


def _match(match: Match) -> ServerCondition:
    """One 'any' per value type, one exact match per boolean (MatchAny takes no booleans);
    a field holding a list matches when any element does."""
    strings, ints, bools = match_groups(match)
    parts: list[ServerCondition] = [
        models.FieldCondition(key=match.key, match=models.MatchAny(any=group)) for group in (strings, ints) if group
    ]
    parts += [models.FieldCondition(key=match.key, match=models.MatchValue(value=b)) for b in dict.fromkeys(bools)]
    return parts[0] if len(parts) == 1 else models.Filter(should=parts)


def to_hit(point: models.ScoredPoint | models.Record, score: float | None = None) -> Hit:
    """A ScoredPoint or Record as our Hit; a Record (no score) counts as a perfect match."""
    raw = point.vector
    vector = raw.get("") if isinstance(raw, dict) else raw  # named vectors: ours is the unnamed default
    if score is None:
        score = point.score if isinstance(point, models.ScoredPoint) else 1.0
    return Hit(
        id=str(point.id),
        score=float(score),
        payload=dict(point.payload or {}),
        vector=as_float32(vector),  # type: ignore[arg-type]  # dense only: we store no sparse or multi-vectors
    )
