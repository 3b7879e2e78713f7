"""``mmsearch demo``, the README's first command, run as a user runs it: a subprocess.

A small corpus (flags) keeps it quick; the path is the real one: render the procedural world,
ingest through the pipeline with the bundled model, serve the API, answer a search, stop
cleanly on Ctrl-C (SIGINT), and on a second run reuse the index instead of embedding again.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import ui_live

pytestmark = pytest.mark.slow

SMALL = ["--images", "12", "--videos", "1", "--products", "4"]


def demo(data_dir: Path, *args: str) -> list[str]:
    """``mmsearch demo`` without --model: the demo must pick the bundled model by itself."""
    return [sys.executable, "-m", "mmsearch.cli", "--data-dir", str(data_dir), "demo", *SMALL, *args]


def test_demo_indexes_serves_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = ui_live.free_port()
    log = tmp_path / "demo.log"
    process = ui_live.start(demo(tmp_path / "data", "--no-ui", "--port", str(port)), ui_live.child_env(), log)
    try:
        ui_live.wait_ready(process, f"http://127.0.0.1:{port}/readyz", 240.0, log)
        answer = httpx.post(f"http://127.0.0.1:{port}/search", json={"text": "a red shape", "limit": 5}, timeout=30.0)
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert results and all(r["thumbnail_url"] for r in results)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        ui_live.stop(process)
    output = log.read_text()
    assert f"API  http://127.0.0.1:{port}" in output
    assert "UI   " not in output, "--no-ui serves the API only"
    assert re.search(r"indexed (\d+)", output) and "failed 0" in output
    assert (tmp_path / "data" / "demo-corpus" / "truth.json").is_file()


def test_a_second_run_reuses_the_index_and_serves_the_ui_until_terminated(tmp_path: Path) -> None:
    first = _prepare_only(tmp_path)
    indexed = int(re.search(r"indexed (\d+), skipped 0", first).group(1))
    assert indexed > 12, "photos, video frames and product photos were embedded"
    api_port, ui_port = ui_live.free_port(), ui_live.free_port()
    log = tmp_path / "second.log"
    process = ui_live.start(demo(tmp_path / "data", "--port", str(api_port), "--ui-port", str(ui_port)), ui_live.child_env(), log)
    try:
        ui_live.wait_ready(process, f"http://127.0.0.1:{api_port}/readyz", 240.0, log)
        ui_live.wait_ready(process, f"http://127.0.0.1:{ui_port}/_stcore/health", 90.0, log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        ui_live.stop(process)
    second = log.read_text()
    assert "demo corpus already in" in second and "rendering" not in second
    assert f"indexed 0, skipped {indexed} " in second, second
    assert f"UI   http://127.0.0.1:{ui_port}" in second
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=5.0)  # the UI child went with it


def _prepare_only(tmp_path: Path) -> str:
    result = subprocess.run(
        demo(tmp_path / "data", "--no-serve"),
        env=ui_live.child_env(),
        cwd=ui_live.ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_taken_port_stops_the_demo_at_once_with_a_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            demo(tmp_path / "data", "--no-ui", "--port", str(port)),
            env=ui_live.child_env(),
            cwd=ui_live.ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert not (tmp_path / "data" / "demo-corpus").exists(), "nothing was rendered before the check"
