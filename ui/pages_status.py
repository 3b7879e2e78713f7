"""The Status page: is everything up, what is indexed, which model and store are in use."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import streamlit as st

from ui import components
from ui import format as fmt
from ui.client import ApiError, Health, Stats

KIND_ORDER = ("image", "frame", "segment", "product")
NO_BROKER = "The API reports no broker: it runs ingest jobs in its own process (embedded mode)."


def render() -> None:
    api = components.client()
    st.title("Status", anchor=False)
    st.caption(f"API at `{api.base_url}`")
    started = time.perf_counter()
    try:
        health = api.health()
    except ApiError as error:
        components.show_error(error)
        st.markdown("Start the API with `mmsearch serve` (or `mmsearch demo`), then reload this page.")
        return
    latency_ms = (time.perf_counter() - started) * 1000
    _health(health, latency_ms)
    stats = components.attempt(api.stats, "Index statistics")
    if stats is not None:
        _counts(stats)
        _setup(stats)
    st.button("Refresh", icon=":material/refresh:", key="status.refresh")


def _health(health: Health, latency_ms: float) -> None:
    st.subheader("Health", anchor=False)
    with st.container(horizontal=True):
        st.metric("API", "up", help=f"answered in {latency_ms:.0f} ms", border=True)
        for check in health.checks:
            st.metric(check.name.capitalize(), "up" if check.ok else "down", help=check.detail or None, border=True)
        if not any(check.name == "broker" for check in health.checks):
            st.metric("Broker", "none", help=NO_BROKER, border=True)
    failing = [c for c in health.checks if not c.ok]
    for check in failing:
        st.error(f"**{check.name}** is down: {check.detail or 'no detail'}", icon=":material/error:")
    if not failing:
        st.success("Everything the API depends on answers.", icon=":material/check_circle:")


def _counts(stats: Stats) -> None:
    st.subheader("Indexed", anchor=False)
    kinds = [k for k in KIND_ORDER if k in stats.points] + [k for k in stats.points if k not in KIND_ORDER]
    if not stats.total_points:
        components.empty_state(
            "Nothing indexed yet", "Start a job on the Ingest page, or run `mmsearch demo`.", icon=":material/inventory_2:"
        )
        return
    with st.container(horizontal=True):
        for kind in kinds:
            st.metric(fmt.kind_label(kind).capitalize() + "s", f"{stats.points[kind]:,}", border=True)


def _setup(stats: Stats) -> None:
    st.subheader("Setup", anchor=False)
    rows = {
        "Model": f"{stats.model} ({stats.dim} dimensions)",
        "Vector store": f"{stats.store_backend} · collection {stats.collection}",
        "Points": f"{stats.total_points:,}",
        "Running ingest jobs": str(stats.running_jobs),
        "Vector index": _index_line(stats.index),
    }
    for kind, by_status in sorted(stats.catalog.items()):
        rows[f"Catalog: {kind}s"] = ", ".join(f"{count:,} {status}" for status, count in sorted(by_status.items()))
    st.table({"": list(rows), "value": list(rows.values())})


def _index_line(index: Mapping[str, Any] | None) -> str:
    """Indexed vs exactly-searched points, and whether a background build runs now."""
    if not index:
        return "–"
    line = f"{int(index.get('indexed', 0)):,} of {int(index.get('points', 0)):,} points in the HNSW index"
    if index.get("optimizing"):
        line += " · building the index now"
    elif index.get("unindexed"):
        line += f" · {int(index['unindexed']):,} searched exactly until the next build"
    if index.get("last_run_detail"):
        line += f" · last build: {index['last_run_detail']} ({index.get('last_run_seconds')} s)"
    return line


if __name__ == "__main__":
    render()
