"""Fault injection at every stage of the ingest engine: a failure anywhere ends the run promptly.

The parts are real (Qdrant Edge, SQLite, the bundled model, Pillow and PyAV files); a failure is
injected by a small wrapper around a real part that raises at a chosen call, after an optional
delay (a database that waits out its busy timeout, then gives up). Each test checks three things:
the run ends within a few seconds of the fault, the job is marked failed with the reason, and
work committed before the fault is kept (every item the catalog calls indexed has its points,
and a rerun skips it). Every test has a timeout, so a deadlock fails instead of hanging.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from PIL import Image

from ingest import discovery
from ingest.discovery import DiscoveryContext, discover_request
from ingest.jobs import create_job, run_ingest
from ingest.pipeline import Pipeline, PipelineParts
from ingest.tracker import JobTracker
from mmsearch.ingest_command import print_summary
from search.catalog import Catalog
from search.catalog.catalog import CatalogUnavailable
from search.embedder import Embedder, load_embedder
from search.errors import StoreUnavailable
from search.fetch import Fetcher
from search.ids import media_id, point_id
from search.services import IngestRequest, Services
from search.settings import Settings
from search.store import Filter, Match, VectorStore
from tests._ingest_support import (
    COLOURS,
    MODEL,
    REPO,
    SharedModelServices,
    base_settings,
    file_uri,
    make_image,
    mmsearch_command,
    serve_folder,
    settings_env,
)

PROMPT_S = 5.0  # a run must end this soon after the fault (the stop protocol polls every 0.1 s)


# -- faults: real parts that raise at a chosen call ------------------------------------------------


class Fault:
    """Raises ``error`` on the ``nth`` call (1-based) after ``delay`` seconds; later calls pass.

    ``raised_at`` (monotonic) lets a test measure how long the run took to stop after the fault.
    """

    def __init__(self, nth: int, error: BaseException, delay: float = 0.0) -> None:
        self.nth, self.error, self.delay = nth, error, delay
        self.calls = 0
        self.raised_at: float | None = None
        self._lock = threading.Lock()

    def hit(self) -> None:
        with self._lock:
            self.calls += 1
            due = self.calls == self.nth
        if due:
            time.sleep(self.delay)
            self.raised_at = time.monotonic()
            raise self.error


class FaultyCatalog(Catalog):
    """The real catalog; the methods named in ``faults`` go through their Fault first."""

    faults: dict[str, Fault]

    def _check(self, name: str) -> None:
        fault = self.faults.get(name)
        if fault is not None:
            fault.hit()

    def upsert_media(self, *args: Any, **kwargs: Any) -> Any:
        self._check("upsert_media")
        return super().upsert_media(*args, **kwargs)

    def set_media_status(self, *args: Any, **kwargs: Any) -> Any:
        self._check("set_media_status")
        return super().set_media_status(*args, **kwargs)

    def get_media_by_uri(self, uri: str) -> Any:
        self._check("get_media_by_uri")
        return super().get_media_by_uri(uri)

    def write_media(self, *args: Any, **kwargs: Any) -> Any:
        self._check("write_media")
        return super().write_media(*args, **kwargs)

    def commit_outcomes(self, *args: Any, **kwargs: Any) -> Any:
        self._check("commit_outcomes")
        return super().commit_outcomes(*args, **kwargs)


class FaultyStore:
    """The real store, whose ``upsert`` goes through a Fault first."""

    def __init__(self, store: VectorStore, upsert: Fault | None = None) -> None:
        self._store, self._upsert = store, upsert

    def upsert(self, points: Any) -> None:
        if self._upsert is not None:
            self._upsert.hit()
        self._store.upsert(points)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class FaultyEmbedder:
    """The real embedder with a small batch and faults; ``slow_preprocess`` makes decoding the
    bottleneck (large photos), so the embedding thread idles on an empty batch between items."""

    def __init__(
        self,
        embedder: Embedder,
        batch_size: int = 2,
        encode: Fault | None = None,
        preprocess: Fault | None = None,
        slow_preprocess: float = 0.0,
    ) -> None:
        self._embedder = embedder
        self.model_name, self.image_size, self.dim = embedder.model_name, embedder.image_size, embedder.dim
        self.device, self.transform = embedder.device, embedder.transform  # what batched decoding reads
        self.batch_size = batch_size
        self._encode, self._preprocess, self._slow = encode, preprocess, slow_preprocess

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        if self._preprocess is not None:
            self._preprocess.hit()
        time.sleep(self._slow)
        return self._embedder.preprocess(image)

    def encode_image_tensors(self, batch: torch.Tensor) -> np.ndarray:
        if self._encode is not None:
            self._encode.hit()
        return self._embedder.encode_image_tensors(batch)


class FaultyServices(SharedModelServices):
    """Services whose catalog, store and embedder are the real ones behind the given faults."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        *,
        catalog_faults: dict[str, Fault] | None = None,
        store_upsert: Fault | None = None,
        **embedder_faults: Any,
    ) -> None:
        super().__init__(settings, embedder)
        self.real_embedder = embedder
        self._embedder = FaultyEmbedder(embedder, **embedder_faults)  # type: ignore[assignment]
        catalog = FaultyCatalog.open(settings.resolved_catalog_url)
        catalog.faults = catalog_faults or {}
        self._catalog = catalog
        self._store_upsert = store_upsert

    @property
    def store(self) -> VectorStore:
        return FaultyStore(super().store, self._store_upsert)  # type: ignore[return-value]


