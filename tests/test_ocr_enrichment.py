"""OCR enrichment after embedding: a real folder, the embedded ingest path, the real engine.

A rendered street sign and a plain photo are ingested through ``BackgroundLauncher`` (the
API's embedded runner); the OCR pass runs on its own thread after the job and puts the sign's
words into its point's searchable text, where keyword search (BM25 over the payload's derived
``words``) finds it. The plain photo is marked done without text, and nothing is read twice.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ingest.enrich import OCR_JOB_KIND, OCR_KINDS, OCR_MARKER, ocr_progress, run_ocr_pass
from ingest.jobs import BackgroundLauncher, run_ingest
from mmsearch.doctor import run_checks
from search.catalog import Catalog
from search.catalog.types import JobRecord
from search.ids import media_id
from search.media.ocr import available
from search.services import IngestRequest, Services
from search.store.keywords import KeywordQuery
from tests._ingest_support import (
    REDIS_URL,
    base_settings,
    file_uri,
    image_point_id,
    redis_available,
    running_worker,
    scratch_postgres,
    scratch_queues,
)

LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SIGN_WORDS = ("PARKING", "TICKETS", "STATION")


def _sign(path: Path) -> Path:
    """Dark capitals on a light board over a noisy wall, saved as a JPEG photo."""
    if not Path(LATIN_FONT).exists():
        pytest.skip("no DejaVu font to draw with (apt-get install fonts-dejavu-core)")
    rng = np.random.default_rng(3)
    wall = np.clip(110 + rng.normal(0, 6, (480, 720, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(wall)
    draw = ImageDraw.Draw(image)
    draw.rectangle((50, 40, 670, 440), fill=(245, 240, 225), outline=(30, 30, 30), width=6)
    for i, word in enumerate(SIGN_WORDS):
        draw.text((100, 80 + i * 110), word, font=ImageFont.truetype(LATIN_FONT, 72), fill=(25, 30, 40))
    image.save(path, format="JPEG", quality=90)
    return path


def _plain_photo(path: Path) -> Path:
    """A smooth sky-like gradient: nothing for the no-text test to find."""
    ramp = np.linspace(0, 1, 480)[:, None, None]
    sky = (np.array([90, 140, 220]) * (1 - ramp) + np.array([200, 220, 240]) * ramp) * np.ones((1, 640, 1))
    Image.fromarray(sky.astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    _sign(root / "board.jpg")
    _plain_photo(root / "sky.jpg")
    return root


def test_a_reindexed_item_waits_for_ocr_again_and_a_marked_one_does_not(tmp_path: Path) -> None:
    """The marker rule on a real SQLite catalog: read once per indexing, whatever the metadata holds."""
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.sqlite3'}") as catalog:
        photo = catalog.upsert_media("file:///p/sign.jpg", kind="image", status="indexed", metadata={"exif": {"iso": 100}})
        catalog.upsert_media("file:///p/clip.mp4", kind="video", status="indexed")  # videos are not OCR'd
        catalog.upsert_media("file:///p/broken.jpg", kind="image", status="failed", error="not an image")
        assert [r.id for r in catalog.media_to_enrich(OCR_MARKER, OCR_KINDS)] == [photo.id]
        mark = {"status": "text", "engine": "rapidocr", "at": datetime.now(timezone.utc).isoformat()}
        assert catalog.merge_media_metadata({photo.id: {OCR_MARKER: mark}, "no-such-id": {OCR_MARKER: mark}}) == 1
        stored = catalog.get_media(photo.id)
        assert stored.metadata == {"exif": {"iso": 100}, OCR_MARKER: mark} and stored.indexed_at == photo.indexed_at
        assert catalog.media_to_enrich(OCR_MARKER, OCR_KINDS) == []
        assert catalog.enrichment_counts(OCR_MARKER, OCR_KINDS) == {"text": 1}
        catalog.set_media_status(photo.id, "indexed")  # the file changed and was embedded again
        assert [r.id for r in catalog.media_to_enrich(OCR_MARKER, OCR_KINDS)] == [photo.id]


def _services(tmp_path: Path, **ocr: object) -> Services:
    ok, reason = available()
    if not ok:
        pytest.skip(f"no OCR engine: {reason}")
    return Services(base_settings(tmp_path / "data", ocr={"enabled": True, "timeout": 60.0, **ocr}))


@pytest.mark.slow  # an ingest and real OCR reads: 20-80 s on a shared CPU
def test_the_pass_after_an_embedded_job_makes_a_sign_findable_by_its_words(tmp_path: Path, folder: Path) -> None:
    services = _services(tmp_path)
    launcher = BackgroundLauncher(services)
    try:
        job_id = launcher(IngestRequest(paths=[str(folder)]))
        launcher.join(timeout=120)
        assert services.catalog.get_job(job_id).status == "done"
        assert launcher.join_enrichment(timeout=120), "the OCR pass did not finish within 120 s"

        sign_point, sky_point = image_point_id(folder / "board.jpg"), image_point_id(folder / "sky.jpg")
        payloads = {hit.id: hit.payload for hit in services.store.retrieve([sign_point, sky_point])}
        read = set(payloads[sign_point]["words"].upper().split())
        assert set(SIGN_WORDS) <= read, f"OCR words {read}"
        assert "board" in payloads[sign_point]["words"]  # the file name's words stay searchable
        assert not payloads[sky_point].get("text")

        hits = services.store.query_hybrid(None, KeywordQuery("tickets"), limit=5)
        assert [hit.id for hit in hits] == [sign_point]

        catalog = services.catalog
        sign_mark = catalog.get_media(media_id(file_uri(folder / "board.jpg"))).metadata[OCR_MARKER]
        sky_mark = catalog.get_media(media_id(file_uri(folder / "sky.jpg"))).metadata[OCR_MARKER]
        assert sign_mark["status"] == "text" and sign_mark["engine"] in ("rapidocr", "tesseract")
        assert sky_mark["status"] in ("skipped", "no_text") and "chars" not in sky_mark
        assert catalog.media_to_enrich(OCR_MARKER, OCR_KINDS) == []

        (ocr_job,) = [job for job in catalog.list_jobs() if job.kind == OCR_JOB_KIND]
        assert (ocr_job.status, ocr_job.discovered, ocr_job.indexed, ocr_job.skipped, ocr_job.failed) == ("done", 2, 1, 1, 0)
        assert run_ocr_pass(services, threading.Event()) is None  # nothing is read twice
        assert ocr_progress(catalog) == "ocr: 2 of 2 images, 1 with text"
    finally:
        launcher.close()
        services.close()


@pytest.mark.slow  # an ingest and real OCR reads: 20-80 s on a shared CPU
def test_with_ocr_off_nothing_is_read_and_everything_still_waits(tmp_path: Path, folder: Path) -> None:
    services = _services(tmp_path, enabled=False)
    launcher = BackgroundLauncher(services)
    try:
        launcher(IngestRequest(paths=[str(folder)]))
        launcher.join(timeout=120)
        assert launcher.join_enrichment(timeout=5)
        assert run_ocr_pass(services, threading.Event()) is None
        waiting = {r.uri for r in services.catalog.media_to_enrich(OCR_MARKER, OCR_KINDS)}
        assert waiting == {file_uri(folder / "board.jpg"), file_uri(folder / "sky.jpg")}
        assert not [job for job in services.catalog.list_jobs() if job.kind == OCR_JOB_KIND]
    finally:
        launcher.close()
        services.close()
    checks = {check.name: check for check in run_checks(services.settings)}  # opens the store itself
    assert checks["ocr"].ok and checks["ocr"].detail.startswith("off (MMSEARCH_OCR__ENABLED=false)")
    assert checks["ocr"].detail.endswith("ocr: 0 of 2 images, 0 with text")
    assert checks["formats"].ok and checks["formats"].detail


@pytest.mark.slow  # an ingest and real OCR reads: 20-80 s on a shared CPU
def test_closing_stops_a_pass_promptly(tmp_path: Path, folder: Path) -> None:
    sign = (folder / "board.jpg").read_bytes()
    for i in range(12):  # distinct files (one trailing byte apart), each a sign worth reading
        (folder / f"copy{i}.jpg").write_bytes(sign + bytes([i]))
    services = _services(tmp_path)
    launcher = BackgroundLauncher(services)
    try:
        launcher(IngestRequest(paths=[str(folder)]))
        launcher.join(timeout=120)
        started = time.monotonic()
        launcher.close()  # stops between two images, long before 13 signs are read
        assert time.monotonic() - started < 30
        assert launcher.join_enrichment(timeout=1)
        assert services.catalog.media_to_enrich(OCR_MARKER, OCR_KINDS), "the pass read everything instead of stopping"
        for job in services.catalog.list_jobs():
            if job.kind == OCR_JOB_KIND:
                assert job.status == "cancelled" and job.processed < job.discovered
    finally:
        launcher.close()
        services.close()


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_celery_reads_the_sign_on_the_enrich_queue_after_the_job(tmp_path: Path, folder: Path) -> None:
    """A ``cpu`` worker and a ``gpu,enrich`` worker (the Edge store admits one process, so the
    worker that embeds also enriches; with a Qdrant server ``--queues enrich`` runs apart)."""
    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")
    try:
        scratch = scratch_postgres()
        catalog_url = scratch.__enter__()
    except Exception as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    try:
        queues = {**scratch_queues(), "enrich_queue": f"test-enrich-{secrets.token_hex(4)}"}
        settings = base_settings(
            tmp_path / "data",
            catalog_url=catalog_url,
            broker_url=REDIS_URL,
            ingest=queues,
            ocr={"enabled": True, "timeout": 60.0},
        )
        services = Services(settings)  # this process touches only the catalog and the broker
        with (
            running_worker(settings, tmp_path / "cpu.log", queues="cpu"),
            running_worker(settings, tmp_path / "gpu.log", queues="gpu,enrich") as worker,
        ):
            assert run_ingest(services, IngestRequest(paths=[str(folder)])).status == "done"
            ocr_job = _wait_for_ocr_job(services, timeout=180)
            assert ocr_job is not None and ocr_job.status == "done", worker.log_tail()
            assert "Task mmsearch.ingest.enrich.ocr[" in worker.log_tail(50_000)
            assert (ocr_job.discovered, ocr_job.indexed, ocr_job.skipped, ocr_job.failed) == (2, 1, 1, 0)
            services.close()
            assert worker.stop() is not None
        reader = Services(settings)
        try:
            (sign,) = reader.store.retrieve([image_point_id(folder / "board.jpg")])
            assert set(SIGN_WORDS) <= set(sign.payload["words"].upper().split())
        finally:
            reader.close()
    finally:
        scratch.__exit__(None, None, None)


def _wait_for_ocr_job(services: Services, timeout: float) -> JobRecord | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [job for job in services.catalog.list_jobs() if job.kind == OCR_JOB_KIND]
        if jobs and jobs[0].finished:
            return jobs[0]
        time.sleep(0.5)
    return None
