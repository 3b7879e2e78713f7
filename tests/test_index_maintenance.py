"""The embedded store keeps itself indexed: the maintainer's promises, at small scale, on real Edge shards.

Thresholds are lowered (1,000 points, 32 dimensions) so a build takes a second or two; the
mechanism is the one a user's million-point store runs.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from search.payload import WORDS
from search.settings import IndexSettings, load_settings
from search.store import Point, open_store
from search.store.maintenance import recover_folder, sibling

DIM = 32
THRESHOLD = 1_000
REPO = Path(__file__).resolve().parent.parent


def _settings(tmp_path: Path, auto: bool = True):
    return load_settings(
        data_dir=tmp_path, index=IndexSettings(threshold_points=THRESHOLD, auto_optimize=auto, optimize_threads=1)
    )


def _points(start: int, n: int, tag: str = "a", words: bool = False) -> list[Point]:
    """Points of random vectors; with ``words``, searchable words too, as every ingested point
    has (file and folder names), so each also carries a BM25 keyword vector."""
    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    payloads = [{"kind": "image", "source": tag} | ({WORDS: f"img {start + i} holiday"} if words else {}) for i in range(n)]
    return [Point(str(uuid.UUID(int=start + i + 1)), vectors[i], payloads[i]) for i in range(n)]


def _wait(condition, limit_s: float = 90.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_passing_the_threshold_schedules_a_background_build(tmp_path: Path) -> None:
    store = open_store(_settings(tmp_path), dim=DIM, model="m")
    try:
        store.upsert(_points(0, 600))
        time.sleep(0.5)
        assert store.index_state().indexed == 0  # below the threshold: searched exactly, no build
        store.upsert(_points(600, 2_400))
        store.request_index()
        _wait(lambda: store.index_state().indexed >= 3_000 and not store.index_state().optimizing)
        state = store.index_state()
        assert state.points == 3_000 and not state.optimizing
        assert state.last_run is not None and state.last_run.ok, state.last_run
        assert len(store.query(_points(5, 1)[0].vector, limit=10)) == 10
    finally:
        store.close()


def test_points_with_keyword_vectors_are_not_counted_as_indexed_until_a_build(tmp_path: Path) -> None:
    """Regression: the BM25 sparse vector every ingested point carries is indexed on arrival, and
    was counted as if the dense vector were: the store looked indexed and never built HNSW."""
    store = open_store(_settings(tmp_path), dim=DIM, model="m")
    try:
        store.upsert(_points(0, 3_000, words=True))
        assert store.index_state().indexed < THRESHOLD  # just written: searched exactly
        store.request_index()
        _wait(lambda: store.index_state().last_run is not None and not store.index_state().optimizing)
        state = store.index_state()
        assert state.last_run is not None and state.last_run.ok, state.last_run
        assert state.points == 3_000 and state.indexed >= 2_900
        assert len(store.query(_points(5, 1)[0].vector, limit=10)) == 10
    finally:
        store.close()


def test_writes_during_a_build_are_kept_in_order(tmp_path: Path) -> None:
    store = open_store(_settings(tmp_path, auto=False), dim=DIM, model="m")
    try:
        store.upsert(_points(0, 3_000))
        builder = threading.Thread(target=store.build_index, kwargs={"force": True})
        builder.start()
        _wait(lambda: store.index_state().optimizing, 30)
        late = _points(10_000, 300, tag="late")
        store.upsert(late[:150])
        store.delete([p.id for p in _points(0, 100)])  # some old points go
        store.upsert([Point(late[0].id, late[0].vector, {"kind": "image", "source": "rewritten"})])
        store.upsert(late[150:])
        assert store.index_state().optimizing, "the writes above were meant to land during the build"
        builder.join(timeout=120)
        assert not builder.is_alive()
        state = store.index_state()
        assert state.last_run is not None and state.last_run.ok, state.last_run
        assert state.indexed >= 2_900
        assert store.count() == 3_000 - 100 + 300
        assert store.retrieve([p.id for p in _points(0, 100)]) == []
        assert store.retrieve([late[0].id])[0].payload["source"] == "rewritten"
        assert len(store.retrieve([p.id for p in late])) == 300
    finally:
        store.close()


def test_closing_during_a_build_abandons_it_and_loses_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path, auto=False)
    store = open_store(settings, dim=DIM, model="m")
    store.upsert(_points(0, 3_000))
    builder = threading.Thread(target=store.build_index, kwargs={"force": True})
    builder.start()
    _wait(lambda: store.index_state().optimizing, 30)
    store.close()
    builder.join(timeout=60)
    assert not builder.is_alive()
    reopened = open_store(settings, dim=DIM, model="m")
    try:
        assert reopened.count() == 3_000
        assert not any(p.name.endswith((".building", ".previous", ".discard")) for p in reopened.path.parent.iterdir())
    finally:
        reopened.close()


@pytest.mark.slow
def test_a_process_killed_mid_build_reopens_cleanly(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time, uuid, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from search.settings import IndexSettings, load_settings
        from search.store import Point, open_store
        settings = load_settings(data_dir={str(tmp_path)!r}, index=IndexSettings(threshold_points=1000, auto_optimize=False, optimize_threads=1))
        store = open_store(settings, dim={DIM}, model="m")
        v = np.random.default_rng(0).normal(size=(20000, {DIM})).astype(np.float32)
        store.upsert([Point(str(uuid.UUID(int=i + 1)), v[i], {{"kind": "image"}}) for i in range(20000)])
        print("filled", flush=True)
        store.build_index(force=True)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "filled"
        _wait(lambda: any(p.name.endswith(".building") for p in tmp_path.rglob("*.building")), 60)
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    store = open_store(_settings(tmp_path, auto=False), dim=DIM, model="m")
    try:
        assert store.count() == 20_000
        assert not list(tmp_path.rglob("*.building"))
    finally:
        store.close()


def test_an_interrupted_swap_restores_the_folder_that_holds_every_write(tmp_path: Path) -> None:
    live = tmp_path / "shard"
    (live / "segments").mkdir(parents=True)
    (live / "marker").write_text("optimized copy, journal not yet replayed")
    previous = sibling(live, "previous")
    shutil.copytree(live, previous)
    (previous / "marker").write_text("every write")
    sibling(live, "building").mkdir()
    recover_folder(live)
    assert (live / "marker").read_text() == "every write"
    assert not previous.exists() and not sibling(live, "building").exists()


def test_mmsearch_optimize_builds_the_index_and_doctor_reports_it(monkeypatch, tmp_path: Path, capsys) -> None:
    from mmsearch.cli import main
    from search.services import Services

    monkeypatch.setenv("MMSEARCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MMSEARCH_MODEL", "mmsearch-synthetic")
    monkeypatch.setenv("MMSEARCH_INDEX__THRESHOLD_POINTS", str(THRESHOLD))
    monkeypatch.setenv("MMSEARCH_INDEX__AUTO_OPTIMIZE", "false")
    monkeypatch.delenv("MMSEARCH_BROKER_URL", raising=False)
    services = Services(load_settings())
    try:
        dim = services.store.dim
        vectors = np.random.default_rng(0).normal(size=(2_000, dim)).astype(np.float32)
        services.store.upsert([Point(str(uuid.UUID(int=i + 1)), vectors[i], {"kind": "image"}) for i in range(2_000)])
    finally:
        services.close()

    assert main(["doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert "0 of 2000 points in the HNSW index" in checks["index"]["detail"]
    assert "mmsearch optimize" in checks["index"]["detail"]

    assert main(["optimize", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["before"]["indexed"] == 0
    assert report["run"]["ok"] is True
    assert report["after"]["indexed"] == 2_000
