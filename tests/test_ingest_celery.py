"""Distributed mode: real Redis, real ``mmsearch worker`` subprocesses, PostgreSQL catalog.

Which process owns the store: the only multi-process store is a Qdrant server, and none runs
here. Qdrant Edge (the embedded default) and qdrant-client's local mode both lock their folder
to one process. So the worker, consuming both queues, is the store's sole owner, exactly as a
single-GPU-worker deployment over Edge would be (``mmsearch worker`` forces concurrency 1 for
a gpu worker over such a store); the test process only talks to Redis and PostgreSQL while
the worker runs, and opens the store after the worker has exited. The catalog is PostgreSQL,
shared by the test and the worker, which is how the CLI follows a job's progress.

Isolation on the shared Redis: a Redis database of our own (13) and queue names unique to the
run, so no other user's worker can take our tasks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.jobs import create_job, dispatch_job, run_ingest, wait_for_job
from search.catalog import Catalog
from search.ids import media_id, point_id
from search.services import IngestRequest, Services
from search.settings import Settings
from tests._ingest_support import (
    MODEL,
    REDIS_URL,
    Worker,
    base_settings,
    build_media,
    expected_ids,
    file_uri,
    image_point_id,
    make_image,
    make_video,
    redis_available,
    running_worker,
    scratch_postgres,
    scratch_queues,
    serve_folder,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _needs_redis() -> None:
    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_media(tmp_path_factory.mktemp("media"))


@pytest.fixture
def catalog_url() -> Iterator[str]:
    try:
        scratch = scratch_postgres()
        url = scratch.__enter__()
    except Exception as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    try:
        yield url
    finally:
        scratch.__exit__(None, None, None)


def distributed_settings(data_dir: Path, catalog_url: str, **ingest: object) -> Settings:
    return base_settings(data_dir, catalog_url=catalog_url, broker_url=REDIS_URL, ingest={**scratch_queues(), **ingest})


def store_snapshot(settings: Settings) -> dict[str, np.ndarray]:
    """Every point id and vector, read after the worker (the store's owner) has exited."""
    services = Services(settings)
    try:
        return {hit.id: np.asarray(hit.vector) for hit in services.store.scroll(limit=10_000, with_vectors=True).hits}
    finally:
        services.close()


def test_worker_ingests_the_folder_and_eager_mode_gives_the_same_points(media: Path, catalog_url: str, tmp_path: Path) -> None:
    """A folder and a URL, through a ``cpu`` worker (discovery, download) and a ``gpu`` worker
    (decode, embed, store: the store's one owner); then the same request in-process."""
    settings = distributed_settings(tmp_path / "distributed", catalog_url, allow_hosts=["127.0.0.1"])
    services = Services(settings)  # this process touches only the catalog and the broker
    make_image(tmp_path / "site" / "remote.png", "yellow")
    with (
        serve_folder(tmp_path / "site") as (base, _),
        running_worker(settings, tmp_path / "cpu.log", queues="cpu") as cpu_worker,
        running_worker(settings, tmp_path / "gpu.log", queues="gpu") as worker,
    ):
        request = IngestRequest(paths=[str(media), f"{base}/remote.png"])
        job = run_ingest(services, request)
        assert job.status == "done", worker.log_tail()
        cpu_log, gpu_log = cpu_worker.log_tail(50_000), worker.log_tail(50_000)
        assert "Task mmsearch.ingest.cpu.discover[" in cpu_log and "Task mmsearch.ingest.cpu.fetch[" in cpu_log
        assert "Task mmsearch.ingest.gpu.index[" in gpu_log
        assert "Task mmsearch.ingest.gpu" not in cpu_log and "Task mmsearch.ingest.cpu" not in gpu_log
        again = run_ingest(services, request)
        records = [services.catalog.get_media_by_uri(uri) for uri in (file_uri(media / "red.jpg"), f"{base}/remote.png")]
        assert all(r is not None and r.status == "indexed" and r.job_id == job.id for r in records)
        services.close()
        distributed = store_snapshot_after(worker, settings)

        eager_settings = base_settings(tmp_path / "eager", ingest={"allow_hosts": ["127.0.0.1"]})
        eager = Services(eager_settings)
        try:
            eager_job = run_ingest(eager, request)
        finally:
            eager.close()
    assert (job.discovered, job.indexed, job.skipped, job.failed) == (6, 6, 0, 0)
    assert (again.discovered, again.indexed, again.skipped) == (6, 0, 6)
    remote = point_id(MODEL, media_id(f"{base}/remote.png"), "image")
    assert set(distributed) == expected_ids(media) | {remote}
    assert (eager_job.discovered, eager_job.indexed) == (6, 6)
    in_process = store_snapshot(eager_settings)
    assert set(in_process) == set(distributed)
    for pid, vector in distributed.items():
        assert np.allclose(vector, in_process[pid], atol=1e-4), "the same file must give the same vector"


def store_snapshot_after(worker: Worker, settings: Settings) -> dict[str, np.ndarray]:
    assert worker.stop() is not None
    return store_snapshot(settings)


def test_a_killed_gpu_worker_s_work_resumes_within_a_minute_with_default_settings(catalog_url: str, tmp_path: Path) -> None:
    """SIGKILL of the gpu worker mid-job, default broker settings, a replacement started at once:
    the task it held comes back by itself and the job completes within 60 s of the kill."""
    folder = tmp_path / "many"
    colours = ["red", "green", "blue", "yellow"]
    # Enough two-photo tasks that the job is far from done when the kill lands (24 photos were
    # once all indexed in the half second between the check and the kill).
    images = [make_image(folder / f"img_{i:03d}.jpg", colours[i % 4], (96 + i, 72)) for i in range(96)]
    settings = distributed_settings(tmp_path / "data", catalog_url, task_batch_items=2)
    assert "visibility_timeout" not in settings.ingest.model_fields_set, "the defaults are what is under test"
    catalog = Catalog.open(catalog_url)
    job = create_job(catalog, IngestRequest(paths=[str(folder)]))
    with running_worker(settings, tmp_path / "cpu.log", queues="cpu") as cpu_worker:
        first = Worker(settings, tmp_path / "gpu-1.log", queues="gpu")
        try:
            first.wait_ready()
            dispatch_job(Services(settings), job.id)
            _wait_until(lambda: catalog.get_job(job.id).indexed >= 4, 180, first)
        finally:
            at_kill = catalog.get_job(job.id)
            first.kill()
            killed_at = time.monotonic()
        assert at_kill.indexed < len(images), "the worker must die mid-job for this test to mean anything"
        with running_worker(settings, tmp_path / "gpu-2.log", queues="gpu") as second:
            done = wait_for_job(catalog, job.id, timeout=120)
            resumed_in = time.monotonic() - killed_at
            assert done.status == "done", second.log_tail() + cpu_worker.log_tail()
    print(f"job completed {resumed_in:.1f} s after SIGKILL of its gpu worker")
    assert resumed_in <= 60, f"the job took {resumed_in:.0f} s to complete after the kill"
    assert done.discovered == len(images) and done.failed == 0
    assert done.indexed >= len(images)  # a batch killed between counting and marking is counted again
    statuses = {catalog.get_media_by_uri(file_uri(p)).status for p in images}  # type: ignore[union-attr]
    catalog.close()
    assert statuses == {"indexed"}
    points = store_snapshot(settings)
    assert set(points) == {image_point_id(p) for p in images}
    assert len(points) == len(images), "each photo indexed exactly once"


def test_a_task_running_longer_than_the_visibility_timeout_is_not_redelivered(catalog_url: str, tmp_path: Path) -> None:
    """A live worker keeps the messages it holds invisible, however long a video takes."""
    folder = tmp_path / "long"
    make_video(folder / "long.mp4", ["red", "blue", "green", "yellow"] * 12, seconds_each=2.0)
    for i in range(12):
        make_image(folder / f"img_{i:02d}.jpg", ["red", "green", "blue"][i % 3], (120 + i, 90))
    # The task must outlast the timeout several times over on any machine: 384 frames at 4 frames/s
    # take seconds even on a fast one (1.8 s for half of them here), against a 0.3 s timeout
    # renewed every 0.1 s.
    settings = distributed_settings(
        tmp_path / "data",
        catalog_url,
        task_batch_items=64,
        frame_rate=4.0,
        visibility_timeout=0.3,
        broker_restore_interval=0.15,
    )
    catalog = Catalog.open(catalog_url)
    try:
        with running_worker(settings, tmp_path / "worker.log") as worker:
            job = create_job(catalog, IngestRequest(paths=[str(folder)]))
            dispatch_job(Services(settings), job.id)
            done = wait_for_job(catalog, job.id, timeout=240)
            assert done.status == "done", worker.log_tail()
            log = worker.log_tail(200_000)
    finally:
        catalog.close()
    received = re.findall(r"Task mmsearch\.ingest\.gpu\.index\[([0-9a-f-]+)\] received", log)
    took = [float(s) for s in re.findall(r"Task mmsearch\.ingest\.gpu\.index\[[0-9a-f-]+\] succeeded in ([0-9.]+)s", log)]
    print(f"the embedding task ran {max(took or [0]):.1f} s against a {settings.ingest.visibility_timeout} s visibility timeout")
    assert took and max(took) > 3 * settings.ingest.visibility_timeout, f"the task was too short to test anything: {took}"
    assert len(received) == 1, log[-3000:]
    assert (done.discovered, done.indexed, done.failed) == (13, 13, 0)


def _wait_until(condition: object, timeout: float, worker: Worker) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        if worker.process.poll() is not None:
            raise AssertionError(f"worker died on its own:\n{worker.log_tail()}")
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout}s:\n{worker.log_tail()}")


