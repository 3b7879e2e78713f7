"""Query arithmetic: weighted terms, the compact string syntax, composition and explanation.

A query is a list of weighted terms; each term is text, an image (bytes, a URL or a local
file) or the id of an indexed item. Embeddings compose (ZeroCap's image(woman) + image(king)
- image(man) ~ "a queen"), so users can write "this photo, but at night" as
``id:… + "night" - "day"``.

Composition rule (what ``compose`` computes, and what ``explain`` relies on)::

    u_i = e_i / |e_i|              # normalise each term, so weights mean the same for every kind
    s   = sum_i w_i * u_i          # weighted sum; negative weights push away
    q   = s / |s|                  # renormalise: the store ranks by cosine

For an indexed vector ``x`` (unit length) the score is ``q . x = sum_i w_i (u_i . x) / |s|``,
so each term's *contribution* ``w_i (u_i . x) / |s|`` adds up exactly to the hit's score.

Compact syntax (CLI, UI, the API's ``query`` field)::

    query    := term (("+" | "-") term)*        a leading "+" or "-" is allowed
    term     := [number "*"] atom ["*" number]  "×" works as "*", "−" as "-"
    atom     := "quoted text" | 'quoted text' | id:REF | url:URL | file:PATH | bare words
    examples:  "beach" + id:42 - 0.5*"people"      red car - "night" * 0.3

Bare words run until an operator: ``*`` always ends them; ``+`` and ``-`` only when they stand
apart (a space before or after), so ``t-shirt`` stays one word. ``https://…`` alone is a URL
term. ``file:`` terms read the local disk and are accepted only where the caller allows them
(the CLI, never the HTTP API).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Union

import numpy as np

from search import bounds
from search.errors import BadQuery

# --- term types -------------------------------------------------------------------------


@dataclass(frozen=True)
class TextTerm:
    """Free text, embedded by the text encoder (with prompt ensembling per settings)."""

    text: str
    weight: float = 1.0
    position: int | None = None  # offset in the query string this term was parsed from

    @property
    def label(self) -> str:
        return f'"{self.text}"'


@dataclass(frozen=True)
class ImageTerm:
    """Image bytes (an upload or base64 in JSON), decoded with the pixel limit and embedded."""

    data: bytes
    weight: float = 1.0
    position: int | None = None
    name: str = "image"

    @property
    def label(self) -> str:
        return f"image:{self.name}"


@dataclass(frozen=True)
class UrlTerm:
    """An image on the web, fetched with the same SSRF guard as the crawler."""

    url: str
    weight: float = 1.0
    position: int | None = None

    @property
    def label(self) -> str:
        return f"url:{self.url}"


@dataclass(frozen=True)
class IdTerm:
    """An indexed item: its stored vector is reused, nothing is re-embedded."""

    id: str
    weight: float = 1.0
    position: int | None = None

    @property
    def label(self) -> str:
        return f"id:{self.id}"


@dataclass(frozen=True)
class FileTerm:
    """A local image file; only the CLI resolves these (an API must not read its own disk)."""

    path: str
    weight: float = 1.0
    position: int | None = None

    @property
    def label(self) -> str:
        return f"file:{self.path}"


Term = Union[TextTerm, ImageTerm, UrlTerm, IdTerm, FileTerm]


def with_weight(term: Term, weight: float) -> Term:
    """The same term with another weight (terms are frozen)."""
    return replace(term, weight=weight)


# --- the compact string syntax ------------------------------------------------------------

MAX_QUERY_CHARS = bounds.MAX_QUERY_CHARS
MAX_TERMS = bounds.MAX_TERMS
MAX_ABS_WEIGHT = bounds.MAX_ABS_WEIGHT
_NUMBER = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?")
_PREFIXES = ("id", "url", "file", "img", "image")
_MINUS = "-\u2212"  # ASCII hyphen-minus and the Unicode minus sign
_TIMES = "*\u00d7"


def parse_query(text: str) -> list[Term]:
    """Parse the compact syntax into weighted terms; BadQuery carries the offending offset."""
    return _Parser(text).parse()


class _Parser:
    """A small recursive-descent parser; positions are 0-based offsets into the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # helpers
    def _fail(self, message: str, position: int | None = None) -> BadQuery:
        at = self.pos if position is None else position
        return BadQuery(f"{message} (at position {at})", at)

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _at_end(self) -> bool:
        return self.pos >= len(self.text)

    # grammar
    def parse(self) -> list[Term]:
        if len(self.text) > MAX_QUERY_CHARS:
            raise BadQuery(f"The query is longer than {MAX_QUERY_CHARS} characters.", MAX_QUERY_CHARS)
        self._skip_space()
        if self._at_end():
            raise BadQuery("The query is empty.", 0)
        sign = self._sign(first=True)
        terms = [self._term(sign)]
        while True:
            self._skip_space()
            if self._at_end():
                break
            op_at = self.pos
            if self._peek() not in "+" + _MINUS:
                raise self._fail(f"Expected '+' or '-' between terms, found {self._peek()!r}")
            sign = self._sign(first=False)
            self._skip_space()
            if self._at_end():
                raise self._fail(f"Expected a term after {self.text[op_at]!r}")
            terms.append(self._term(sign))
            if len(terms) > MAX_TERMS:
                raise BadQuery(f"A query may combine at most {MAX_TERMS} terms.", op_at)
        return terms

    def _sign(self, first: bool) -> float:
        """Read one operator (or, before the first term, an optional sign)."""
        self._skip_space()
        ch = self._peek()
        if ch == "+":
            self.pos += 1
            return 1.0
        if ch and ch in _MINUS:
            self.pos += 1
            return -1.0
        if first:
            return 1.0
        raise self._fail("Expected '+' or '-'")  # pragma: no cover - guarded by the caller

    def _term(self, sign: float) -> Term:
        self._skip_space()
        begin = self.pos  # a bad weight is reported where the term (with its weight) starts
        weight = sign
        prefix = self._number_then_times()
        if prefix is not None:
            weight *= prefix
        term = self._atom()
        while True:
            save = self.pos
            self._skip_space()
            if self._peek() and self._peek() in _TIMES:
                self.pos += 1
                self._skip_space()
                number = self._number()
                if number is None:
                    raise self._fail("Expected a number after '*'")
                weight *= number
                continue
            self.pos = save
            break
        if not math.isfinite(weight) or abs(weight) > MAX_ABS_WEIGHT:
            raise BadQuery(f"Weights must be between -{MAX_ABS_WEIGHT:g} and {MAX_ABS_WEIGHT:g} (at position {begin})", begin)
        return with_weight(term, weight)

    def _number(self) -> float | None:
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            return None
        self.pos = match.end()
        return float(match.group())

    def _number_then_times(self) -> float | None:
        """A leading ``0.5 *`` weight; anything else (``3 dogs``) is left for the atom."""
        save = self.pos
        number = self._number()
        if number is not None:
            self._skip_space()
            if self._peek() and self._peek() in _TIMES:
                self.pos += 1
                self._skip_space()
                if self._at_end():
                    raise self._fail("Expected a term after '*'")
                return number
        self.pos = save
        return None

    def _atom(self) -> Term:
        start = self.pos
        ch = self._peek()
        if ch in ("'", '"'):
            return TextTerm(self._quoted(), position=start)
        for prefix in _PREFIXES:
            if self.text.startswith(prefix + ":", self.pos) and not self.text.startswith("://", self.pos + len(prefix)):
                self.pos += len(prefix) + 1
                return self._prefixed(prefix, start)
        if self.text.startswith(("http://", "https://"), self.pos):
            return UrlTerm(self._token(start, "url"), position=start)
        if ch in _TIMES or ch == "+" or (ch and ch in _MINUS):
            raise self._fail(f"Expected a term, found {ch!r}")
        return TextTerm(self._bare(), position=start)

    def _quoted(self) -> str:
        quote, start = self._peek(), self.pos
        self.pos += 1
        out: list[str] = []
        while not self._at_end():
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == quote:
                self.pos += 1
                value = "".join(out).strip()
                if not value:
                    raise self._fail("Empty quoted text", start)
                return value
            out.append(ch)
            self.pos += 1
        raise self._fail(f"Unterminated quote: add a closing {quote}", start)

    def _token(self, start: int, what: str) -> str:
        """A quoted string or a run of non-space characters (ids, URLs, paths)."""
        if self._peek() in ("'", '"'):
            return self._quoted()
        begin = self.pos
        while not self._at_end() and not self.text[self.pos].isspace():
            self.pos += 1
        if self.pos == begin:
            raise self._fail(f"'{what}:' needs a value right after the colon", start)
        return self.text[begin : self.pos]

    def _prefixed(self, prefix: str, start: int) -> Term:
        value = self._token(start, prefix)
        if prefix == "id":
            return IdTerm(value, position=start)
        if prefix in ("img", "image") and not value.startswith(("http://", "https://")):
            return FileTerm(value, position=start)
        if prefix == "file":
            return FileTerm(value, position=start)
        if not value.startswith(("http://", "https://")):
            raise self._fail("A url: term must start with http:// or https://", start)
        return UrlTerm(value, position=start)

    def _bare(self) -> str:
        """Words up to the next operator; '+'/'-' count only when they stand apart."""
        begin = self.pos
        while not self._at_end():
            ch = self.text[self.pos]
            if ch in _TIMES or ch in ("'", '"'):
                break
            if ch == "+" or ch in _MINUS:
                before = self.text[self.pos - 1] if self.pos > begin else " "
                after = self.text[self.pos + 1] if self.pos + 1 < len(self.text) else " "
                if before.isspace() or after.isspace() or ch == "+":
                    break
            self.pos += 1
        value = self.text[begin : self.pos].strip()
        if not value:
            raise self._fail("Expected a term")
        # a trailing number is a weight only with '*'; "3 dogs" and "dogs 3" are text
        return value


