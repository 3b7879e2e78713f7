"""Stage 5: commit outcomes — points to the store, counters and statuses to the catalog.

Outcomes are committed in groups: one store upsert for many small images costs one flush
instead of many, and the catalog gets one transaction per group, a few statements whatever its
size (``Catalog.commit_outcomes``: bulk upserts on SQLite and PostgreSQL alike). The order is
fixed and matters for redelivered Celery tasks: points first (idempotent), then, together, the
job's counters, its failure list and each item's status, which marks the item done for this
job. Counts and marks are committed atomically, so a job can never be left short of its
discovered count, which would keep it from finishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.discovery import Vanished, catalog_kind
from ingest.items import MediaItem
from ingest.stages.write import drop_stale_points_of
from ingest.tracker import JobTracker
from search.catalog import Catalog, MediaWrite
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
        """Commit a group: one store upsert, one stale-point delete, one catalog transaction."""
        indexed = [o for o in outcomes if isinstance(o, Indexed)]
        failed = [o for o in outcomes if isinstance(o, Failed)]
        for vanished in (o for o in outcomes if isinstance(o, Vanished)):
            delete_media_items(self.store, self.catalog, self.thumbnails_dir, vanished.media_ids)
        self._store_points(indexed, failed)
        if not (indexed or failed):
            return
        job_id = self.tracker.job_id
        self.tracker.commit(
            indexed=len(indexed),
            failures=[(o.item.uri, o.reason) for o in failed],
            # a partial video counts as indexed and is listed with the job's failures
            notes=[(o.item.uri, f"partially indexed: {o.partial}") for o in indexed if o.partial is not None]
            + [(o.item.uri, note) for o in indexed for note in o.notes],
            writes=[self._indexed_row(o) for o in indexed] + [failed_row(job_id, o) for o in failed],
        )

    def _store_points(self, indexed: Sequence[Indexed], failed: Sequence[Failed]) -> None:
        points = [p for outcome in indexed for p in outcome.points]
        if points:
            self.store.upsert(points)
        stale: dict[str, Sequence[Point]] = {o.item.media_id: o.points for o in indexed if o.item.had_points}
        # an item that changed into something unusable: its old vectors lie
        stale.update({o.item.media_id: () for o in failed if o.item.had_points})
        if stale:
            drop_stale_points_of(self.store, stale)

    def _indexed_row(self, outcome: Indexed) -> MediaWrite:
        """The row of an indexed item; ``kind`` is what the bytes turned out to be."""
        item = outcome.item
        return MediaWrite(
            item.uri,
            kind=outcome.kind,  # type: ignore[arg-type]
            status="indexed" if outcome.partial is None else "partial",
            error=outcome.partial,
            source_id=item.source_id,
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


def record_fetch_failures(tracker: JobTracker, failures: Sequence[Failed]) -> None:
    """Failures of items that never reached the store (downloads): counted, listed and marked
    in one transaction, with no points to drop."""
    if failures:
        tracker.commit(
            failures=[(f.item.uri, f.reason) for f in failures],
            writes=[failed_row(tracker.job_id, f) for f in failures],
        )


def failed_row(job_id: str, outcome: Failed) -> MediaWrite:
    """The row of a failed item with its reason (created if it never got one); no points left."""
    item = outcome.item
    return MediaWrite(
        item.uri,
        kind=catalog_kind(item.kind),
        source_id=item.source_id,
        status="failed",
        error=outcome.reason,
        job_id=job_id,
        point_count=0 if item.had_points else None,
    )
