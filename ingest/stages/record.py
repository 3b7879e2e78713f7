"""Stage 5: commit outcomes — points to the store, counters and statuses to the catalog.

Outcomes are committed in groups: one store upsert for many small images costs one flush
instead of many. The order inside a group is fixed and matters for redelivered Celery tasks:
points first (idempotent), then the job's counters, then each item's status, which marks the
item done for this job. A crash between counting and marking can only make a redelivered task
count an item twice; it can never leave a job short of its discovered count, which would keep
it from finishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.discovery import Vanished, catalog_kind
from ingest.items import MediaItem
from ingest.stages.write import drop_stale_points
from ingest.tracker import JobTracker
from search.catalog import Catalog
from search.deletion import delete_media_items
from search.store import Point, VectorStore


@dataclass(frozen=True)
class Indexed:
    """An item embedded into ``points``, with what the catalog should remember about it."""

    item: MediaItem
    kind: str  # catalog kind: image | video | product
    points: list[Point]
    thumb: str | None
    content_hash: str | None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    partial: str | None = None  # why a video's frames stopped part-way (those before are indexed)
    notes: tuple[str, ...] = ()  # problems that cost no frame ("subtitles of X: reason"), listed on the job


@dataclass(frozen=True)
class Failed:
    """An item that could not be indexed, and the reason users will read."""

    item: MediaItem
    reason: str


Outcome = Indexed | Failed | Vanished


@dataclass(frozen=True)
class Recorder:
    catalog: Catalog
    store: VectorStore
    tracker: JobTracker
    model: str
    thumbnails_dir: Path

    def record(self, outcomes: Sequence[Outcome]) -> None:
        indexed = [o for o in outcomes if isinstance(o, Indexed)]
        failed = [o for o in outcomes if isinstance(o, Failed)]
        for vanished in (o for o in outcomes if isinstance(o, Vanished)):
            delete_media_items(self.store, self.catalog, self.thumbnails_dir, vanished.media_ids)
        self._store_points(indexed, failed)
        if indexed:
            self.tracker.indexed(len(indexed))
        for done in indexed:
            if done.partial is not None:  # counted as indexed, listed with the job's failures
                self.catalog.record_failure(self.tracker.job_id, done.item.uri, f"partially indexed: {done.partial}")
            for note in done.notes:
                self.catalog.record_failure(self.tracker.job_id, done.item.uri, note)
        for outcome in failed:
            self.tracker.failed(outcome.item.uri, outcome.reason)
        if indexed or failed:
            self.tracker.flush()  # counted in the catalog before any item is marked done
        for outcome in indexed:
            self._mark_indexed(outcome)
        for outcome in failed:
            self._mark_failed(outcome)

    def _store_points(self, indexed: Sequence[Indexed], failed: Sequence[Failed]) -> None:
        points = [p for outcome in indexed for p in outcome.points]
        if points:
            self.store.upsert(points)
        for outcome in indexed:
            if outcome.item.had_points:
                drop_stale_points(self.store, outcome.item.media_id, keep=outcome.points)
        for failure in failed:
            if failure.item.had_points:  # it changed into something unusable: old vectors lie
                drop_stale_points(self.store, failure.item.media_id, keep=())

    def _mark_indexed(self, outcome: Indexed) -> None:
        item = outcome.item
        if outcome.kind != catalog_kind(item.kind):  # the bytes disagreed with the extension
            self.catalog.upsert_media(item.uri, kind=outcome.kind, source_id=item.source_id, status="pending")
        self.catalog.set_media_status(
            item.media_id,
            "indexed" if outcome.partial is None else "partial",
            outcome.partial,
            point_count=len(outcome.points),
            model=self.model,
            thumbnail=outcome.thumb,
            content_hash=outcome.content_hash,
            width=outcome.width,
            height=outcome.height,
            duration=outcome.duration,
            metadata=outcome.metadata,
            job_id=self.tracker.job_id,
        )

    def _mark_failed(self, outcome: Failed) -> None:
        mark_failed(self.catalog, self.tracker.job_id, outcome)


def record_fetch_failures(catalog: Catalog, tracker: JobTracker, failures: Sequence[Failed]) -> None:
    """Failures of items that never reached the store (downloads): no points to drop."""
    for failure in failures:
        tracker.failed(failure.item.uri, failure.reason)
    if failures:
        tracker.flush()  # counted before marked, as in Recorder.record
    for failure in failures:
        mark_failed(catalog, tracker.job_id, failure)


def mark_failed(catalog: Catalog, job_id: str, outcome: Failed) -> None:
    """Record the item as failed with its reason (creating its row if it never got one)."""
    item = outcome.item
    catalog.upsert_media(
        item.uri,
        kind=catalog_kind(item.kind),
        source_id=item.source_id,
        status="failed",
        error=outcome.reason,
        job_id=job_id,
    )
    if item.had_points:
        catalog.set_media_status(item.media_id, "failed", outcome.reason, point_count=0)