def format_query(terms: Sequence[Term]) -> str:
    """The compact form of a term list (round-trips through ``parse_query``)."""
    parts: list[str] = []
    for i, term in enumerate(terms):
        sign = "-" if term.weight < 0 else "+"
        magnitude = abs(term.weight)
        body = _atom_text(term)
        text = body if magnitude == 1 else f"{magnitude:g}*{body}"
        parts.append(("-" + text) if (i == 0 and sign == "-") else text if i == 0 else f"{sign} {text}")
    return " ".join(parts)


def _atom_text(term: Term) -> str:
    if isinstance(term, TextTerm):
        return '"' + term.text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return term.label


# --- composition ----------------------------------------------------------------------------

_EPS = 1e-6


@dataclass(frozen=True)
class Composition:
    """The query vector plus what ``explain`` needs to split a score into term contributions."""

    vector: np.ndarray  # (dim,) unit length
    units: np.ndarray  # (n_terms, dim) each term's normalised embedding
    weights: np.ndarray  # (n_terms,)
    norm: float  # |sum_i w_i u_i| before renormalising


def compose(vectors: np.ndarray | Sequence[np.ndarray], weights: Sequence[float]) -> Composition:
    """Normalise each term, take the weighted sum, renormalise (see the module docstring)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(weights) or matrix.shape[0] == 0:
        raise ValueError("compose needs one vector per weight")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.any(norms < _EPS):
        raise BadQuery("A query term has an empty embedding and cannot be used.")
    units = matrix / norms
    w = np.asarray(weights, dtype=np.float32)
    total = (w[:, None] * units).sum(axis=0)
    norm = float(np.linalg.norm(total))
    if norm < _EPS or not math.isfinite(norm):
        raise BadQuery("The terms cancel each other out; change a weight or add a term.")
    return Composition(vector=(total / norm).astype(np.float32), units=units, weights=w, norm=norm)


def contributions(composition: Composition, hit_vector: np.ndarray) -> np.ndarray:
    """Each term's share of the cosine score of ``hit_vector``; the shares sum to the score."""
    x = np.asarray(hit_vector, dtype=np.float32)
    n = float(np.linalg.norm(x))
    x = x / n if n > _EPS else x
    return composition.weights * (composition.units @ x) / composition.norm


