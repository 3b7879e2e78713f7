"""``mmsearch ingest`` and ``mmsearch jobs`` as users run them: subprocesses, exit codes, output.

Each command is a real process with the settings in ``MMSEARCH_`` variables (the bundled model,
an embedded store in a scratch data directory), so this also checks that the console entry
point, settings loading and the summary fit together.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests._ingest_support import (
    BAD_MAX_PIXELS,
    REPO,
    base_settings,
    build_media,
    make_bad_folder,
    mmsearch_command,
    settings_env,
)

pytestmark = pytest.mark.slow


def run_cli(data_dir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    settings = base_settings(data_dir, ingest={"max_image_pixels": BAD_MAX_PIXELS})
    return subprocess.run(
        ["nice", "-n", "10", *mmsearch_command(*args)],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ingest_json_summary_then_failures_give_exit_1_and_jobs_lists_both(tmp_path: Path) -> None:
    data = tmp_path / "data"
    media = build_media(tmp_path / "media")
    good = run_cli(data, "ingest", str(media), "--json")
    assert good.returncode == 0, good.stderr
    document = json.loads(good.stdout)
    assert (document["status"], document["discovered"], document["indexed"], document["failed"]) == ("done", 5, 5, 0)
    assert document["failures"] == []

    bad_folder = tmp_path / "bad"
    reasons = make_bad_folder(bad_folder)
    bad = run_cli(data, "ingest", str(bad_folder))
    assert bad.returncode == 1, bad.stderr
    assert f"indexed 1, skipped 0 (unchanged), failed {len(reasons)}" in bad.stdout
    for name, phrase in reasons.items():
        line = next(line for line in bad.stdout.splitlines() if line.strip().startswith("file://") and name in line)
        assert phrase in line
    assert "indexing" in bad.stderr, "the progress bar goes to stderr"

    listed = run_cli(data, "jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)["jobs"]
    assert [(j["indexed"], j["failed"]) for j in jobs] == [(1, len(reasons)), (5, 0)]  # newest first
    shown = run_cli(data, "jobs", jobs[0]["id"], "--json")
    assert len(json.loads(shown.stdout)["failures"]) == len(reasons)
    text = run_cli(data, "jobs")
    assert jobs[1]["id"] in text.stdout and "indexed" in text.stdout


def test_usage_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    nothing = run_cli(tmp_path / "data", "ingest")
    assert nothing.returncode == 2 and "nothing to ingest" in nothing.stderr
    unknown = run_cli(tmp_path / "data", "jobs", "no-such-job")
    assert unknown.returncode == 2 and "no job with id" in unknown.stderr
    crawl = run_cli(tmp_path / "data", "ingest", "--crawl", "ftp://example.com/")
    assert crawl.returncode == 2 and "crawl starts from an http(s) URL" in crawl.stderr
    worker = run_cli(tmp_path / "data", "worker")
    assert worker.returncode == 2 and "Celery needs a broker" in worker.stderr


def test_worker_queue_names_and_concurrency_rules(tmp_path: Path) -> None:
    from mmsearch.worker import worker_concurrency, worker_queues
    from search.errors import ConfigError

    settings = base_settings(tmp_path, ingest={"cpu_queue": "c1", "gpu_queue": "g1"})
    assert worker_queues("cpu, gpu", settings) == ["c1", "g1"] and worker_queues("g1", settings) == ["g1"]
    with pytest.raises(ConfigError, match="unknown queue 'video'"):
        worker_queues("cpu,video", settings)
    assert worker_concurrency(None, ["g1"], settings) == 1
    with pytest.raises(ConfigError, match="admits one process"):
        worker_concurrency(4, ["c1", "g1"], settings)
    assert worker_concurrency(3, ["c1"], settings) == 3
    server = base_settings(tmp_path, store_url="http://qdrant:6333", ingest={"gpu_queue": "g1"})
    assert worker_concurrency(2, ["g1"], server) == 2
