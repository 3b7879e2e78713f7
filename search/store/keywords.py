"""Keyword relevance: BM25 sparse vectors of each point's searchable words, computed here.

Both backends store the same sparse vector (named ``WORDS_VECTOR``, with the engine's IDF
modifier, so term rarity is counted at query time over the whole collection) and score it
the same way, because one tokenizer, Qdrant Edge's ``Bm25`` model, embeds documents and
queries for both: the server needs no inference service, and Edge and the server rank alike.
Documents are the payload's derived ``words`` field (``search.payload``); queries pass through
the same word splitting first (``searchable_words``), so "BL-1234" and "IMG_2023.jpg" match
the stored file names and SKUs however they were typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import qdrant_edge as qe

from search.payload import WORDS, searchable_words

_FILLER = frozenset(("an", "the", "and", "or", "of", "with", "in", "on", "at", "to", "for", "by", "from", "is", "are"))
WORDS_VECTOR = "words"  # the sparse vector's name in both backends' collection layouts
_MODEL = qe.Bm25(qe.Bm25Config(language="english"))  # stemmed, English stopwords dropped


@dataclass(frozen=True)
class Sparse:
    """A sparse vector in backend-neutral form."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class KeywordQuery:
    """What keyword relevance scores: ``text`` by BM25; the points holding a ``phrases``
    entry in order (a quoted phrase, ``"blue ring"``) rank first. With ``every_word``, only
    points holding every content word of ``text`` enter the keyword ranking: a visual query
    fused with keywords ("a red circle") then promotes the photos whose captions say all of
    it, not every photo that says "red" (bench/quality.py measured the difference)."""

    text: str
    phrases: tuple[str, ...] = ()
    every_word: bool = False

    def required_words(self) -> tuple[str, ...]:
        """The content words each keyword candidate must hold (``every_word``), lower-cased."""
        if not self.every_word:
            return ()
        words = searchable_words([self.text]).lower().split()
        return tuple(dict.fromkeys(w for w in words if len(w) > 1 and w not in _FILLER))

    def __bool__(self) -> bool:
        return bool(self.vector().indices) or bool(self.phrases)

    def vector(self) -> Sparse:
        return query_vector(" ".join((self.text, *self.phrases)))


def document_vector(payload: Mapping[str, Any]) -> Sparse | None:
    """The BM25 vector of a payload's searchable words; None when it has none."""
    words = payload.get(WORDS)
    if not isinstance(words, str) or not words:
        return None
    embedded = _MODEL.embed_document(words)
    return Sparse(list(embedded.indices), list(embedded.values)) if embedded.indices else None


def query_vector(text: str) -> Sparse:
    """The BM25 query vector of ``text`` (each distinct word weighs 1; IDF is the engine's)."""
    embedded = _MODEL.embed_query(searchable_words([text]))
    return Sparse(list(embedded.indices), list(embedded.values))


def phrase_words(phrase: str) -> str:
    """A quoted phrase as the words field holds it, for a phrase match."""
    return searchable_words([phrase])
