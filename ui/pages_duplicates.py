"""The Duplicates page: groups of identical files and near-identical pictures, to decide what to delete.

The server compares the whole archive when asked (``GET /duplicates``); the answer is kept in
the session so the page can re-run without asking again. Each group lists its files with
sizes, dates, pixel sizes and similarity; the groups can be downloaded as CSV or JSON. Nothing is
deleted from here.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import streamlit as st

from ui import components
from ui.client import DuplicateGroup, Duplicates
from ui.format import size_bytes

RESULT_KEY = "duplicates.result"
SHOWN_GROUPS = 50


def render() -> None:
    api = components.client()
    st.title("Duplicates", anchor=False)
    st.caption("Identical files (same bytes) and near-identical pictures (resized, re-encoded, bursts). Nothing is deleted here.")
    with st.form("duplicates.form", border=True):
        threshold = st.slider("Near-duplicate similarity", 0.80, 1.00, 0.95, 0.01, key="duplicates.threshold")
        kind = st.segmented_control("Look for", ["all", "exact", "near"], default="all", key="duplicates.kind", required=True)
        asked = st.form_submit_button("Find duplicates", type="primary", icon=":material/content_copy:")
    if asked:
        with st.spinner("Comparing the archive…"):
            found = components.attempt(lambda: api.duplicates(threshold=threshold, kind=kind or "all"), "Duplicates")
        if found is not None:
            st.session_state[RESULT_KEY] = found
    result: Duplicates | None = st.session_state.get(RESULT_KEY)
    if result is None:
        components.empty_state("Find duplicates", "Choose how similar pictures must be, then **Find duplicates**.")
        return
    _summary(result)
    for number, group in enumerate(result.groups[:SHOWN_GROUPS], start=1):
        _group(number, group)
    if len(result.groups) > SHOWN_GROUPS:
        st.caption(f"… and {len(result.groups) - SHOWN_GROUPS} more groups: download the CSV or JSON for all of them.")


def _summary(result: Duplicates) -> None:
    with st.container(horizontal=True):
        st.metric("Exact groups", result.exact_groups, border=True)
        st.metric("Near groups", result.near_groups, border=True)
        st.metric("Reclaimable", size_bytes(result.reclaimable_bytes) or "0 B", border=True)
        st.metric("Media compared", result.media_checked, border=True)
    with st.container(horizontal=True):
        st.download_button("Download CSV", to_csv(result), "duplicates.csv", "text/csv", icon=":material/download:")
        st.download_button(
            "Download JSON",
            json.dumps(result.document, indent=2),
            "duplicates.json",
            "application/json",
            icon=":material/download:",
        )


def _group(number: int, group: DuplicateGroup) -> None:
    members, kind = group.members, group.kind
    freed = size_bytes(group.reclaimable_bytes) or "0 B"
    with st.container(border=True, key=f"dup_group_{number}"):
        badge = ":violet-badge[exact]" if kind == "exact" else ":blue-badge[near]"
        st.markdown(f"**#{number}** {badge} &nbsp; {len(members)} files · {freed} reclaimable")
        rows = [
            {
                "file": m.uri,
                "size": size_bytes(m.size_bytes),
                "taken": _date(m.taken_at),
                "pixels": f"{m.width}×{m.height}" if m.width and m.height else "",
                "similarity": round(m.similarity, 3),
            }
            for m in members
        ]
        st.dataframe(rows, hide_index=True, width="stretch")


def to_csv(result: Duplicates) -> str:
    """One row per file, numbered by group: what ``mmsearch duplicates --format csv`` writes."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["group", "kind", "key", "media_id", "uri", "size_bytes", "taken_at", "width", "height", "similarity"])
    for number, group in enumerate(result.groups, start=1):
        for m in group.members:
            writer.writerow(
                [number, group.kind, group.key, m.media_id, m.uri, m.size_bytes, m.taken_at, m.width, m.height, m.similarity]
            )
    return out.getvalue()


def _date(at: float | None) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M") if isinstance(at, (int, float)) else ""


if __name__ == "__main__":
    render()
