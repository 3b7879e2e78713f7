"""The CLI while ``mmsearch serve`` runs: search, ingest and jobs go through the server's API.

A real ``mmsearch serve`` subprocess owns the embedded store; real ``mmsearch`` subprocesses
then ingest a small procedural corpus, search it and list jobs through it, with the output and
exit codes a local run gives. When the server stops, its record goes, and the CLI opens the
store itself again; a record left by a killed server is stale and ignored.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmsearch.serve import wait_for_http

pytestmark = pytest.mark.slow

SERVE_START_S = 120.0
COMMAND_S = 240.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MMSEARCH_DATA_DIR": str(data_dir),
        "MMSEARCH_MODEL": "mmsearch-synthetic",
        "MMSEARCH_EMBEDDER__THREADS": "1",
    }


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmsearch.cli", *args], env=_env(data_dir), capture_output=True, text=True, timeout=COMMAND_S
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthetic import generate_corpus

    data_dir = tmp_path_factory.mktemp("data")
    generate_corpus(data_dir / "corpus", seed=3, n_images=12, n_videos=0, n_products=3)
    return data_dir


@pytest.fixture(scope="module")
def server(world: Path) -> Iterator[subprocess.Popen[bytes]]:
    port = _free_port()
    log = open(world / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "mmsearch.cli", "serve", "--port", str(port)],
        env=_env(world),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=SERVE_START_S), (world / "serve.log").read_text()
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        log.close()


def test_the_server_records_where_it_listens(world: Path, server: subprocess.Popen[bytes]) -> None:
    record = json.loads((world / "server.json").read_text())
    assert record["pid"] == server.pid and record["url"].startswith("http://127.0.0.1:")


def test_ingest_search_and_jobs_go_through_the_running_server(world: Path, server: subprocess.Popen[bytes]) -> None:
    ingest = _cli(world, "ingest", str(world / "corpus" / "images"))
    assert ingest.returncode == 0, ingest.stderr
    assert "indexed 12" in ingest.stdout and ": done" in ingest.stdout
    found = _cli(world, "search", "a red circle", "--json", "--limit", "3")
    assert found.returncode == 0, found.stderr
    document = json.loads(found.stdout)
    assert len(document["results"]) == 3 and document["query_type"] == "text"
    text = _cli(world, "search", "a red circle", "--limit", "2")
    assert text.returncode == 0 and "images for" in text.stdout and " 1. " in text.stdout
    jobs = _cli(world, "jobs", "--json")
    assert jobs.returncode == 0, jobs.stderr
    assert json.loads(jobs.stdout)["jobs"][0]["indexed"] == 12


def test_a_refused_search_has_the_local_message_and_exit_code(world: Path, server: subprocess.Popen[bytes]) -> None:
    bad = _cli(world, "search", "a red circle", "--sort", "colour")
    assert bad.returncode == 2
    assert "Unknown sort field 'colour'" in bad.stderr and "taken_at" in bad.stderr


def test_after_the_server_stops_the_cli_opens_the_store_itself(world: Path, server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(60)
    assert not (world / "server.json").exists()  # removed on a clean exit
    (world / "server.json").write_text(json.dumps({"pid": 2**22 + 12345, "url": "http://127.0.0.1:9"}))  # a killed server's
    found = _cli(world, "search", "a red circle", "--json", "--limit", "3")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["results"]) == 3
    assert not (world / "server.json").exists()  # the stale record is cleared