def test_a_batch_whose_store_stays_down_is_recorded_as_failed_and_the_job_ends(catalog_url: str, tmp_path: Path) -> None:
    """Transient errors are retried with backoff; past the last retry the items fail with the reason."""
    folder = tmp_path / "few"
    images = [make_image(folder / f"{colour}.jpg", colour) for colour in ("red", "blue")]
    settings = base_settings(
        tmp_path / "data",
        catalog_url=catalog_url,
        broker_url=REDIS_URL,
        store_url="http://127.0.0.1:9",
        ingest={**scratch_queues(), "task_max_retries": 1},
    )
    catalog = Catalog.open(catalog_url)
    try:
        with running_worker(settings, tmp_path / "worker.log") as worker:
            job = create_job(catalog, IngestRequest(paths=[str(folder)]))
            dispatch_job(Services(settings), job.id)
            done = wait_for_job(catalog, job.id, timeout=180)
            assert done.status == "done", worker.log_tail()
            assert "retry" in worker.log_tail(20_000).lower()
        failures = catalog.job_failures(job.id)
        assert (done.discovered, done.indexed, done.failed) == (2, 0, 2)
        assert {f.uri for f in failures} == {file_uri(p) for p in images}
        assert all("gave up after 1 retries" in f.reason and "127.0.0.1:9" in f.reason for f in failures)
        assert {catalog.get_media_by_uri(file_uri(p)).status for p in images} == {"failed"}  # type: ignore[union-attr]
    finally:
        catalog.close()
