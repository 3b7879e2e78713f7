"""Sidebar filter widgets, turned into the client's ``Filters``.

Every widget starts open (nothing restricted). The lists of sources, categories and brands
suggest the values seen in results so far, and a user may type any other value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import streamlit as st

from ui import format as fmt
from ui.client import Filters, Hit

KINDS = ("image", "frame", "segment", "product")
FACETS_KEY = "filters.seen"


def kind_filter(key: str, default: Sequence[str] = (), options: Sequence[str] = KINDS) -> tuple[str, ...]:
    chosen = st.multiselect(
        "Kind",
        list(options),
        default=list(default),
        key=f"{key}.kind",
        format_func=fmt.kind_label,
        placeholder="All kinds",
    )
    return tuple(chosen)


def value_filter(label: str, key: str, options: Sequence[str]) -> tuple[str, ...]:
    """A multiselect of known values that also accepts new ones (facets may be partial)."""
    chosen = st.multiselect(label, list(options), key=key, accept_new_options=True, placeholder=f"Any {label.lower()}")
    return tuple(str(v) for v in chosen)


def date_filter(key: str) -> tuple[float | None, float | None]:
    """Taken between two days (inclusive), as unix seconds; open until the user turns it on."""
    if not st.toggle("Limit by date taken", key=f"{key}.date_on"):
        return None, None
    today = dt.date.today()
    chosen = st.date_input("Taken between", value=(today.replace(year=today.year - 1), today), key=f"{key}.dates")
    days = tuple(chosen) if isinstance(chosen, (tuple, list)) else (chosen,)
    if not days or days[0] is None:
        return None, None
    start = days[0]
    end = days[1] if len(days) > 1 and days[1] is not None else start
    return _day_start(start), _day_start(end) + 86400 - 1e-3


def price_filter(key: str) -> tuple[float | None, float | None]:
    left, right = st.columns(2)
    low = left.number_input("Min price", min_value=0.0, value=None, step=1.0, key=f"{key}.min_price", placeholder="any")
    high = right.number_input("Max price", min_value=0.0, value=None, step=1.0, key=f"{key}.max_price", placeholder="any")
    return low, high


def remember(hits: Sequence[Hit]) -> None:
    """Collect the sources, categories and brands seen in results, as filter suggestions."""
    seen: dict[str, set[str]] = st.session_state.setdefault(FACETS_KEY, {})
    for hit in hits:
        values = {"source": hit.source}
        if hit.product is not None:
            values.update(category=hit.product.category, brand=hit.product.brand)
        for name, value in values.items():
            if value:
                seen.setdefault(name, set()).add(str(value))


def known(name: str) -> list[str]:
    return sorted(st.session_state.get(FACETS_KEY, {}).get(name, ()))


def search_filters(key: str) -> Filters:
    """The full set for the Search page: kind, source, date, category, brand, price."""
    kinds = kind_filter(key)
    sources = value_filter("Source", f"{key}.source", known("source"))
    taken_after, taken_before = date_filter(key)
    with st.expander("Products", expanded=False):
        categories = value_filter("Category", f"{key}.category", known("category"))
        brands = value_filter("Brand", f"{key}.brand", known("brand"))
        min_price, max_price = price_filter(key)
    return Filters(
        kinds=kinds,
        sources=sources,
        taken_after=taken_after,
        taken_before=taken_before,
        categories=categories,
        brands=brands,
        min_price=min_price,
        max_price=max_price,
    )


def product_filters(key: str) -> Filters:
    """Catalogue filters: category, brand, price; the kind is always product."""
    categories = value_filter("Category", f"{key}.category", known("category"))
    brands = value_filter("Brand", f"{key}.brand", known("brand"))
    min_price, max_price = price_filter(key)
    return Filters(kinds=("product",), categories=categories, brands=brands, min_price=min_price, max_price=max_price)


def _day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()
