"""Enrichment after embedding: read the text in images (OCR) into their points' searchable text.

OCR costs about ten times what embedding an image does on a CPU, so it never runs on the
embedding path. An item is embedded and searchable first; a later pass reads it:

- embedded mode: ``OcrPass``, one background thread of the process that owns the store, started
  when an ingest job ends (one pass at a time; a job ending mid-pass asks for one more sweep);
- distributed mode: Celery tasks on their own ``enrich`` queue, a batch of media ids each
  (``ingest.tasks``), dispatched when a job is finalized.

What is left to read is in the catalog: an image or product photo needs OCR until its metadata
holds an ``ocr`` marker (``{status, engine, at, …}``) written after it was last indexed, so a
re-indexed (changed) file is read again and an unchanged one never is. Each pass is a job of
kind ``ocr`` in ``mmsearch jobs``: discovered = images to read, indexed = read with text,
skipped = read without text (or skipped by the engine's cheap no-text test), failed =
could not be decoded. The text goes into the payload's ``text`` field through the payload
contract, which derives the ``words`` the keyword index and the BM25 vector are built from;
``store.set_payload`` writes both.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.heartbeat import owner_heartbeat
from ingest.items import path_of_file_uri
from search.catalog import Catalog
from search.catalog.catalog import needs_enrichment
from search.catalog.schema import utcnow
from search.catalog.types import JobRecord, JobStatus, MediaRecord
from search.errors import MediaError
from search.media.image import decode_image
from search.media.ocr import OcrConfig, OcrEngine, OcrResult, OcrUnavailable, likely_has_text
from search.payload import MEDIA_ID, read_payload
from search.services import Services
from search.store.base import Filter, Match

log = logging.getLogger(__name__)

OCR_JOB_KIND = "ocr"
OCR_MARKER = "ocr"  # the media metadata key that says an item was read, how and when
OCR_KINDS = ("image", "product")
BATCH = 8  # images per counter update (and per Celery task)
_JOIN_S = 30.0  # how long shutdown waits for the image being read (an image stops within ocr.timeout)


@dataclass(frozen=True)
class Outcome:
    """What reading one item gave: its marker, and the text to merge into its points."""

    media_id: str
    status: str  # text, no_text, skipped, timeout, failed
    text: str = ""
    reason: str = ""
    engine: str = ""
    seconds: float = 0.0
    at: str = dataclasses.field(default_factory=lambda: utcnow().isoformat())  # when reading began

    def marker(self) -> dict[str, Any]:
        """``at`` is the start of the read: a file re-indexed while it was read is read again."""
        mark: dict[str, Any] = {"status": self.status, "engine": self.engine, "at": self.at}
        if self.reason:
            mark["reason"] = self.reason
        if self.seconds:
            mark["seconds"] = round(self.seconds, 3)
        if self.text:
            mark["chars"] = len(self.text)
        return mark


class ImageReader:
    """Decodes an item, runs the cheap no-text test, and loads the OCR engine only for the first
    image that may hold text: an archive of textless pictures never pays for the models.

    One per thread (engines are not thread-safe). ``engine_used`` says whether any image was
    read by the engine, which is when a pass becomes worth a job row.
    """

    def __init__(self, services: Services) -> None:
        self.config = OcrConfig.from_settings(services.settings.ocr)
        self.max_pixels = services.settings.ingest.max_image_pixels
        self._engine: OcrEngine | None = None
        self.engine_used = False

    def engine(self) -> OcrEngine:
        """Raises OcrUnavailable when no engine can run."""
        if self._engine is None:
            self._engine = OcrEngine(dataclasses.replace(self.config, skip_textless=False))  # the test runs here
        return self._engine

    def read(self, record: MediaRecord) -> Outcome:
        """OCR one catalogued item from its file; never raises for the file's content."""
        at = utcnow().isoformat()
        if not record.uri.startswith("file:"):
            return Outcome(record.id, "skipped", reason="remote media is not downloaded again for OCR")
        try:
            image = decode_image(path_of_file_uri(record.uri), self.max_pixels).image
        except (MediaError, OSError) as exc:
            return Outcome(record.id, "failed", reason=f"cannot decode for OCR: {exc}")
        if self.config.skip_textless and not likely_has_text(image):
            return Outcome(record.id, "skipped", reason="the pre-test found no text-like strokes")
        engine = self.engine()
        self.engine_used = True
        result: OcrResult = engine.read(image)
        return Outcome(record.id, result.status, result.text, result.reason, result.engine, result.seconds, at)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def write_outcomes(services: Services, outcomes: Sequence[Outcome]) -> None:
    """Merge the text into the items' points (payload ``text`` and derived ``words``), then
    mark the items done. Points first: a crash in between reads an item again, never loses it."""
    texts = {o.media_id: o.text for o in outcomes if o.text}
    if texts:
        updates = _payload_updates(services, texts)
        if updates:
            services.store.set_payload(updates)
    services.catalog.merge_media_metadata({o.media_id: {OCR_MARKER: o.marker()} for o in outcomes})