# -- fixtures and checks -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return load_embedder(base_settings(tmp_path_factory.mktemp("model")))


def image_folder(root: Path, count: int) -> list[str]:
    """``count`` small JPEGs in ``root``; returns their URIs."""
    colours = ["red", "green", "blue", "yellow"]
    return [file_uri(make_image(root / f"img_{i:03d}.jpg", colours[i % 4], (80 + i % 40, 64))) for i in range(count)]


def settings_for(tmp_path: Path, **ingest: Any) -> Settings:
    return base_settings(tmp_path / "data", ingest={"decode_workers": 2, **ingest})


def assert_committed_work_is_kept(services: Services, uris: Iterable[str]) -> int:
    """Every image the catalog calls indexed has its point in the store; returns how many."""
    indexed = [uri for uri in uris if _status(services, uri) == "indexed"]
    stored = {hit.id for hit in services.store.scroll(limit=10_000).hits}
    assert {_point_of(uri) for uri in indexed} <= stored
    return len(indexed)


def _status(services: Services, uri: str) -> str | None:
    record = services.catalog.get_media_by_uri(uri)
    return None if record is None else record.status


def _point_of(uri: str) -> str:
    return point_id(MODEL, media_id(uri), "image")


def assert_rerun_completes(settings: Settings, embedder: Embedder, request: IngestRequest, uris: list[str], kept: int) -> None:
    """A second run without faults skips the committed items and indexes the rest."""
    services = SharedModelServices(settings, embedder)
    try:
        job = run_ingest(services, request)
        assert (job.status, job.failed, job.skipped, job.indexed) == ("done", 0, kept, len(uris) - kept)
        stored = {hit.id for hit in services.store.scroll(limit=10_000).hits}
        assert stored == {_point_of(uri) for uri in uris}
    finally:
        services.close()


def raising_after(stream: Iterable[Any], count: int, fault: Fault) -> Iterator[Any]:
    """The first ``count`` entries of ``stream``, then ``fault`` raises (a source that breaks)."""
    for index, entry in enumerate(stream):
        if index == count:
            break
        yield entry
    fault.hit()


