"""The Products page: find products by words or by a photo, then their closest look-alikes.

Results are restricted to product points (kind ``product``), one card per product (its best
matching photo, its other photos as variants), and near-identical photos of different products
collapse by default, because a catalogue shows the same item in several photos and listings.
Category and brand counts of the query's candidates are filter buttons; results can be sorted
(after the minimum score) and diversified.
"""

from __future__ import annotations

import streamlit as st

from ui import components, filters, query_state
from ui.client import ApiClient, ApiError, Filters, Hit, SearchOptions, SearchPage
from ui.components import CardAction
from ui.pages_search import UPLOAD_TYPES

CHOSEN_KEY = "products.chosen"
LIMIT = 24
FACETS = ("category", "brand")  # counted for the query, shown as filter buttons
SORTS = {"Relevance": None, "Price: low to high": "price", "Price: high to low": "-price", "Name": "name"}


def render() -> None:
    api = components.client()
    with st.sidebar:
        st.header("Catalogue filters", anchor=False)
        chosen_filters = filters.product_filters("products.f")
        dedup = st.toggle(
            "Collapse duplicates",
            value=True,
            key="products.dedup",
            help="Show one listing per group of near-identical product photos.",
        )
        group = st.toggle(
            "Group by product", value=True, key="products.group", help="One card per product, its other photos as variants."
        )
        sort = SORTS[st.selectbox("Sort by", list(SORTS), key="products.sort")]
        threshold = st.slider("Minimum score", 0.0, 1.0, 0.0, 0.01, key="products.threshold", help="Relevance cutoff.")
        diverse = st.toggle("Diverse results", value=False, key="products.diverse", help="Fewer look-alikes on one page (MMR).")
    st.title("Products", anchor=False)
    st.caption("Search the product catalogue by description or by a photo, then explore similar products.")
    query, image = _inputs()
    chosen: Hit | None = st.session_state.get(CHOSEN_KEY)
    if chosen is not None:
        _similar(api, chosen)
    if not query and image is None:
        if chosen is None:
            components.empty_state(
                "Search the catalogue",
                "Describe a product (`red heart`), or drop a photo of one. Filter by category, brand and price in the sidebar.",
                icon=":material/shopping_bag:",
            )
        return
    options = SearchOptions(
        limit=LIMIT,
        dedup=dedup,
        group=group,
        sort=sort,
        score_threshold=threshold or None,
        diverse=diverse,
        facets=FACETS if image is None else (),
        filters=chosen_filters,
    )
    page = _search(api, query, image, options)
    if page is None:
        return
    if not page.hits:
        components.empty_state(
            "No products found",
            "Nothing in the catalogue matched; loosen the filters or try other words.",
            icon=":material/search_off:",
        )
        return
    filters.remember(page.hits)
    collapsed = f" · {page.collapsed} duplicates collapsed" if page.collapsed else ""
    order = f" · sorted by {sort.lstrip('-').replace('_', ' ')}" if sort else ""
    st.markdown(f"**{len(page.hits)}** products{collapsed}{order}")
    components.facet_bar(page.facets, {name: f"products.f.{name}" for name in FACETS}, key="products")
    action = CardAction("Similar products", ":material/auto_awesome:", "Show products like this one", _choose)
    components.result_grid(page.hits, [action], key="products", highlight=components.query_words(query))


def _inputs() -> tuple[str, tuple[str, bytes] | None]:
    text_col, image_col = st.columns([3, 2], vertical_alignment="top")
    query = text_col.text_input(
        "Describe the product", key="products.query", placeholder="a large blue star", icon=":material/search:"
    )
    uploaded = image_col.file_uploader("…or drop a photo", type=UPLOAD_TYPES, key="products.upload")
    image = (uploaded.name, uploaded.getvalue()) if uploaded is not None else None
    return (query or "").strip(), image


def _search(api: ApiClient, query: str, image: tuple[str, bytes] | None, options: SearchOptions) -> SearchPage | None:
    literal = not query_state.looks_like_arithmetic(query)
    try:
        with st.spinner("Searching the catalogue…"):
            if image is not None:
                extra = query_state.quoted(query) if query and literal else query
                return api.search_image(image[1], image[0], options, query=extra or None)
            return api.search(query, options, literal=literal)
    except ApiError as error:
        components.show_error(error)
        return None


def _similar(api: ApiClient, chosen: Hit) -> None:
    """The neighbours of the chosen product, optionally within its category."""
    with st.container(border=True, key="similar"):
        with st.container(horizontal=True, vertical_alignment="center"):
            if chosen.thumbnail_url:
                st.image(chosen.thumbnail_url, width=64)
            st.markdown(f"#### Similar to {chosen.title}")
            same = st.toggle("Same category only", value=True, key="products.same_category")
            st.button("Close", icon=":material/close:", key="products.close", on_click=_close)
        options = SearchOptions(limit=12, filters=Filters(kinds=("product",)))
        page = components.attempt(lambda: api.similar(chosen.id, options, same_category=same), "Similar products")
        if page is None:
            return
        if not page.hits:
            st.caption("No other product is close to this one.")
            return
        action = CardAction("Similar products", ":material/auto_awesome:", "Show products like this one", _choose)
        components.result_grid(page.hits, [action], key="similar_grid")


def _choose(hit: Hit) -> None:
    st.session_state[CHOSEN_KEY] = hit


def _close() -> None:
    st.session_state.pop(CHOSEN_KEY, None)


if __name__ == "__main__":
    render()