def examples_vector(positive: np.ndarray, negative: np.ndarray | None) -> np.ndarray:
    """Qdrant's ``average_vector`` recommend strategy, for targets the store cannot recommend on.

    ``avg(pos) + (avg(pos) - avg(neg))``, renormalised: the same point Qdrant searches from, so
    moments and videos rank with the same notion of "like these, unlike those" as images.
    """
    pos = _unit_rows(positive).mean(axis=0)
    total = pos if negative is None or len(negative) == 0 else 2 * pos - _unit_rows(negative).mean(axis=0)
    norm = float(np.linalg.norm(total))
    if norm < _EPS:
        raise BadQuery("The positive and negative examples cancel each other out.")
    return (total / norm).astype(np.float32)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), _EPS)


# --- keyword syntax ----------------------------------------------------------------------------

_EXACT_TOKEN = re.compile(r"\S*\d\S*|\S+[._]\S+")  # codes and file names: BL-1234, 50ml, IMG_2041.jpg


@dataclass(frozen=True)
class KeywordText:
    """A query as keyword search reads it: loose ``words``, and ``phrases`` (double-quoted)
    whose matches rank first."""

    words: str
    phrases: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        """Whether it names something exactly (a quoted phrase, a code or a file name), so
        keyword relevance should outweigh visual similarity when the two are fused."""
        return bool(self.phrases) or bool(_EXACT_TOKEN.search(self.words))

    @property
    def exact_tokens(self) -> tuple[str, ...]:
        """The codes and file names among the loose words ("BL-1234", "IMG_2041.jpg")."""
        return tuple(_EXACT_TOKEN.findall(self.words))

    @property
    def text(self) -> str:
        """Everything typed, without quotes: what the text encoder sees."""
        return " ".join(part for part in (self.words, *self.phrases) if part)


