"""The Search page: text or arithmetic queries, image upload, a term builder, filters, results.

Streamlit runs this file as the page script (``render()`` at the bottom). Every run rebuilds
the query from the text box, the uploaded image and the builder's terms, and asks the API
again only when that query changed or the user pressed Search.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st

from ui import components, filters, query_state
from ui import format as fmt
from ui.client import ApiClient, ApiError, Hit, SearchOptions, SearchPage
from ui.components import CardAction
from ui.query_state import BuilderTerm

PER_PAGE = (12, 24, 48, 96)
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
SUBTRACT_WEIGHT = -0.5
EXAMPLES = ("red circle", '"blue square" + "yellow" - "blue"', "a large green star")
LAST_KEY = "search.last"
MODES = {"Hybrid": "hybrid", "Visual": "vector", "Keywords": "keyword"}  # label → the API's mode
SORTS = {
    "Relevance": None,
    "Newest first": "-taken_at",
    "Oldest first": "taken_at",
    "File name": "name",
    "Largest": "-size_bytes",
}
FACETS = ("kind", "source", "category", "brand")  # counted for each query, shown as filter buttons
FACET_WIDGETS = {name: f"search.f.{name}" for name in FACETS}  # the sidebar filter each facet sets

SYNTAX_HELP = """
**Plain words** search by meaning: `a red circle`, `beach at sunset`.

**Arithmetic** mixes weighted terms with `+` and `-`:

| term | meaning |
|---|---|
| `"red car"` | text (quotes needed next to operators) |
| `id:3f2a…` | an indexed item (the :material/add_circle: / :material/do_not_disturb_on: buttons on a result add these) |
| `url:https://…/cat.jpg` | an image on the web |
| `0.5*"people"` or `"people"*0.5` | a weight |

Example: `"beach" + id:42 - 0.5*"people"` — that beach photo, without the people.
Each term is normalised, weighted, summed and renormalised; *Explain scores* in the
sidebar shows each term's share of every result's score.

**Feedback**: :material/thumb_up: / :material/thumb_down: on a result marks it liked or
disliked, and the query is refined by the marked examples.
"""


@dataclass(frozen=True)
class Upload:
    """The dropped query image and its weight."""

    name: str
    data: bytes
    weight: float


@dataclass(frozen=True)
class Query:
    """What one run searches for: the composed string (or literal text) and the image."""

    text: str
    literal: bool
    upload: Upload | None

    def is_empty(self) -> bool:
        return not self.text and self.upload is None


def render() -> None:
    api = components.client()
    with st.sidebar:
        options = _sidebar()
    st.title("Search", anchor=False)
    st.caption("Find photos, video frames and products by describing them, by example, or with query arithmetic.")
    box, error_slot, refresh = _query_box()
    upload = _image_upload()
    _term_builder()
    similar = query_state.similar_to(st.session_state)
    if similar is not None:
        _similar_results(api, similar, options)
        return
    text, literal = query_state.compose(box, query_state.terms(st.session_state))
    query = Query(text, literal, upload)
    if query.is_empty():
        _welcome()
        return
    page = _cached_search(api, query, options, refresh, error_slot)
    if page is not None:
        _results(page, options)


# --- inputs ------------------------------------------------------------------------------------


def _query_box() -> tuple[str, st.delta_generator.DeltaGenerator, bool]:
    """The one box for text or arithmetic; the slot below it shows the parser's complaint."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        box = st.text_input(
            "Query",
            key=query_state.QUERY_KEY,
            placeholder='red circle   ·   "beach" + id:42 - 0.5*"people"',
            label_visibility="collapsed",
            icon=":material/search:",
            on_change=query_state.reset_page,
            args=(st.session_state,),
        )
        refresh = st.button("Search", type="primary", key="search.go")
        with st.popover("Syntax", icon=":material/help:"):
            st.markdown(SYNTAX_HELP)
    return box or "", st.empty(), refresh


