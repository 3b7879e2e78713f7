"""Checks and conversions both backends share, so they accept, reject and return alike.

Each backend owns the translation into its engine's types (``conversions_edge.py``,
``conversions_server.py``); what is decided here, once, is everything that must not differ
between them: which ids are valid, what a usable vector is, which payload values survive,
and which argument mistakes are the caller's (``ValueError``) or the user's (``BadQuery``).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from search.errors import BadQuery, NotFound
from search.store.base import Filter, GeoBox, GeoRadius, HasId, Hit, Match, Vector

# Values a payload may hold after ``plain_payload``: what JSON (and both engines) can store.
_SCALARS = (str, int, float, bool, type(None))

# The collection's own record (schema version) is a point with this reserved id. It must be a
# point because Qdrant Edge has no collection metadata; every read, count and delete leaves it
# out (``visible``), so to callers it does not exist.
RECORD_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://mmsearch/collection-record"))


def canonical_id(value: object) -> str | None:
    """The lowercase hyphenated form of a UUID id, or None when ``value`` is not one.

    Both engines accept other spellings (braces, upper case) and hand back this one, so
    comparing ids the caller sent with ids the engine returned needs one spelling.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def require_id(value: object) -> str:
    """A point id for writing: a UUID string (see ``search.ids.point_id``), else ValueError."""
    canonical = canonical_id(value)
    if canonical is None:
        raise ValueError(f"Point id {value!r} is not a UUID; build ids with search.ids.point_id.")
    return canonical


def known_ids(ids: Iterable[object]) -> list[str]:
    """Canonical ids in order, dropping malformed ones: an id that cannot exist matches nothing."""
    return [c for c in (canonical_id(i) for i in ids) if c is not None]


def point_vector(vector: Vector, dim: int, point_id: str) -> list[float]:
    """A stored vector as a float list; a wrong size, NaN or zero vector is an ingest bug."""
    problem, values = _vector_problem(vector, dim)
    if problem:
        raise ValueError(f"Point {point_id}: {problem}")
    return values


def query_vector(vector: Vector, dim: int) -> list[float]:
    """A query vector as a float list; it may come from a user, so problems are BadQuery."""
    problem, values = _vector_problem(vector, dim)
    if problem:
        raise BadQuery(f"The query vector is unusable: {problem}")
    return values


def _vector_problem(vector: Vector, dim: int) -> tuple[str | None, list[float]]:
    """Why ``vector`` cannot be used under cosine distance (None if it can), and its values."""
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dim,):
        return f"expected {dim} numbers, got shape {array.shape}", []
    if not np.isfinite(array).all():
        return "it contains NaN or infinite values", []
    if not np.any(array):
        return "it is all zeros, which has no direction to compare by cosine", []
    return None, array.tolist()


def as_float32(vector: Sequence[float] | None) -> np.ndarray | None:
    """Engine vectors come back as float lists; callers get float32 arrays like the embedder's."""
    return None if vector is None else np.asarray(vector, dtype=np.float32)


def check_page(limit: int, offset: int = 0) -> None:
    """Reject page arguments an engine would reject less clearly (or silently accept)."""
    if limit < 1:
        raise BadQuery(f"limit must be at least 1, got {limit}.")
    if offset < 0:
        raise BadQuery(f"offset must not be negative, got {offset}.")


def scroll_cursor(offset: str | None) -> str | None:
    """Validate a cursor handed back by ``scroll``: an opaque token a client may mangle."""
    if offset is None:
        return None
    canonical = canonical_id(offset)
    if canonical is None:
        raise BadQuery(f"Scroll cursor {offset!r} is not one this store handed out.")
    return canonical