def parse_keywords(text: str) -> KeywordText:
    """Split ``text`` into loose words and "quoted phrases"; BadQuery (with the position of
    the opening quote) for a quote left open. Single quotes are apostrophes here ("kid's")."""
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(f"The query is longer than {MAX_QUERY_CHARS} characters.", MAX_QUERY_CHARS)
    words: list[str] = []
    phrases: list[str] = []
    pos = 0
    while True:
        start = text.find('"', pos)
        if start < 0:
            words.append(text[pos:])
            break
        end = text.find('"', start + 1)
        if end < 0:
            raise BadQuery(f'Unbalanced quote in the keyword query: add a closing " (at position {start})', start)
        words.append(text[pos:start])
        phrase = " ".join(text[start + 1 : end].split())
        if phrase:
            phrases.append(phrase)
        pos = end + 1
    return KeywordText(" ".join(" ".join(words).split()), tuple(phrases))


def parse_search(text: str) -> list[Term]:
    """``parse_query``, except that plain words mixing in "quoted phrases" (``beach "party
    hat"``, which arithmetic reads as two terms without an operator) are one text term."""
    try:
        return parse_query(text)
    except BadQuery:
        if '"' not in text or any(op in text for op in ("+", "*", "\u00d7", ":")):
            raise
        keywords = parse_keywords(text)  # an unbalanced quote is reported here
        if not keywords.words:  # only quoted texts ("red" "blue"): arithmetic missing its operator
            raise
        return [TextTerm(keywords.text, position=0)]