def _image_upload() -> Upload | None:
    """Drag and drop an image: it joins the query as a term with its own weight."""
    with st.expander("Search by image", icon=":material/image:", expanded=False):
        left, right = st.columns([3, 1], vertical_alignment="center")
        uploaded = left.file_uploader(
            "Drop an image here",
            type=UPLOAD_TYPES,
            key="search.upload",
            on_change=query_state.reset_page,
            args=(st.session_state,),
        )
        if uploaded is None:
            right.caption("The image is combined with the text box and the terms below, if any.")
            return None
        data = uploaded.getvalue()
        right.image(data, width=120)
        weight = right.number_input(
            "Image weight", value=1.0, step=0.25, min_value=-10.0, max_value=10.0, key="search.upload_weight"
        )
    return Upload(uploaded.name, data, float(weight))


def _term_builder() -> None:
    """Terms added beside the text box, each with a weight; negative weights subtract."""
    state = st.session_state
    current = query_state.terms(state)
    title = f"Combine terms ({len(current)})" if current else "Combine terms"
    with st.expander(title, icon=":material/functions:", expanded=bool(current)):
        for index, term in enumerate(current):
            _term_row(index, term)
        _add_term_form()
        if current:
            st.button("Clear terms", icon=":material/delete_sweep:", key="terms.clear", on_click=query_state.clear, args=(state,))


def _term_row(index: int, term: BuilderTerm) -> None:
    identity = hashlib.sha1(f"{term.kind}:{term.value}".encode()).hexdigest()[:10]
    thumb, label, weight, remove = st.columns([1, 7, 2, 1], vertical_alignment="center")
    if term.thumbnail_url:
        thumb.image(term.thumbnail_url, width=48)
    else:
        thumb.markdown({"text": ":material/text_fields:", "url": ":material/link:"}.get(term.kind, ":material/tag:"))
    sign = ":green[**+**]" if term.weight >= 0 else ":red[**−**]"
    label.markdown(f"{sign} {term.kind} · {term.label or term.value}")
    key = f"terms.w.{identity}"
    weight.number_input(
        "Weight",
        value=float(term.weight),
        step=0.25,
        min_value=-10.0,
        max_value=10.0,
        key=key,
        label_visibility="collapsed",
        on_change=_weight_changed,
        args=(index, key),
    )
    remove.button(
        "",
        icon=":material/close:",
        key=f"terms.rm.{identity}",
        help="Remove this term",
        on_click=query_state.remove_term,
        args=(st.session_state, index),
    )


def _weight_changed(index: int, key: str) -> None:
    query_state.set_weight(st.session_state, index, float(st.session_state[key]))


def _add_term_form() -> None:
    with st.form("terms.add", clear_on_submit=True, border=False):
        kind_col, value_col, sign_col, weight_col, add_col = st.columns([2, 5, 2, 2, 2], vertical_alignment="bottom")
        kind = kind_col.selectbox(
            "Term", ["text", "id", "url"], format_func={"text": "Text", "id": "Item id", "url": "Image URL"}.get, key="terms.kind"
        )
        value = value_col.text_input("Value", key="terms.value", placeholder="e.g. night, an item id, or https://…")
        sign = sign_col.segmented_control("Sign", ["+", "−"], default="+", key="terms.sign")
        weight = weight_col.number_input("Weight", value=1.0, min_value=0.0, max_value=10.0, step=0.25, key="terms.weight")
        submitted = add_col.form_submit_button("Add term", icon=":material/add:")
    if submitted and value and value.strip():
        signed = float(weight) * (-1.0 if sign == "−" else 1.0)
        query_state.add_term(st.session_state, BuilderTerm(kind, value.strip(), weight=signed, label=value.strip()))
        st.rerun()


