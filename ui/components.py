"""Widgets every page shares: the API client, error messages, result cards and the grid.

Pages decide *what* to show; this module decides how a result, an error or an empty page
looks, so the pages look alike and an API failure reads the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import streamlit as st

from ui import filters
from ui import format as fmt
from ui.client import ApiClient, ApiError, ApiTimeout, ApiUnavailable, Hit, api_url_from_env

T = TypeVar("T")

UNEXPECTED = "The page hit an unexpected problem"  # tests assert this never appears
VARIANTS_SHOWN = 4  # a grouped product's other photos shown under its card
FACETS_SHOWN = 8  # values per facet shown as filter buttons

CSS = """
<style>
/* result thumbnails: one shape for every card, the whole picture visible */
[class*="st-key-results"] img, [class*="st-key-products"] img, [class*="st-key-similar"] img,
[class*="st-key-moments"] img {
  aspect-ratio: 4 / 3; object-fit: contain; width: 100%;
  background: #f1f3f6; border-radius: 6px;
}
.mm-title { font-weight: 600; line-height: 1.25; margin: 0.1rem 0 0.15rem 0;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.mm-meta { color: #5f6b7a; font-size: 0.82rem; line-height: 1.3; min-height: 1.1rem;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.mm-score { display: inline-block; font-variant-numeric: tabular-nums; font-size: 0.8rem;
  font-weight: 600; padding: 0.05rem 0.45rem; border-radius: 999px; color: #0b3d91;
  background: #e3ecfb; }
.mm-kind { display: inline-block; font-size: 0.72rem; padding: 0.05rem 0.4rem; margin-left: 0.3rem;
  border-radius: 999px; color: #44505f; background: #eceff3; }
mark { background: #fff1a8; padding: 0 0.1rem; border-radius: 3px; }
.mm-bar { height: 4px; border-radius: 2px; background: #e6e9ee; margin: 0.25rem 0 0.1rem 0; }
.mm-bar > div { height: 4px; border-radius: 2px; background: linear-gradient(90deg, #4f8ef7, #1d5fd6); }
</style>
"""


def inject_css() -> None:
    """Card styling; the ``st-key-*`` classes scope it to the result grids."""
    st.html(CSS)


@st.cache_resource(show_spinner=False)
def _client_for(base_url: str) -> ApiClient:
    return ApiClient(base_url)


def client() -> ApiClient:
    """The shared client for the configured API URL (read on every run, so tests can change it)."""
    return _client_for(api_url_from_env())


# --- errors and empty states ---------------------------------------------------------------


def show_error(error: ApiError, what: str = "") -> None:
    """One clear sentence for the user; the API's own message for refused requests."""
    prefix = f"{what}: " if what else ""
    if isinstance(error, ApiUnavailable):
        st.error(f"{prefix}{error.message}", icon=":material/cloud_off:")
    elif isinstance(error, ApiTimeout):
        st.warning(f"{prefix}{error.message}", icon=":material/hourglass_empty:")
    else:
        st.error(f"{prefix}{error.message}", icon=":material/error:")


def attempt(action: Callable[[], T], what: str = "") -> T | None:
    """Run one API call; on failure show the message and return None instead of raising."""
    try:
        return action()
    except ApiError as error:
        show_error(error, what)
        return None


def empty_state(title: str, body: str, icon: str = ":material/search:") -> None:
    """A friendly placeholder where results will appear, saying what to do next."""
    with st.container(border=True, horizontal_alignment="center"):
        st.markdown(f"#### {icon} {title}")
        st.markdown(body)


def unexpected(error: Exception) -> None:
    """Last line of defence: a bug in the UI shows a message, never a traceback."""
    st.error(
        f"{UNEXPECTED} ({type(error).__name__}: {error}). Reload the page; if it persists, check the UI's log.",
        icon=":material/bug_report:",
    )


# --- result cards ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CardAction:
    """A button under each result card; ``on_click`` receives the hit."""

    label: str
    icon: str
    help: str
    on_click: Callable[[Hit], None]


def score_html(score: float, kind: str = "", scale: tuple[float, float] | None = None) -> str:
    """Score pill, kind tag and a bar relative to the page's score range."""
    kind_tag = f'<span class="mm-kind">{fmt.kind_label(kind)}</span>' if kind else ""
    bar = ""
    if scale is not None:
        low, high = scale
        width = 100.0 if high - low < 1e-9 else 15 + 85 * (score - low) / (high - low)
        bar = f'<div class="mm-bar"><div style="width:{width:.0f}%"></div></div>'
    return f'<span class="mm-score" title="cosine similarity">{fmt.score(score)}</span>{kind_tag}{bar}'


def result_card(
    hit: Hit,
    rank: int,
    actions: Sequence[CardAction],
    key: str,
    scale: tuple[float, float] | None = None,
    highlight: Sequence[str] = (),
) -> None:
    """One result: thumbnail (loaded by the browser from the API), title (the query's words that
    it contains marked, so a keyword match shows why it ranks), score, facts, variants, actions."""
    if hit.thumbnail_url:
        st.image(hit.thumbnail_url, width="stretch", alt=hit.title)
    title = highlighted(hit.title, highlight)
    st.markdown(f'<div class="mm-title" title="{_attr(hit.title)}">{rank}. {title}</div>', unsafe_allow_html=True)
    st.markdown(score_html(hit.score, hit.kind, scale), unsafe_allow_html=True)
    facts = fmt.details(hit)
    st.markdown(f'<div class="mm-meta">{_text(" · ".join(facts)) or "&nbsp;"}</div>', unsafe_allow_html=True)
    if hit.variants:
        _variants(hit)
    if hit.contributions:
        st.caption("  \n".join(f"`{_short(c.term)}` {c.contribution:+.3f}" for c in hit.contributions))
    if actions:
        with st.container(horizontal=True, gap="xxsmall"):
            for index, action in enumerate(actions):
                st.button(
                    action.label,
                    icon=action.icon,
                    help=action.help,
                    type="tertiary",
                    key=f"{key}_{index}",
                    on_click=action.on_click,
                    args=(hit,),
                )


def _variants(hit: Hit) -> None:
    """A product's other photos, small, under its best one."""
    shown = hit.variants[:VARIANTS_SHOWN]
    with st.container(horizontal=True, gap="xxsmall", key=f"variants_{hit.id}"):
        for variant in shown:
            if variant.thumbnail_url:
                st.image(variant.thumbnail_url, width=40, caption=None)
    more = len(hit.variants)
    st.caption(f":material/photo_library: {more} more photo{'s' if more > 1 else ''} of this product")


FACET_LABELS = {"category": "Category", "brand": "Brand", "kind": "Kind", "source": "Source", "year": "Year"}


def facet_bar(facets: Mapping[str, Sequence[tuple[str, int]]], widget_keys: Mapping[str, str], key: str) -> None:
    """Facet counts of the current query as buttons; clicking one filters by that value (it sets
    the sidebar filter whose widget key ``widget_keys`` names for the field)."""
    shown = {name: counts for name, counts in facets.items() if counts and name in widget_keys}
    if not shown:
        return
    with st.container(key=f"{key}_facets"):
        for name, counts in shown.items():
            with st.container(horizontal=True, gap="xxsmall", vertical_alignment="center"):
                st.markdown(f"**{FACET_LABELS.get(name, name)}**")
                for value, count in counts[:FACETS_SHOWN]:
                    st.button(
                        f"{value} ({count})",
                        key=f"{key}_facet_{name}_{value}",
                        type="tertiary",
                        icon=":material/filter_alt:",
                        help=f"Only {FACET_LABELS.get(name, name).lower()} {value}",
                        on_click=_filter_by,
                        args=(name, value, widget_keys[name]),
                    )


def _filter_by(name: str, value: str, widget_key: str) -> None:
    seen = st.session_state.setdefault(filters.FACETS_KEY, {})
    seen.setdefault(name, set()).add(value)  # the multiselect must offer the value it is set to
    st.session_state[widget_key] = [value]


def query_words(query: str) -> tuple[str, ...]:
    """The words of a query worth marking in captions (two letters or more, no syntax)."""
    return tuple(dict.fromkeys(w.lower() for w in re.findall(r"[^\W_]{2,}", query or "")))


def highlighted(text: str, words: Sequence[str]) -> str:
    """``text`` escaped for HTML, with whole-word matches of ``words`` marked."""
    escaped = _text(text)
    if not words:
        return escaped
    pattern = re.compile(r"\b(" + "|".join(re.escape(_text(w)) for w in words) + r")\b", re.IGNORECASE)
    return pattern.sub(r"<mark>\1</mark>", escaped)


def result_grid(
    hits: Sequence[Hit], actions: Sequence[CardAction], key: str, first_rank: int = 1, highlight: Sequence[str] = ()
) -> None:
    """Cards in a responsive grid; the key scopes the CSS and the buttons' widget keys."""
    scores = [h.score for h in hits]
    scale = (min(scores), max(scores)) if scores else None
    with st.container(key=key):
        grid = st.grid("auto", min_column_width=190, border=True, gap="small")
        for offset, hit in enumerate(hits):
            with grid.cell():
                result_card(hit, first_rank + offset, actions, key=f"{key}_{offset}_{hit.id}", scale=scale, highlight=highlight)


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: str) -> str:
    return _text(value).replace('"', "&quot;")
