"""Jobs whose runner dies: shown as interrupted, resumed by the next run, crash debris swept.

The end-to-end test kills a real ``mmsearch ingest`` process with SIGKILL half-way through a
folder of real JPEGs, then looks at it the way a user would (``mmsearch jobs``) and runs the
same command again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest.heartbeat import Heartbeat
from search.catalog import Catalog
from search.catalog.owners import JobOwner, process_alive, process_token
from search.catalog.schema import utcnow
from search.engine.status import stats
from search.media.thumbnail import remove_stale_temporaries
from search.services import Services
from search.settings import IngestSettings
from tests._ingest_support import REPO, base_settings, file_uri, image_point_id, make_image, mmsearch_command, settings_env

COLOURS = ("red", "green", "blue", "yellow")
PARAMS = {"paths": ["/photos"], "options": {}}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.sqlite3'}") as opened:
        yield opened


def _dead_owner() -> JobOwner:
    """The owner id a real process had, taken while it ran; the process is gone afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while (token := process_token(proc.pid)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        owner = JobOwner(JobOwner.current().host, proc.pid, token or "")
        assert process_alive(owner.pid, owner.token or None)
    finally:
        proc.kill()
        proc.wait(10)
    return owner


# -- who runs a job, and whether they still do ------------------------------------------------


def test_a_job_whose_owner_process_died_is_interrupted_at_once(catalog: Catalog) -> None:
    owner = _dead_owner()
    job = catalog.create_job("ingest", PARAMS, owner=owner.encode())
    catalog.start_job(job.id)
    live = catalog.create_job("ingest", {"paths": ["/other"]}, owner=JobOwner.current().encode())
    catalog.start_job(live.id)

    (marked,) = catalog.interrupt_orphaned_jobs(timeout=60)
    assert marked.id == job.id and marked.status == "interrupted"
    assert f"pid {owner.pid}" in marked.error and "gone" in marked.error
    assert catalog.get_job(live.id).status == "running", "a live owner keeps its job"
    assert catalog.interrupt_orphaned_jobs(timeout=60) == [], "marking is done once"


def test_a_reused_pid_does_not_keep_a_dead_owner_s_job_alive(catalog: Catalog) -> None:
    me = JobOwner.current()
    if not me.token:
        pytest.skip("no /proc: process start times are unknown here")
    impostor = JobOwner(me.host, me.pid, str(int(me.token) - 1))  # this pid, but an earlier process
    job = catalog.create_job("ingest", PARAMS, owner=impostor.encode())
    catalog.start_job(job.id)
    assert [j.id for j in catalog.interrupt_orphaned_jobs(timeout=60)] == [job.id]


def test_silence_longer_than_the_timeout_interrupts_a_job_and_a_late_heartbeat_revives_it(catalog: Catalog) -> None:
    distributed = catalog.start_job(catalog.create_job("ingest", PARAMS).id)  # Celery: no owner, tasks beat
    remote = catalog.create_job("ingest", {"paths": ["/remote"]}, owner=JobOwner("elsewhere", 1, "7").encode())
    catalog.start_job(remote.id)
    soon = utcnow() + timedelta(seconds=30)
    assert catalog.interrupt_orphaned_jobs(timeout=60, now=soon) == []

    later = utcnow() + timedelta(seconds=61)
    marked = {j.id: j for j in catalog.interrupt_orphaned_jobs(timeout=60, now=later)}
    assert set(marked) == {distributed.id, remote.id}
    assert "no heartbeat from its workers" in marked[distributed.id].error
    assert "pid 1 on elsewhere" in marked[remote.id].error
    assert not marked[distributed.id].finished, "its tasks may still come back"

    catalog.beat_job(distributed.id)  # a redelivered task of it runs after all
    revived = catalog.get_job(distributed.id)
    assert (revived.status, revived.error, revived.finished_at) == ("running", None, None)
    assert catalog.finish_job(remote.id, "done").status == "done", "an interrupted job may still finish"


def test_a_queued_distributed_job_waits_in_the_broker_and_is_never_interrupted(catalog: Catalog) -> None:
    job = catalog.create_job("ingest", PARAMS)
    much_later = utcnow() + timedelta(days=1)
    assert catalog.interrupt_orphaned_jobs(timeout=60, now=much_later) == []
    assert catalog.get_job(job.id).status == "queued"


def test_the_next_run_of_the_same_request_resumes_an_interrupted_or_cancelled_job_once(catalog: Catalog) -> None:
    owner = _dead_owner().encode()
    first = catalog.start_job(catalog.create_job("ingest", PARAMS, owner=owner).id)
    catalog.interrupt_orphaned_jobs(timeout=60)

    second = catalog.create_job("ingest", PARAMS, owner=JobOwner.current().encode(), resume=True)
    assert second.resumed_from == first.id
    old = catalog.get_job(first.id)
    assert old.resumed_by == second.id and old.status == "interrupted"
    assert old.finished and old.stopped, "whoever still runs the old job stops"
    catalog.beat_owner(owner)
    assert catalog.get_job(first.id).status == "interrupted", "a job taken over is not revived"

    assert catalog.create_job("ingest", PARAMS, resume=True).resumed_from is None, "the newest run is not interrupted"
    other = catalog.create_job("ingest", {"paths": ["/elsewhere"]}, resume=True)
    assert other.resumed_from is None, "another request resumes nothing"

    catalog.cancel_job(other.id)
    again = catalog.create_job("ingest", {"paths": ["/elsewhere"]}, resume=True)
    assert again.resumed_from == other.id, "a cancelled run (Ctrl-C) is resumed too"


@pytest.mark.slow  # loads the model
def test_stats_count_a_job_whose_runner_died_as_interrupted_not_running(tmp_path: Path) -> None:
    services = Services(base_settings(tmp_path / "data", store_url="memory://stats"))
    try:
        job = services.catalog.create_job("ingest", PARAMS, owner=_dead_owner().encode())
        services.catalog.start_job(job.id)
        now = stats(services)
    finally:
        services.close()
    assert (now.running_jobs, now.interrupted_jobs) == (0, 1)


def test_the_heartbeat_thread_beats_until_stopped() -> None:
    beats: list[float] = []
    failing = threading.Event()

    def beat() -> None:
        beats.append(time.monotonic())
        if failing.is_set():
            raise RuntimeError("the catalog is away")

    with Heartbeat(beat, interval=0.05):
        time.sleep(0.3)
        failing.set()  # a failed beat is logged, and the next one still comes
        time.sleep(0.15)
    count = len(beats)
    time.sleep(0.15)
    assert count >= 6 and len(beats) == count


def test_a_heartbeat_timeout_shorter_than_three_beats_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least three heartbeat intervals"):
        IngestSettings(heartbeat_interval=30, heartbeat_timeout=60)


def test_temporary_thumbnails_left_by_a_crash_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    thumbs = tmp_path / "thumbnails"
    (thumbs / "video-id").mkdir(parents=True)
    stale = [thumbs / ".thumb-a1.webp", thumbs / "video-id" / ".thumb-b2.webp"]
    fresh = thumbs / ".thumb-c3.webp"  # a writer may be about to rename it
    finished = thumbs / "photo-id.webp"
    an_hour_ago = time.time() - 3600
    for path in [*stale, fresh, finished]:
        path.write_bytes(b"RIFF")
    for path in [*stale, finished]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert remove_stale_temporaries(thumbs, older_than=60) == 2
    assert not any(p.exists() for p in stale) and fresh.exists() and finished.exists()
    assert remove_stale_temporaries(tmp_path / "missing", older_than=60) == 0


# -- a real process killed mid-job ----------------------------------------------------------------


def _cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mmsearch_command(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _wait_for_progress(catalog_path: Path, proc: subprocess.Popen[bytes], indexed: int, timeout: float = 180) -> str:
    """The id of the job once it has indexed ``indexed`` items (the process still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the ingest process ended before it could be killed"
        if catalog_path.exists():
            with Catalog.open(f"sqlite:///{catalog_path}") as catalog:
                jobs = catalog.list_jobs(limit=1)
                if jobs and jobs[0].indexed >= indexed:
                    return jobs[0].id
        time.sleep(0.05)
    raise AssertionError(f"no job reached {indexed} indexed items in {timeout}s")


@pytest.mark.slow
def test_a_sigkilled_ingest_is_shown_interrupted_and_the_next_run_resumes_it(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    images = [make_image(folder / f"p{i:03d}.jpg", COLOURS[i % 4], (160 + i % 40, 120)) for i in range(120)]
    settings = base_settings(tmp_path / "data")
    env = settings_env(settings)
    catalog_path = settings.data_dir / "catalog.sqlite3"

    proc = subprocess.Popen(
        mmsearch_command("ingest", str(folder)),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        job_id = _wait_for_progress(catalog_path, proc, indexed=16)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    with Catalog.open(f"sqlite:///{catalog_path}") as catalog:
        at_kill = catalog.get_job(job_id)
        finished = [p for p in images if (r := catalog.get_media_by_uri(file_uri(p))) and r.status == "indexed"]
    assert at_kill.indexed < len(images), "the process must die mid-job for this test to mean anything"

    # a crash in the middle of a thumbnail write leaves its temporary file behind
    orphan = settings.thumbnails_dir / ".thumb-k1ll3d.webp"
    orphan.write_bytes(b"RIFF half a webp")
    an_hour_ago = time.time() - 3600
    os.utime(orphan, (an_hour_ago, an_hour_ago))

    listed = _cli(env, "jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    (shown,) = json.loads(listed.stdout)["jobs"]
    assert (shown["id"], shown["status"]) == (job_id, "interrupted")
    assert "gone" in shown["error"]
    with Catalog.open(f"sqlite:///{catalog_path}") as catalog:
        assert catalog.get_job(job_id).status == "interrupted"  # recorded, not only displayed

    rerun = _cli(env, "ingest", str(folder), "--json")
    assert rerun.returncode == 0, rerun.stderr
    resumed = json.loads(rerun.stdout)
    assert resumed["status"] == "done" and resumed["resumed_from"] == job_id
    assert resumed["discovered"] == len(images) and resumed["failed"] == 0
    assert resumed["skipped"] == len(finished), "what the killed run finished is not redone"
    assert resumed["indexed"] == len(images) - len(finished)
    assert not orphan.exists(), "crash debris is swept when a run starts"

    text = _cli(env, "jobs")
    assert f"resumed from {job_id[:8]}" in text.stdout and "interrupted" in text.stdout
    again = _cli(env, "jobs", job_id, "--json")
    assert json.loads(again.stdout)["resumed_by"] == resumed["id"]

    services = Services(settings)
    try:
        points = [hit.id for hit in services.store.scroll(limit=10_000).hits]
        records = [services.catalog.get_media_by_uri(file_uri(p)) for p in images]
    finally:
        services.close()
    assert sorted(points) == sorted(image_point_id(p) for p in images), "every photo indexed exactly once"
    assert {r.status for r in records if r is not None} == {"indexed"} and None not in records


def test_the_api_shows_a_job_whose_runner_died_as_interrupted_with_its_owner(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from search.api import create_app

    settings = base_settings(tmp_path / "data", store_url="memory://api-jobs")
    services = Services(settings)
    owner = _dead_owner()
    job = services.catalog.create_job("ingest", PARAMS, owner=owner.encode())
    services.catalog.start_job(job.id)
    with TestClient(create_app(settings, services=services)) as client:
        one = client.get(f"/jobs/{job.id}").json()
        listed = client.get("/jobs").json()["jobs"]
        counted = client.get("/stats").json()
    assert one["status"] == "interrupted" and one["owner"] == owner.encode()
    assert [j["status"] for j in listed if j["id"] == job.id] == ["interrupted"]
    assert (counted["running_jobs"], counted["interrupted_jobs"]) == (0, 1)