def _sidebar() -> SearchOptions:
    st.header("Filters", anchor=False)
    chosen = filters.search_filters("search.f")
    st.header("Results", anchor=False)
    per_page = int(st.selectbox("Per page", PER_PAGE, index=1, key="search.per_page"))
    threshold = st.slider(
        "Minimum score", 0.0, 1.0, 0.0, 0.01, key="search.threshold", help="Hide results scoring below this cosine similarity."
    )
    mode = st.segmented_control(
        "Ranking",
        list(MODES),
        default="Hybrid",
        key="search.mode",
        help="Hybrid fuses visual similarity with keyword matches (file names, titles); or either alone.",
    )
    sort = SORTS[st.selectbox("Sort by", list(SORTS), key="search.sort", help="Applied after the minimum score.")]
    dedup = st.toggle("Collapse near-duplicates", value=False, key="search.dedup")
    diverse = st.toggle(
        "Diverse results", value=False, key="search.diverse", help="Fewer near-identical shots on one page (MMR)."
    )
    explain = st.toggle(
        "Explain scores", value=False, key="search.explain", help="Show each query term's share of a result's score."
    )
    offset = query_state.page(st.session_state) * per_page
    marks = query_state.feedback(st.session_state)
    return SearchOptions(
        limit=per_page,
        offset=offset,
        score_threshold=threshold or None,
        dedup=dedup,
        explain=explain,
        filters=chosen,
        mode=MODES.get(mode or "Hybrid"),
        sort=sort,
        diverse=diverse,
        facets=FACETS,
        like=tuple(i for i, (liked, _) in marks.items() if liked),
        dislike=tuple(i for i, (liked, _) in marks.items() if not liked),
    )


# --- searching -------------------------------------------------------------------------------------


def _cached_search(api: ApiClient, query: Query, options: SearchOptions, refresh: bool, error_slot) -> SearchPage | None:
    """Ask the API when the query changed (or on Search); a bad query is shown under the box."""
    digest = hashlib.sha1(repr((query.text, query.literal, options)).encode())
    if query.upload is not None:
        digest.update(query.upload.data + repr(query.upload.weight).encode())
    key = digest.hexdigest()
    cached = st.session_state.get(LAST_KEY)
    if cached is not None and cached[0] == key and not refresh:
        return cached[1]
    try:
        with st.spinner("Searching…"):
            page = _search(api, query, options)
    except ApiError as error:
        _show_query_error(error, error_slot, query)
        return None
    st.session_state[LAST_KEY] = (key, page)
    return page


def _search(api: ApiClient, query: Query, options: SearchOptions) -> SearchPage:
    if query.upload is None:
        return api.search(query.text, options, literal=query.literal)
    extra = query_state.quoted(query.text) if query.literal else query.text
    return api.search_image(query.upload.data, query.upload.name, options, query=extra or None, image_weight=query.upload.weight)


def _show_query_error(error: ApiError, slot, query: Query) -> None:
    """A syntax error points at its position in the query; anything else is one message."""
    with slot.container():
        components.show_error(error)
        pointer = fmt.caret(query.text, error.position) if error.kind == "bad_query" and not query.literal else None
        if pointer:
            st.code(pointer, language=None)


# --- showing results -----------------------------------------------------------------------------


def _card_actions() -> list[CardAction]:
    state = st.session_state
    return [
        CardAction(
            "Similar", ":material/auto_awesome:", "More like this", lambda hit: query_state.show_similar(state, hit.id, hit.title)
        ),
        CardAction("", ":material/add_circle:", "Use as query: add this item to the query", lambda hit: _add_item(hit, 1.0)),
        CardAction(
            "",
            ":material/do_not_disturb_on:",
            f"Subtract from query (weight {SUBTRACT_WEIGHT:g})",
            lambda hit: _add_item(hit, SUBTRACT_WEIGHT),
        ),
        CardAction("", ":material/thumb_up:", "More like this: refine the query", lambda hit: _mark(hit, True)),
        CardAction("", ":material/thumb_down:", "Less like this: refine the query", lambda hit: _mark(hit, False)),
    ]


def _mark(hit: Hit, liked: bool) -> None:
    query_state.mark(st.session_state, hit.id, hit.title, liked)


def _feedback_bar() -> None:
    """The examples in play, so a user sees what refines the query and can drop them."""
    marks = query_state.feedback(st.session_state)
    if not marks:
        return
    with st.container(horizontal=True, vertical_alignment="center", key="feedback"):
        chips = [f"{':material/thumb_up:' if liked else ':material/thumb_down:'} {label}" for liked, label in marks.values()]
        st.markdown("Refined by " + " · ".join(chips))
        st.button(
            "Clear", icon=":material/close:", key="feedback.clear", on_click=query_state.clear_feedback, args=(st.session_state,)
        )


def _add_item(hit: Hit, weight: float) -> None:
    query_state.add_term(
        st.session_state, BuilderTerm("id", hit.id, weight=weight, label=hit.title, thumbnail_url=hit.thumbnail_url)
    )


