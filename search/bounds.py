"""Hard limits of a query, defined once: the API schema, the engine's checks and the settings read them.

These are ceilings a request can never pass, whatever the configuration; configured values
(``search.max_limit``, ``search.default_limit``) live in the settings and must stay inside them.
"""

from __future__ import annotations

MAX_K = 64  # frames averaged by top-k pooling
DEFAULT_PER_VIDEO = 3  # moments kept per video
MAX_PER_VIDEO = 50
MAX_LIMIT = 1000  # results on one page; the configured ceiling is search.max_limit
MAX_OFFSET = 10_000  # deeper pages cost linearly in Qdrant; nobody scrolls that far in a UI
MAX_ABS_WEIGHT = 100.0  # |weight| of one query term
MAX_QUERY_CHARS = 2000  # the compact arithmetic syntax
MAX_TERMS = 16
MAX_EXAMPLES = 32  # positive plus negative example ids

# Integer payload values the stores hold: a filter past these cannot match and overflows the store.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