def plain_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Payload as JSON-able Python values: numpy scalars and arrays become plain numbers.

    Both engines must store exactly the same thing, and qdrant-client cannot serialise numpy
    types while Edge silently converts them; converting here keeps the two identical.
    """
    return {str(key): _plain_value(value, str(key)) for key, value in payload.items()}


def _plain_value(value: Any, where: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Payload field {where!r} holds {value}, which JSON cannot store.")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain_value(item, where) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _plain_value(v, f"{where}.{k}") for k, v in value.items()}
    raise ValueError(
        f"Payload field {where!r} holds a {type(value).__name__}; store strings, numbers, "
        "booleans, lists or dicts (dates as unix seconds)."
    )


def match_groups(match: Match) -> tuple[list[str], list[int], list[bool]]:
    """Split a Match's values by type: engines take strings and integers as one 'any' list
    each, but booleans only one at a time. Unsupported or missing values are the user's."""
    if not match.values:
        raise BadQuery(f"The filter on {match.key!r} lists no values to match.")
    strings = [v for v in match.values if isinstance(v, str)]
    bools = [v for v in match.values if isinstance(v, bool)]
    ints = [v for v in match.values if isinstance(v, int) and not isinstance(v, bool)]
    if len(strings) + len(ints) + len(bools) != len(match.values):
        raise BadQuery(
            f"The filter on {match.key!r} can match text, whole numbers or true/false; use a range for decimal numbers."
        )
    return strings, ints, bools


def check_geo(condition: GeoRadius | GeoBox) -> None:
    """Reject a position no engine can place; both backends would fail less clearly."""
    points = (
        [(condition.lat, condition.lon)]
        if isinstance(condition, GeoRadius)
        else [
            (condition.north, condition.west),
            (condition.south, condition.east),
        ]
    )
    for lat, lon in points:
        if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
            raise BadQuery(f"The geo filter on {condition.key!r} has latitude {lat}; it must lie between -90 and 90.")
        if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
            raise BadQuery(f"The geo filter on {condition.key!r} has longitude {lon}; it must lie between -180 and 180.")
    if isinstance(condition, GeoRadius) and not (math.isfinite(condition.km) and condition.km > 0):
        raise BadQuery(f"The geo filter on {condition.key!r} has radius {condition.km} km; it must be more than 0.")
    if isinstance(condition, GeoBox) and condition.north < condition.south:
        raise BadQuery(f"The geo box on {condition.key!r} has its north edge ({condition.north}) south of its south edge.")


def visible(flt: Filter | None) -> Filter:
    """``flt`` plus 'not the collection record': what every read and delete applies."""
    return (flt or Filter()).excluding(HasId((RECORD_ID,)))


def record_vector(dim: int) -> list[float]:
    """The record's vector: any unit vector will do, since no search can return the record."""
    return [1.0] + [0.0] * (dim - 1)


def without_record(ids: Iterable[str]) -> list[str]:
    return [i for i in ids if i != RECORD_ID]


def payload_groups(updates: Mapping[str, Mapping[str, Any]], existing: Iterable[str]) -> list[tuple[list[str], dict[str, Any]]]:
    """``set_payload`` work for the engines: ids grouped by the plain payload they receive,
    keeping only ids that exist (engines refuse unknown ids) and never the record."""
    found = set(existing)
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for raw_id, fields in updates.items():
        point_id = canonical_id(raw_id)
        if point_id is None or point_id not in found or point_id == RECORD_ID or not fields:
            continue
        plain = plain_payload(fields)
        ids, _ = groups.setdefault(json.dumps(plain, sort_keys=True), ([], plain))
        ids.append(point_id)
    return list(groups.values())


def excluding_examples(flt: Filter | None, example_ids: Sequence[str]) -> Filter:
    """``flt`` plus 'not one of the examples': recommend never returns what it was shown."""
    return (flt or Filter()).excluding(HasId(tuple(example_ids)))


def check_examples(positive: Sequence[str], negative: Sequence[str]) -> tuple[list[str], list[str]]:
    """Canonical example ids for recommend; an id that is not a UUID cannot be found."""
    if not positive:
        raise BadQuery("Recommend needs at least one positive example.")
    return [_example_id(i) for i in positive], [_example_id(i) for i in negative]


def _example_id(value: str) -> str:
    canonical = canonical_id(value)
    if canonical is None:
        raise NotFound(f"No point with id {value!r}: ids are UUIDs.")
    return canonical


def example_vectors(found: Sequence[Hit], wanted: Sequence[str]) -> dict[str, list[float]]:
    """Vectors of the retrieved examples by id; NotFound names every example that is missing."""
    by_id = {hit.id: hit.vector.tolist() for hit in found if hit.vector is not None}
    missing = [i for i in dict.fromkeys(wanted) if i not in by_id]
    if missing:
        raise NotFound(f"No point with id {', '.join(missing)} in this collection; cannot recommend from it.")
    return {i: by_id[i] for i in wanted}