def _results(page: SearchPage, options: SearchOptions) -> None:
    if not page.hits:
        _no_results(options)
        return
    filters.remember(page.hits)
    _summary(page, options)
    _feedback_bar()
    components.facet_bar(page.facets, FACET_WIDGETS, key="search")
    words = components.query_words(st.session_state.get(query_state.QUERY_KEY, ""))
    components.result_grid(page.hits, _card_actions(), key="results", first_rank=page.offset + 1, highlight=words)
    _pager(page)


def _summary(page: SearchPage, options: SearchOptions | None = None) -> None:
    first, last = page.offset + 1, page.offset + len(page.hits)
    parts = [f"Results **{first}–{last}**"]
    if page.collapsed:
        parts.append(f"{page.collapsed} near-duplicates collapsed")
    if options is not None and options.sort:
        parts.append(f"sorted by {next(k for k, v in SORTS.items() if v == options.sort).lower()}")
    if options is not None and options.diverse:
        parts.append("diversified")
    if page.took_ms is not None:
        parts.append(f"{page.took_ms:.0f} ms")
    if page.terms and (len(page.terms) > 1 or page.terms[0].kind != "text"):
        parts.append("query: " + " ".join(_term_chip(i, t.label, t.weight) for i, t in enumerate(page.terms)))
    st.markdown(" · ".join(parts))


def _term_chip(index: int, label: str, weight: float) -> str:
    sign = "−" if weight < 0 else ("+" if index else "")
    magnitude = f"{abs(weight):g}×" if abs(weight) != 1 else ""
    short = label if len(label) <= 24 else label[:23] + "…"
    return f"{sign} {magnitude}`{short}`".strip()


def _pager(page: SearchPage) -> None:
    state = st.session_state
    number = query_state.page(state)
    if number == 0 and not page.has_more:
        return
    with st.container(horizontal=True, horizontal_alignment="center", vertical_alignment="center"):
        st.button(
            "Previous",
            icon=":material/chevron_left:",
            key="search.prev",
            disabled=number == 0,
            on_click=query_state.set_page,
            args=(state, number - 1),
        )
        st.markdown(f"Page **{number + 1}**")
        st.button(
            "Next",
            icon=":material/chevron_right:",
            icon_position="right",
            key="search.next",
            disabled=not page.has_more,
            on_click=query_state.set_page,
            args=(state, number + 1),
        )


def _no_results(options: SearchOptions) -> None:
    hints = []
    if options.filters.to_json():
        hints.append("loosen the filters in the sidebar")
    if options.score_threshold:
        hints.append("lower the minimum score")
    hints.append("try other words, or check on the Status page that something is indexed")
    components.empty_state("No results", "Nothing matched. You could " + ", ".join(hints) + ".", icon=":material/search_off:")


def _similar_results(api: ApiClient, similar: query_state.SimilarTo, options: SearchOptions) -> None:
    with st.container(horizontal=True, vertical_alignment="center"):
        st.info(f"More like **{similar.label}**", icon=":material/auto_awesome:")
        st.button(
            "Back to query",
            icon=":material/arrow_back:",
            key="similar.back",
            on_click=query_state.leave_similar,
            args=(st.session_state,),
        )
    page = components.attempt(lambda: api.similar(similar.id, options), "More like this")
    if page is None:
        return
    if not page.hits:
        components.empty_state(
            "Nothing similar", "No other indexed item is close to this one within the filters.", icon=":material/search_off:"
        )
        return
    filters.remember(page.hits)
    _summary(page)
    components.result_grid(page.hits, _card_actions(), key="results", first_rank=page.offset + 1)
    _pager(page)


def _welcome() -> None:
    body = (
        "Type what you are looking for, drop an image, or combine both. Try "
        + ", ".join(f"`{e}`" for e in EXAMPLES)
        + ". The :material/add_circle: and :material/do_not_disturb_on: buttons on a result add it to or subtract it"
        + " from the query; :material/thumb_up: and :material/thumb_down: refine it by example."
    )
    components.empty_state("Search your archive", body)


if __name__ == "__main__":
    render()
