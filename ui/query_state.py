"""The query a user is composing on the Search page, kept in Streamlit's session state.

A query is the text box (plain text or the arithmetic syntax) plus extra weighted terms:
an uploaded image, and items added from the results ("use as query", "subtract from
query") or typed into the term builder. Result buttons change this state in callbacks, so
the next run searches with the new composition.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

TermKind = Literal["text", "id", "url"]
ARITHMETIC_MARKS = ('"', "+", " -", "- ", "*", "\u00d7", "\u2212", "id:", "url:", "http://", "https://")

TERMS_KEY = "search.terms"
SIMILAR_KEY = "search.similar"
PAGE_KEY = "search.page"
QUERY_KEY = "search.query"
FEEDBACK_KEY = "search.feedback"  # result id → (liked, label): marked 👍 / 👎, refining the query

State = MutableMapping[str, Any]


@dataclass(frozen=True)
class BuilderTerm:
    """A term added beside the text box; ``weight`` carries the sign (+ adds, − subtracts)."""

    kind: TermKind  # text, id or url (an uploaded image is sent apart, as a file)
    value: str  # the text, item id or URL
    weight: float = 1.0
    label: str = ""  # what the builder shows: an item's title rather than its id
    thumbnail_url: str | None = None

    def atom(self) -> str:
        """The term in the arithmetic syntax, without its weight."""
        if self.kind == "id":
            return f"id:{self.value}"
        if self.kind == "url":
            return f"url:{self.value}"
        return quoted(self.value)


@dataclass(frozen=True)
class SimilarTo:
    """ "More like this": the item whose neighbours the page shows instead of the query."""

    id: str
    label: str


def terms(state: State) -> list[BuilderTerm]:
    return list(state.get(TERMS_KEY, []))


def add_term(state: State, term: BuilderTerm) -> None:
    """Append a term; the same item added twice just has its weights summed."""
    current = terms(state)
    for index, existing in enumerate(current):
        if existing.kind == term.kind and existing.value == term.value:
            current[index] = replace(existing, weight=round(existing.weight + term.weight, 3))
            break
    else:
        current.append(term)
    state[TERMS_KEY] = [t for t in current if t.weight != 0]
    reset_page(state)


def remove_term(state: State, index: int) -> None:
    current = terms(state)
    if 0 <= index < len(current):
        del current[index]
    state[TERMS_KEY] = current
    reset_page(state)


def set_weight(state: State, index: int, weight: float) -> None:
    current = terms(state)
    if 0 <= index < len(current):
        current[index] = replace(current[index], weight=weight)
    state[TERMS_KEY] = current
    reset_page(state)


def clear(state: State) -> None:
    """Forget the whole composition (the text box is cleared by its own widget key)."""
    state[TERMS_KEY] = []
    state.pop(SIMILAR_KEY, None)
    reset_page(state)


def similar_to(state: State) -> SimilarTo | None:
    return state.get(SIMILAR_KEY)


def show_similar(state: State, item_id: str, label: str) -> None:
    state[SIMILAR_KEY] = SimilarTo(item_id, label)
    reset_page(state)


def leave_similar(state: State) -> None:
    state.pop(SIMILAR_KEY, None)
    reset_page(state)


def page(state: State) -> int:
    return int(state.get(PAGE_KEY, 0))


def set_page(state: State, number: int) -> None:
    state[PAGE_KEY] = max(0, number)


def reset_page(state: State) -> None:
    state[PAGE_KEY] = 0


def feedback(state: State) -> dict[str, tuple[bool, str]]:
    """The results marked liked (True) or disliked (False), by id, with their titles."""
    return dict(state.get(FEEDBACK_KEY, {}))


def mark(state: State, item_id: str, label: str, liked: bool) -> None:
    """Mark a result liked or disliked; marking it the same way again unmarks it."""
    marks = dict(state.get(FEEDBACK_KEY, {}))
    if marks.get(item_id, (None,))[0] is liked:
        marks.pop(item_id)
    else:
        marks[item_id] = (liked, label)
    state[FEEDBACK_KEY] = marks
    reset_page(state)


def clear_feedback(state: State) -> None:
    state.pop(FEEDBACK_KEY, None)
    reset_page(state)


def looks_like_arithmetic(text: str) -> bool:
    """Whether the box holds the arithmetic syntax rather than plain words.

    Plain words go to the API as literal text, so "it's red" or "t-shirt" never meet the
    parser; anything with quotes, operators or ``id:``/``url:`` terms is parsed.
    """
    return any(mark in text for mark in ARITHMETIC_MARKS)


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def compose(box: str, builder: Sequence[BuilderTerm]) -> tuple[str, bool]:
    """The query to send and whether it is literal text: the box, then the builder's terms.

    Builder terms are appended in the arithmetic syntax (``+ 0.5*id:…``), so one string carries
    the whole composition and the API's parser reports problems with their position.
    """
    box = box.strip()
    if not builder:
        return box, bool(box) and not looks_like_arithmetic(box)
    parts = [box if looks_like_arithmetic(box) else quoted(box)] if box else []
    for term in builder:
        sign = "-" if term.weight < 0 else "+"
        magnitude = abs(term.weight)
        body = term.atom() if magnitude == 1 else f"{magnitude:g}*{term.atom()}"
        parts.append(f"{sign} {body}" if parts or sign == "-" else body)
    return " ".join(parts), False
