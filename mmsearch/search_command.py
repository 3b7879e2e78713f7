"""``mmsearch search``: run one query against the local index and print the results.

The query is the compact arithmetic syntax the API's ``query`` field takes (plain words are a
text query), so ``mmsearch search 'red car - "night"'`` and the API answer the same way. Unlike
the API, the command line may read local files: ``--image FILE`` and ``file:PATH`` terms.
``--json`` prints the API's response document, so scripts can switch between the two freely.
Errors are raised, not printed: ``mmsearch.cli`` shows them (exit code 2) with the same message
the API gives; a syntax error additionally gets a caret under the offending character.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mmsearch.output import EXIT_OK, emit_json, say
from search.errors import BadQuery
from search.query import FileTerm, Term, parse_query
from search.services import Services
from search.settings import Settings

if TYPE_CHECKING:
    from search.engine import SearchRequest


def run_search_command(args: argparse.Namespace, settings: Settings) -> int:
    """Search, print, return the exit code; MMSearchError propagates to the CLI."""
    from search import engine
    from search.api.convert import search_out

    request = build_request(args)
    services = Services(settings)
    try:
        _ = services.embedder, services.store  # opened first, so the timing shown is the query's own
        results = engine.search(services, request)
    finally:
        services.close()
    document = search_out(results).model_dump(mode="json")
    if getattr(args, "json", False):
        emit_json(document)
    else:
        print_results(document)
    return EXIT_OK


def build_request(args: argparse.Namespace) -> SearchRequest:
    """The core request for the command's arguments; BadQuery for an unusable query."""
    from search.engine import FilterSpec, SearchRequest

    terms = query_terms(getattr(args, "text", None), getattr(args, "image", None))
    filters = FilterSpec(kinds=tuple(getattr(args, "kind", None) or ()), path_prefix=getattr(args, "folder", None))
    return SearchRequest(
        terms=tuple(terms),
        target=getattr(args, "target", "images"),
        pooling=getattr(args, "pooling", "topk"),
        limit=getattr(args, "limit", None),
        offset=getattr(args, "offset", 0) or 0,
        explain=bool(getattr(args, "explain", False)),
        filters=filters,
        allow_files=True,
    )


def query_terms(text: str | None, image: str | None) -> list[Term]:
    """``--image`` is the first term (weight 1); the text query adds to it."""
    terms: list[Term] = [FileTerm(image)] if image else []
    if text is not None and text.strip():
        try:
            terms += parse_query(text)  # a leading sign is allowed: --image x.jpg '- "red"'
        except BadQuery as exc:
            show_position(text, exc.position)
            raise
    if not terms:
        raise BadQuery("Give a query (text or arithmetic) or --image FILE.")
    return terms


def show_position(query: str, position: int | None) -> None:
    """Point at a syntax error under the query, on stderr (the message itself comes after)."""
    if position is None or position > len(query):
        return
    print(f"  {query}\n  {' ' * position}^", file=sys.stderr)


# --- human output --------------------------------------------------------------------------------


def print_results(document: dict[str, Any]) -> None:
    results = document["results"]
    say(f"{document['target']} for {query_text(document['terms'])} ({document['timings']['total_ms']:.0f} ms)")
    if not results:
        say("no results")
        return
    for rank, result in enumerate(results, start=document["offset"] + 1):
        say(f"{rank:>3}. {result['score']:.3f}  {describe(result)}")
        for part in result.get("contributions") or ():
            say(f"          {part['contribution']:+.3f}  {part['term']} (x{part['weight']:g})")
    if document.get("next_offset") is not None:
        say(f"more: --offset {document['next_offset']}")


def query_text(terms: list[dict[str, Any]]) -> str:
    """The query as it was understood, in the compact syntax: "beach" + id:42 - 0.5*"people"."""
    parts = []
    for i, term in enumerate(terms):
        weight = float(term["weight"])
        body = term["label"] if abs(weight) == 1 else f"{abs(weight):g}*{term['label']}"
        sign = "-" if weight < 0 else "+"
        parts.append((body if sign == "+" else f"-{body}") if i == 0 else f"{sign} {body}")
    return " ".join(parts)


def describe(result: dict[str, Any]) -> str:
    """One line: what the result is and where to find it."""
    where = result.get("path") or result.get("uri") or result["media_id"]
    moment = result.get("moment")
    if moment:
        return f"{where}  [{_clock(moment['start'])}-{_clock(moment['end'])}]"
    if result["kind"] == "video":
        spans = ", ".join(f"{_clock(m['start'])}-{_clock(m['end'])}" for m in result.get("moments", [])[:3])
        return f"{where}  video{f' ({spans})' if spans else ''}"
    product = result.get("product")
    if product and product.get("title"):
        price = f"  {product['price']:.2f}" if product.get("price") is not None else ""
        extra = f"  (+{len(result['duplicates'])} similar)" if result.get("duplicates") else ""
        return f"{product['title']}{price}  {where}{extra}"
    if result["kind"] == "frame" and result.get("t") is not None:
        return f"{where}  @{_clock(result['t'])}"
    return str(where)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"