# -- the discovery stream ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_stream_that_raises_while_the_embedder_waits_ends_the_run(embedder: Embedder, tmp_path: Path) -> None:
    """The reported deadlock: the embedding thread idles on an empty batch when discovery breaks."""
    folder = tmp_path / "media"
    images = image_folder(folder, 6)
    settings = settings_for(tmp_path)
    services = FaultyServices(settings, embedder)
    catalog, store = services.catalog, services.store
    job = create_job(catalog, IngestRequest(paths=[str(folder)]))
    tracker = JobTracker(catalog, job.id)
    fault = Fault(1, OSError("the network share went away"), delay=1.0)  # the first items are embedded by then
    try:
        with Fetcher(settings.ingest) as fetcher:
            parts = PipelineParts(settings, catalog, store, services.embedder, fetcher, tracker)
            ctx = DiscoveryContext(catalog, settings.ingest, fetcher, tracker, embedder.model_name)
            with pytest.raises(OSError, match="network share"):
                Pipeline(parts, redelivered=False).run(
                    raising_after(discover_request(ctx, IngestRequest(paths=[str(folder)])), 2, fault)
                )
        assert fault.raised_at is not None and time.monotonic() - fault.raised_at < PROMPT_S
        assert assert_committed_work_is_kept(services, images) == 2
    finally:
        services.close()