def _payload_updates(services: Services, texts: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Point id → new ``text`` and ``words`` for every image/product point of these items."""
    updates: dict[str, dict[str, Any]] = {}
    offset: str | None = None
    flt = Filter(must=(Match(MEDIA_ID, tuple(texts)),))
    while True:
        page = services.store.scroll(flt, limit=256, offset=offset)
        for hit in page.hits:
            payload = read_payload(hit.payload)
            if payload is None or payload.kind not in OCR_KINDS:
                continue
            text = merge_text(payload.text, texts[payload.media_id])
            updated = dataclasses.replace(payload, text=text)
            updates[hit.id] = {"text": updated.text, "words": updated.words}
        if page.next_offset is None:
            return updates
        offset = page.next_offset


def merge_text(existing: str | None, found: str) -> str:
    """The point's text (an EXIF caption, say) with the OCR text after it, once."""
    if not existing:
        return found
    if found in existing:
        return existing  # a pass redone after a crash between the two writes
    return f"{existing}\n{found}"


def tally(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Job counter deltas: indexed = with text, skipped = without, failed = unreadable."""
    with_text = sum(1 for o in outcomes if o.text)
    failed = sum(1 for o in outcomes if o.status == "failed")
    return {"indexed": with_text, "failed": failed, "skipped": len(outcomes) - with_text - failed}


def enrich_records(
    services: Services, reader: ImageReader, records: Sequence[MediaRecord], stop: threading.Event | None = None
) -> list[Outcome]:
    """Read and write one batch (a Celery task's work, and a step of the embedded pass);
    with ``stop`` set, the images read so far are written and the rest left for later."""
    outcomes = []
    for record in records:
        if stop is not None and stop.is_set():
            break
        outcomes.append(reader.read(record))
    write_outcomes(services, outcomes)
    return outcomes


def ocr_progress(catalog: Catalog) -> str:
    """``ocr: N of M images, K with text`` from the catalog's markers (doctor, job summaries)."""
    counts = catalog.enrichment_counts(OCR_MARKER, OCR_KINDS)
    total = sum(counts.values())
    return f"ocr: {total - counts.get('pending', 0)} of {total} images, {counts.get('text', 0)} with text"


def start_ocr_job(catalog: Catalog, pending: int, owner: str | None = None) -> JobRecord:
    """A running job of kind ``ocr`` that counts ``pending`` images to read."""
    job = catalog.create_job(OCR_JOB_KIND, {"images": pending}, owner=owner)
    catalog.start_job(job.id, owner=owner)
    return catalog.add_to_job(job.id, discovered=pending)


def run_ocr_pass(services: Services, stop: threading.Event, owner: str | None = None) -> JobRecord | None:
    """Read every image not read yet, in batches, until done or ``stop`` is set.

    Returns the pass's ``ocr`` job, or None when OCR is off or unavailable, nothing waits, or
    every waiting image failed the no-text test (they are marked, and no job row is made).
    """
    settings, catalog = services.settings, services.catalog
    if not settings.ocr.enabled:
        return None
    pending = catalog.media_to_enrich(OCR_MARKER, OCR_KINDS, limit=1_000_000)
    if not pending:
        return None
    reader = ImageReader(services)
    heartbeat = owner_heartbeat(catalog, owner, settings.ingest.heartbeat_interval) if owner else None
    run = _PassJob(catalog, len(pending), owner)
    try:
        if heartbeat is not None:
            heartbeat.start()
        for start in range(0, len(pending), BATCH):
            if stop.is_set():
                return run.finish("cancelled")
            outcomes = enrich_records(services, reader, pending[start : start + BATCH], stop)
            if run.count(tally(outcomes), reader.engine_used):
                return run.job
            if stop.is_set():
                return run.finish("cancelled")
        return run.finish("done")
    except OcrUnavailable as exc:
        log.warning("OCR enrichment skipped: %s", exc)
        return run.finish("failed", str(exc))
    except Exception as exc:
        log.exception("OCR pass failed")
        return run.finish("failed", f"{type(exc).__name__}: {exc}")
    finally:
        reader.close()
        if heartbeat is not None:
            heartbeat.stop()


class _PassJob:
    """The ``ocr`` job of one pass, created once the engine has read an image (before that,
    counts are held here): a pass over textless pictures leaves no job row behind."""

    def __init__(self, catalog: Catalog, pending: int, owner: str | None) -> None:
        self.catalog, self.pending, self.owner = catalog, pending, owner
        self.job: JobRecord | None = None
        self._held = {"indexed": 0, "skipped": 0, "failed": 0}

    def count(self, deltas: dict[str, int], engine_used: bool) -> bool:
        """Add a batch's counts; True when the job was cancelled meanwhile."""
        if self.job is None:
            self._held = {k: v + deltas[k] for k, v in self._held.items()}
            if not engine_used:
                return False
            self.job = start_ocr_job(self.catalog, self.pending, self.owner)
            deltas = self._held
        self.job = self.catalog.add_to_job(self.job.id, **deltas)
        return self.job.stopped

    def finish(self, status: JobStatus, error: str | None = None) -> JobRecord | None:
        if self.job is None and status != "failed":
            return None
        if self.job is None:
            self.job = start_ocr_job(self.catalog, self.pending, self.owner)
            self.job = self.catalog.add_to_job(self.job.id, **self._held)
        return self.catalog.finish_job(self.job.id, status, error=error)


# -- distributed mode: a batch of media ids per Celery task on the enrich queue ---------------


def dispatch_ocr(services: Services, send: Callable[[str, list[str]], None]) -> JobRecord | None:
    """An ingest job was finalized: make an ``ocr`` job of what waits and send it in batches
    (``send(job_id, media_ids)``). A second dispatch of the same items is harmless: each task
    reads only what is still unread when it runs."""
    if not services.settings.ocr.enabled:
        return None
    catalog = services.catalog
    pending = catalog.media_to_enrich(OCR_MARKER, OCR_KINDS, limit=1_000_000)
    if not pending:
        return None
    job = start_ocr_job(catalog, len(pending))
    for start in range(0, len(pending), BATCH):
        send(job.id, [record.id for record in pending[start : start + BATCH]])
    return job


def ocr_batch(services: Services, reader: ImageReader, job_id: str, media_ids: Sequence[str]) -> JobRecord:
    """One task's work: read the items still unread, count them all, finish the job with the last batch.

    Items already read (a redelivered task, a second dispatch) or gone count as skipped, so
    the counters always reach ``discovered``. OcrUnavailable fails the job with its reason.
    """
    catalog = services.catalog
    job = catalog.get_job(job_id)
    if job.finished:
        return job
    records = catalog.get_media_many(media_ids)
    waiting = {
        r.id
        for r in records.values()
        if r.kind in OCR_KINDS and r.status in ("indexed", "partial") and needs_enrichment(r, OCR_MARKER)
    }
    try:
        outcomes = enrich_records(services, reader, [records[i] for i in media_ids if i in waiting])
    except OcrUnavailable as exc:
        return catalog.finish_job(job_id, "failed", error=str(exc))
    counts = tally(outcomes)
    counts["skipped"] += len(media_ids) - len(outcomes)
    job = catalog.add_to_job(job_id, **counts)
    if job.processed >= job.discovered:
        job = catalog.finish_job(job_id, "done")
    return job


class OcrPass:
    """The embedded-mode background pass: at most one thread, started after each ingest job.

    ``request()`` is cheap and never blocks: it starts the thread, or, when a pass runs already,
    asks it to sweep once more when it ends (the job that just finished added new images).
    ``close()`` stops it between two images and waits a bounded time.
    """

    def __init__(self, services: Services, owner: str | None = None, on_done: Callable[[JobRecord], None] | None = None) -> None:
        self.services = services
        self.owner = owner
        self.on_done = on_done
        self._stop = threading.Event()
        self._again = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Read what the last job added, in the background (no-op when OCR is off)."""
        if not self.services.settings.ocr.enabled or self._stop.is_set():
            return
        with self._lock:
            self._again.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ocr-pass", daemon=True)
                self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the pass to finish; True when it did."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def close(self, timeout: float = _JOIN_S) -> None:
        """Stop after the image being read; wait at most ``timeout`` seconds."""
        self._stop.set()
        if not self.join(timeout):
            log.warning("the OCR pass did not stop within %.0f s; it ends with the process", timeout)

    def _loop(self) -> None:
        while True:
            with self._lock:  # under the lock, so a request() either sees this thread alive or starts one
                if not self._again.is_set() or self._stop.is_set():
                    self._thread = None
                    return
                self._again.clear()
            try:
                job = run_ocr_pass(self.services, self._stop, self.owner)
            except Exception:
                log.exception("the OCR pass failed")
                continue
            if job is not None and self.on_done is not None:
                self.on_done(job)
