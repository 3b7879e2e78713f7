"""Feedback: results a user marked liked or disliked refine the query they came from.

With query terms, the examples join the query's arithmetic (each liked result adds, each
disliked one subtracts, ``FEEDBACK_WEIGHT`` shared among them), so the query still leads; with
no terms they are the engine's recommend examples (positive/negative). Every id is resolved up
front, so unknown ones are reported together (NotFound naming each) before any search work.
"""

from __future__ import annotations

from dataclasses import replace

from search.engine.request import SearchRequest
from search.engine.terms import resolve_item
from search.errors import NotFound
from search.query import IdTerm
from search.services import Services

FEEDBACK_WEIGHT = 0.5  # the liked (and, separately, the disliked) examples' total weight next to the query's 1.0


def with_feedback(services: Services, request: SearchRequest) -> SearchRequest:
    """``request`` with its liked/disliked ids folded into the query (terms or examples)."""
    if not request.like and not request.dislike:
        return request
    resolved = _resolve(services, request.like + request.dislike)  # every unknown id named at once
    like = tuple(resolved[i] for i in dict.fromkeys(request.like))
    dislike = tuple(resolved[i] for i in dict.fromkeys(request.dislike))
    if request.terms:
        added = [IdTerm(i, FEEDBACK_WEIGHT / len(like)) for i in like]
        added += [IdTerm(i, -FEEDBACK_WEIGHT / len(dislike)) for i in dislike]
        return replace(request, terms=request.terms + tuple(added), like=(), dislike=())
    positive = tuple(dict.fromkeys(request.positive + like))
    negative = tuple(dict.fromkeys(request.negative + dislike))
    return replace(request, positive=positive, negative=negative, like=(), dislike=())


def _resolve(services: Services, ids: tuple[str, ...]) -> dict[str, str]:
    """Point ids for ``ids`` (point or media ids); NotFound lists every unknown one."""
    resolved: dict[str, str] = {}
    missing = []
    for item_id in dict.fromkeys(ids):
        try:
            resolved[item_id] = resolve_item(services, item_id).id
        except NotFound:
            missing.append(item_id)
    if missing:
        raise NotFound(f"Unknown feedback id{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.")
    return resolved