@pytest.mark.timeout(60)
def test_discovery_failing_in_the_catalog_fails_the_job_with_the_reason(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "media"
    images = image_folder(folder, 6)
    settings = settings_for(tmp_path)
    monkeypatch.setattr(discovery, "ADMIT_CHUNK", 2)  # discovery registers items two at a time
    fault = Fault(2, CatalogUnavailable("database is locked"), delay=1.5)  # the first two are indexed by then
    services = FaultyServices(settings, embedder, catalog_faults={"write_media": fault})
    try:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        assert fault.raised_at is not None and time.monotonic() - fault.raised_at < PROMPT_S
        assert job.status == "failed" and job.error == "CatalogUnavailable: database is locked"
        kept = assert_committed_work_is_kept(services, images)
        assert kept == 2
    finally:
        services.close()
    assert_rerun_completes(settings, embedder, IngestRequest(paths=[str(folder)]), images, kept)


# -- prefetch (decode) threads -------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_catalog_failure_in_a_prefetch_thread_fails_the_job(embedder: Embedder, tmp_path: Path) -> None:
    """Remote items are admitted in the prefetch threads after download: the catalog goes away there."""
    site = tmp_path / "site"
    image_folder(site, 6)
    settings = settings_for(tmp_path, allow_hosts=["127.0.0.1"], http_retries=0)
    fault = Fault(3, CatalogUnavailable("database is locked"), delay=1.0)
    services = FaultyServices(settings, embedder, catalog_faults={"get_media_by_uri": fault})
    with serve_folder(site) as (base, _):
        urls = [f"{base}/img_{i:03d}.jpg" for i in range(6)]
        request = IngestRequest(paths=urls)
        try:
            job = run_ingest(services, request)
            assert fault.raised_at is not None and time.monotonic() - fault.raised_at < PROMPT_S
            assert job.status == "failed" and job.error == "CatalogUnavailable: database is locked"
            kept = assert_committed_work_is_kept(services, urls)
            assert kept >= 2
        finally:
            services.close()
        assert_rerun_completes(settings, embedder, request, urls, kept)


@pytest.mark.timeout(60)
def test_a_bug_in_decoding_one_item_fails_that_item_and_the_job_goes_on(embedder: Embedder, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    images = image_folder(folder, 5)
    fault = Fault(2, RuntimeError("resize kernel crashed"))
    services = FaultyServices(settings_for(tmp_path), embedder, preprocess=fault)
    try:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        assert (job.status, job.indexed, job.failed) == ("done", 4, 1)
        [failure] = services.catalog.job_failures(job.id)
        assert failure.reason == "internal error: RuntimeError: resize kernel crashed"
        assert _status(services, failure.uri) == "failed"
        assert assert_committed_work_is_kept(services, images) == 4
    finally:
        services.close()


# -- embedding ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_an_embedder_failure_fails_the_job_and_keeps_committed_batches(embedder: Embedder, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    images = image_folder(folder, 8)
    settings = settings_for(tmp_path)
    fault = Fault(3, RuntimeError("CUDA error: out of memory"), delay=1.0)  # the first two batches are written
    services = FaultyServices(settings, embedder, encode=fault, slow_preprocess=0.05)
    try:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        assert fault.raised_at is not None and time.monotonic() - fault.raised_at < PROMPT_S
        assert job.status == "failed" and job.error == "RuntimeError: CUDA error: out of memory"
        kept = assert_committed_work_is_kept(services, images)
        assert 2 <= kept < len(images)
    finally:
        services.close()
    assert_rerun_completes(settings, embedder, IngestRequest(paths=[str(folder)]), images, kept)


# -- the writer: store and catalog ---------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_store_write_failure_fails_the_job_and_keeps_earlier_groups(embedder: Embedder, tmp_path: Path) -> None:
    """The second reported deadlock: the writer fails while the embedding thread waits for input."""
    folder = tmp_path / "media"
    images = image_folder(folder, 16)  # decoding is still going on when the store fails
    settings = settings_for(tmp_path)
    fault = Fault(2, StoreUnavailable("qdrant edge: disk I/O error"), delay=0.3)
    services = FaultyServices(settings, embedder, store_upsert=fault, slow_preprocess=0.2)
    try:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        assert fault.raised_at is not None and time.monotonic() - fault.raised_at < PROMPT_S
        assert job.status == "failed" and job.error == "StoreUnavailable: qdrant edge: disk I/O error"
        kept = assert_committed_work_is_kept(services, images)
        assert 1 <= kept < len(images)
    finally:
        services.close()
    assert_rerun_completes(settings, embedder, IngestRequest(paths=[str(folder)]), images, kept)


@pytest.mark.timeout(60)
def test_a_catalog_write_failure_in_the_writer_fails_the_job(embedder: Embedder, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    images = image_folder(folder, 8)
    settings = settings_for(tmp_path)
    fault = Fault(2, CatalogUnavailable("server closed the connection unexpectedly"), delay=0.5)
    services = FaultyServices(settings, embedder, catalog_faults={"commit_outcomes": fault}, slow_preprocess=0.2)
    try:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        assert fault.raised_at is not None and time.monotonic() - fault.raised_at < PROMPT_S
        assert job.status == "failed" and job.error == "CatalogUnavailable: server closed the connection unexpectedly"
        kept = assert_committed_work_is_kept(services, images)
        assert 1 <= kept < len(images)
    finally:
        services.close()
    assert_rerun_completes(settings, embedder, IngestRequest(paths=[str(folder)]), images, kept)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault_at", ["store", "embedder"])
def test_a_failure_while_jpeg_batches_decode_ends_the_run_promptly(embedder: Embedder, tmp_path: Path, fault_at: str) -> None:
    """Batched decoding (DEVICE_DECODE=on): the embedding thread waits for decode slots and decoded
    batches too; those waits watch the stop signal like every other."""
    folder = tmp_path / "media"
    images = image_folder(folder, 24)
    settings = settings_for(tmp_path, device_decode="on", decode_batches_in_flight=2)
    fault = Fault(2, StoreUnavailable("qdrant edge: disk I/O error") if fault_at == "store" else RuntimeError("CUDA error"))
    faults: dict[str, Any] = {"store_upsert": fault} if fault_at == "store" else {"encode": fault}
    services = FaultyServices(settings, embedder, **faults)
    try:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        assert fault.raised_at is not None and time.monotonic() - fault.raised_at < PROMPT_S
        assert job.status == "failed" and job.error.endswith(str(fault.error))  # type: ignore[union-attr]
        kept = assert_committed_work_is_kept(services, images)
        assert kept < len(images)
    finally:
        services.close()
    assert_rerun_completes(settings, embedder, IngestRequest(paths=[str(folder)]), images, kept)


# -- the whole process ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_job_keeps_committed_work_and_a_rerun_completes(embedder: Embedder, tmp_path: Path) -> None:
    """A real ``mmsearch ingest`` process, killed with SIGKILL once it has committed some items."""
    folder = tmp_path / "media"
    images = image_folder(folder, 300)
    settings = base_settings(tmp_path / "data", embedder={"batch_size": 4}, ingest={"decode_workers": 1})
    settings.data_dir.mkdir(parents=True)
    with open(tmp_path / "ingest.log", "wb") as log:
        process = subprocess.Popen(
            mmsearch_command("ingest", str(folder)),
            cwd=REPO,
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            killed_at = _wait_for_indexed(settings, 8, process, tmp_path / "ingest.log")
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    assert killed_at < len(images), "the process must die mid-job for this test to mean anything"

    services = SharedModelServices(settings, embedder)
    try:
        kept = assert_committed_work_is_kept(services, images)
    finally:
        services.close()
    assert kept >= 8
    assert_rerun_completes(settings, embedder, IngestRequest(paths=[str(folder)]), images, kept)


def _wait_for_indexed(settings: Settings, count: int, process: subprocess.Popen[bytes], log: Path) -> int:
    """Poll the catalog (another process writes it) until ``count`` images are marked indexed."""
    deadline = time.monotonic() + 180
    with Catalog.open(settings.resolved_catalog_url) as catalog:  # safe while the other process opens it too
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"ingest exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            indexed = catalog.counts_by_kind_and_status().get("image", {}).get("indexed", 0)
            if indexed >= count:
                return indexed
            time.sleep(0.05)
    raise AssertionError(f"fewer than {count} items indexed in time:\n{log.read_text()[-3000:]}")


# -- partial videos ------------------------------------------------------------------------------------


def write_faststart_video(path: Path, colours: list[str], seconds_each: float = 2.0, fps: int = 8) -> Path:
    """An H.264 MP4 with its index first (as for the web), so a truncated copy still plays up to the cut.

    ``synthetic.video.write_video`` writes the index last: half of such a file has no index at all.
    """
    width, height = 96, 64
    rng = np.random.default_rng(7)
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"crf": "23", "preset": "veryfast", "threads": "1"}
        index = 0
        for colour in colours:
            for _ in range(int(seconds_each * fps)):
                pixels = np.zeros((height, width, 3), np.uint8)
                pixels[:] = COLOURS[colour]
                pixels[::4, ::4] = rng.integers(0, 255, (height // 4, width // 4, 3))  # detail, so every frame has bytes
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = index
                index += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.timeout(120)
def test_a_truncated_video_is_partially_indexed_with_the_time_reached(
    embedder: Embedder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    whole = write_faststart_video(folder / "whole.mp4", ["red", "green", "blue", "yellow"])
    cut = folder / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    services = SharedModelServices(settings_for(tmp_path), embedder)
    try:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        assert (job.status, job.indexed, job.failed) == ("done", 2, 0)

        complete = services.catalog.get_media_by_uri(file_uri(whole))
        assert complete is not None and (complete.status, complete.error) == ("indexed", None)
        record = services.catalog.get_media_by_uri(file_uri(cut))
        assert record is not None and record.status == "partial" and record.error is not None
        match = re.fullmatch(r"decoding stopped at (\d+\.\d) s of 8\.0 s: the video stream ends early .*", record.error)
        assert match, record.error
        reached = float(match.group(1))
        assert 1.0 <= reached <= 6.0 and record.metadata["decoded_until"] == reached
        frames = services.store.scroll(Filter(must=(Match("video_id", (record.id,)), Match("kind", ("frame",))))).hits
        assert sorted(hit.payload["t"] for hit in frames) == [float(t) for t in range(int(reached) + 1)]
        assert record.point_count > len(frames), "segments over the decoded part are indexed too"

        [failure] = services.catalog.job_failures(job.id)
        assert (failure.uri, failure.reason) == (file_uri(cut), f"partially indexed: {record.error}")
        print_summary(job, services.catalog)
        assert f"{file_uri(cut)}: partially indexed: decoding stopped at {reached:.1f} s" in capsys.readouterr().out

        again = run_ingest(services, IngestRequest(paths=[str(folder)]))
        assert (again.skipped, again.indexed) == (1, 1), "a partial video is tried again, like a failed one"
    finally:
        services.close()
