"""The catalog's vocabulary: allowed kinds and statuses, and the frozen records it returns.

Records are plain dataclasses copied out of a row, so callers never hold a database session
and can pass them across threads, processes and task boundaries freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

SourceKind = Literal["folder", "urls", "crawl", "manifest", "url"]
MediaKind = Literal["image", "video", "product"]
MediaStatus = Literal["pending", "indexed", "partial", "failed", "deleted"]  # partial: indexed up to a decode error
JobStatus = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]

SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
MEDIA_KINDS: tuple[str, ...] = get_args(MediaKind)
MEDIA_STATUSES: tuple[str, ...] = get_args(MediaStatus)
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
FINISHED_JOB_STATUSES: tuple[str, ...] = ("done", "failed", "cancelled")
RESUMABLE_JOB_STATUSES: tuple[str, ...] = ("interrupted", "cancelled")  # the next run of the same request resumes these


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """Where media comes from: a folder, a URL list, a crawl seed, a manifest or one URL."""

    id: str
    kind: str
    uri: str
    options: dict[str, Any]
    created_at: datetime
    last_scan_at: datetime | None


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """One image, video or product photo, and how far ingestion got with it.

    ``mtime`` is seconds since the epoch as ``os.stat`` reports it; ``thumbnail`` is relative to
    the settings' thumbnails_dir; ``point_count`` is how many vectors the item has in the store.
    """

    id: str
    uri: str
    source_id: str | None
    kind: str
    status: str
    error: str | None
    content_hash: str | None
    size_bytes: int | None
    mtime: float | None
    width: int | None
    height: int | None
    duration: float | None
    metadata: dict[str, Any] = field(hash=False)
    thumbnail: str | None
    point_count: int
    model: str | None
    job_id: str | None
    created_at: datetime
    updated_at: datetime
    indexed_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """An ingestion run and its progress counters.

    ``owner`` is the process running an embedded job (``owners.JobOwner``; None for a
    distributed one) and ``heartbeat_at`` when someone last worked on it. An ``interrupted``
    job lost its runner; it comes back to life if that runner reappears (a late heartbeat, a
    redelivered task), unless a later run already took it over (``resumed_by``).
    """

    id: str
    kind: str
    params: dict[str, Any] = field(hash=False)
    status: str
    discovered: int
    indexed: int
    skipped: int
    failed: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    owner: str | None = None
    heartbeat_at: datetime | None = None
    resumed_from: str | None = None  # the interrupted or cancelled job this run continues
    resumed_by: str | None = None  # the later run that continued this one

    @property
    def processed(self) -> int:
        """Items the job is done with, whatever the outcome (for progress bars)."""
        return self.indexed + self.skipped + self.failed

    @property
    def superseded(self) -> bool:
        """A later run took this job over: whoever still works on it should stop."""
        return self.resumed_by is not None

    @property
    def stopped(self) -> bool:
        """Runners stop: the job was cancelled, or a later run continues it."""
        return self.status == "cancelled" or self.superseded

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES or self.superseded


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """One item a job could not ingest, and why, so nothing is lost silently."""

    id: int
    job_id: str
    uri: str
    reason: str
    at: datetime
