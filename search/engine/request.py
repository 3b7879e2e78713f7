"""What a search asks for, in core types: the API, the CLI and the bench all build one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from search import bounds
from search.engine.facets import check_facets
from search.errors import BadQuery
from search.filters import FilterSpec
from search.query import FileTerm, IdTerm, Term, TextTerm

Target = Literal["images", "moments", "videos"]
Pooling = Literal["topk", "mean"]
TARGETS: tuple[str, ...] = ("images", "moments", "videos")
POOLINGS: tuple[str, ...] = ("topk", "mean")
SIGNALS: tuple[str, ...] = ("visual", "speech", "both")  # what moments are found by (search.moments)
Mode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "vector", "keyword")
MAX_OFFSET = bounds.MAX_OFFSET
MAX_EXAMPLES = bounds.MAX_EXAMPLES
SORT_FIELDS: tuple[str, ...] = ("taken_at", "price", "name", "size_bytes")  # payload fields results can be sorted by


def sort_key(sort: str) -> str:
    """The field a sort option names ("-taken_at" sorts by taken_at, newest first)."""
    return sort[1:] if sort.startswith("-") else sort


@dataclass(frozen=True)
class SearchRequest:
    """One search: a query (weighted terms, or example ids) plus how to shape the results.

    Exactly one way of asking is used: ``terms`` (text, images, urls, ids, files; one term is a
    plain text or image query) or ``positive``/``negative`` example ids (Qdrant's recommend).
    ``None`` options fall back to the settings (``limit``, ``k``, ``dedup_threshold``) or to a
    rule (``dedup`` is on when the results are products).
    """

    terms: tuple[Term, ...] = ()
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    target: Target = "images"
    pooling: Pooling = "topk"
    k: int | None = None  # top-k frames per window (topk pooling)
    filters: FilterSpec = field(default_factory=FilterSpec)
    limit: int | None = None
    offset: int = 0
    score_threshold: float | None = None
    dedup: bool | None = None
    dedup_threshold: float | None = None
    explain: bool = False
    ensemble: bool | None = None  # prompt ensembling for text terms; None: the settings' choice
    per_video: int = bounds.DEFAULT_PER_VIDEO  # moments kept per video
    signal: str | None = None  # moments by visual, speech or both; None: the settings' choice
    exclude_media: tuple[str, ...] = ()  # media never returned (``similar`` hides its source)
    allow_files: bool = False  # file: terms read the local disk: the CLI only
    group: bool | None = None  # one result per product (variants listed); None: on when every hit is a product
    sort: str | None = None  # after the cutoff (score_threshold): a SORT_FIELDS name, "-name" for descending
    diverse: bool = False  # MMR: trade some relevance for variety, so near-identical shots do not fill a page
    facets: tuple[str, ...] = ()  # fields whose value counts among the filtered candidates come back too
    like: tuple[str, ...] = ()  # feedback: results marked liked refine the query (search.engine.feedback)
    dislike: tuple[str, ...] = ()  # … and results marked disliked
    mode: Mode | None = None  # text queries: hybrid, vector or keyword; None: the settings' choice
    keywords: bool = False  # arithmetic queries: their text terms count as keywords too
    query_text: str | None = None  # the query as typed, "quoted phrases" included (keyword syntax)

    def validate(self, max_limit: int) -> None:
        """Refuse requests that cannot run, with a message for the user (BadQuery)."""
        if (self.terms and self.positive) or not (self.terms or self.positive or self.like):
            raise BadQuery("Give either query terms (text, image, url or id) or positive example ids, not both or neither.")
        if self.negative and not self.positive:
            raise BadQuery("Negative examples need at least one positive example.")
        if len(self.positive) + len(self.negative) > MAX_EXAMPLES:
            raise BadQuery(f"At most {MAX_EXAMPLES} example ids may be given.")
        if len(self.like) + len(self.dislike) > MAX_EXAMPLES:
            raise BadQuery(f"At most {MAX_EXAMPLES} liked and disliked ids may be given.")
        if self.dislike and not (self.terms or self.positive or self.like):
            raise BadQuery("Disliked results need a query or a liked result to refine.")
        if self.target not in TARGETS:
            raise BadQuery(f"Unknown target {self.target!r}; use one of: {', '.join(TARGETS)}.")
        if self.mode is not None and self.mode not in MODES:
            raise BadQuery(f"Unknown mode {self.mode!r}; use one of: {', '.join(MODES)}.")
        if self.pooling not in POOLINGS:
            raise BadQuery(f"Unknown pooling {self.pooling!r}; use topk or mean.")
        if self.limit is not None and not 1 <= self.limit <= max_limit:
            raise BadQuery(f"limit must be between 1 and {max_limit}, got {self.limit}.")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise BadQuery(f"offset must be between 0 and {MAX_OFFSET}, got {self.offset}.")
        if self.k is not None and not 1 <= self.k <= bounds.MAX_K:
            raise BadQuery(f"k must be between 1 and {bounds.MAX_K}, got {self.k}.")
        if self.signal is not None and self.signal not in SIGNALS:
            raise BadQuery(f"Unknown signal {self.signal!r}; use one of: {', '.join(SIGNALS)}.")
        if not 1 <= self.per_video <= bounds.MAX_PER_VIDEO:
            raise BadQuery(f"per_video must be between 1 and {bounds.MAX_PER_VIDEO}, got {self.per_video}.")
        if self.dedup_threshold is not None and not 0 < self.dedup_threshold <= 1:
            raise BadQuery(f"dedup_threshold must be in (0, 1], got {self.dedup_threshold}.")
        if self.sort is not None and sort_key(self.sort) not in SORT_FIELDS:
            allowed = ", ".join(SORT_FIELDS)
            raise BadQuery(f"Unknown sort field {self.sort!r}; sort by one of: {allowed} (prefix - for descending).")
        check_facets(self.facets)
        if not self.allow_files:
            for term in self.terms:
                if isinstance(term, FileTerm):
                    at = term.position if term.position is not None else 0
                    raise BadQuery(
                        f"file: terms read local files and work only in the command line; "
                        f"upload the image instead (at position {at})",
                        term.position,
                    )

    @property
    def query_type(self) -> str:
        """A coarse label for metrics and logs: text, image, id, arithmetic or examples."""
        if self.positive:
            return "examples"
        if len(self.terms) == 1 and self.terms[0].weight == 1.0:
            term = self.terms[0]
            return "text" if isinstance(term, TextTerm) else "id" if isinstance(term, IdTerm) else "image"
        return "arithmetic"
