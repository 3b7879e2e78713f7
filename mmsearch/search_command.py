"""``mmsearch search``: run one query against the local index and print the results.

The query is the compact arithmetic syntax the API's ``query`` field takes (plain words are a
text query, ranked by visual similarity and keywords together unless ``--mode`` says
``vector`` or ``keyword``; "quoted phrases" in plain words rank their matches first), so ``mmsearch search 'red car - "night"'`` and the API answer the same way. Unlike
the API, the command line may read local files: ``--image FILE`` and ``file:PATH`` terms.
``--json`` prints the API's response document, so scripts can switch between the two freely.
Errors are raised, not printed: ``mmsearch.cli`` shows them (exit code 2) with the same message
the API gives; a syntax error additionally gets a caret under the offending character.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.output import EXIT_OK, emit_json, say
from mmsearch.remote import find_server
from search.errors import BadQuery, MediaError
from search.query import FileTerm, IdTerm, Term, TextTerm, UrlTerm, parse_search
from search.services import Services
from search.settings import Settings

if TYPE_CHECKING:
    from search.engine import SearchRequest


def run_search_command(args: argparse.Namespace, settings: Settings) -> int:
    """Search, print, return the exit code; MMSearchError propagates to the CLI."""
    from search import engine
    from search.api.convert import search_out

    request = build_request(args)
    server = find_server(settings)
    if server is not None:  # a running server owns the store: ask it (same answer, no model load here)
        document = server.post("/search", request_body(request))
    else:
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

    text = getattr(args, "text", None)
    terms = query_terms(text, getattr(args, "image", None))
    filters = FilterSpec(kinds=tuple(getattr(args, "kind", None) or ()), path_prefix=getattr(args, "folder", None))
    return SearchRequest(
        terms=tuple(terms),
        target=getattr(args, "target", "images"),
        pooling=getattr(args, "pooling", "topk"),
        limit=getattr(args, "limit", None),
        offset=getattr(args, "offset", 0) or 0,
        explain=bool(getattr(args, "explain", False)),
        mode=getattr(args, "mode", None),
        keywords=bool(getattr(args, "keywords", False)),
        query_text=text if text is not None and not getattr(args, "image", None) else None,
        filters=filters,
        allow_files=True,
        sort=getattr(args, "sort", None),
        score_threshold=getattr(args, "cutoff", None),
        diverse=bool(getattr(args, "diverse", False)),
        like=tuple(getattr(args, "like", None) or ()),
        dislike=tuple(getattr(args, "dislike", None) or ()),
        group=getattr(args, "group", None),
        facets=tuple(getattr(args, "facet", None) or ()),
    )


def request_body(request: SearchRequest) -> dict[str, Any]:
    """The API's JSON body for ``request``; local files (``--image``, ``file:`` terms) are read
    here and sent as images, since the server may not see this machine's files."""
    body: dict[str, Any] = {
        "target": request.target,
        "pooling": request.pooling,
        "limit": request.limit,
        "offset": request.offset,
        "explain": request.explain,
        "mode": request.mode,
        "keywords": request.keywords,
        "score_threshold": request.score_threshold,
        "sort": request.sort,
        "diverse": request.diverse,
        "group": request.group,
        "facets": list(request.facets),
        "like": list(request.like),
        "dislike": list(request.dislike),
        "filters": {"kinds": list(request.filters.kinds), "path_prefix": request.filters.path_prefix},
    }
    if request.query_text is not None and not any(isinstance(t, FileTerm) for t in request.terms):
        body["query"] = request.query_text  # parsed by the server exactly as here ("quoted phrases" included)
    else:
        body["terms"] = [_term_body(t) for t in request.terms]
    return {key: value for key, value in body.items() if value is not None}


def _term_body(term: Term) -> dict[str, Any]:
    if isinstance(term, FileTerm):
        try:
            data = Path(term.path).expanduser().read_bytes()
        except OSError as exc:
            raise MediaError(f"Cannot read the query image {term.path}: {exc.strerror or exc}.") from exc
        return {"image": base64.b64encode(data).decode("ascii"), "weight": term.weight}
    if isinstance(term, TextTerm):
        return {"text": term.text, "weight": term.weight}
    if isinstance(term, IdTerm):
        return {"id": term.id, "weight": term.weight}
    if isinstance(term, UrlTerm):
        return {"url": term.url, "weight": term.weight}
    raise BadQuery(f"This query term cannot be sent to the server: {term.label}.")


def query_terms(text: str | None, image: str | None) -> list[Term]:
    """``--image`` is the first term (weight 1); the text query adds to it."""
    terms: list[Term] = [FileTerm(image)] if image else []
    if text is not None and text.strip():
        try:
            terms += parse_search(text)  # a leading sign is allowed: --image x.jpg '- "red"'
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
    for name, counts in (document.get("facets") or {}).items():
        say(f"{name}: " + ", ".join(f"{c['value']} ({c['count']})" for c in counts))
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
        extra += f"  (+{len(result['variants'])} photos)" if result.get("variants") else ""
        return f"{product['title']}{price}  {where}{extra}"
    if result["kind"] == "frame" and result.get("t") is not None:
        return f"{where}  @{_clock(result['t'])}"
    return str(where)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"
