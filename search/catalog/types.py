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
MediaStatus = Literal["pending", "indexed", "failed", "deleted"]
JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]

SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
MEDIA_KINDS: tuple[str, ...] = get_args(MediaKind)
MEDIA_STATUSES: tuple[str, ...] = get_args(MediaStatus)
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
FINISHED_JOB_STATUSES: tuple[str, ...] = ("done", "failed", "cancelled")


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
    """An ingestion run and its progress counters."""

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

    @property
    def processed(self) -> int:
        """Items the job is done with, whatever the outcome (for progress bars)."""
        return self.indexed + self.skipped + self.failed

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """One item a job could not ingest, and why, so nothing is lost silently."""

    id: int
    job_id: str
    uri: str
    reason: str
    at: datetime
