"""The catalog tables as they are at the latest schema version (what queries are written against).

The DDL that creates them lives in ``migrations.py`` as explicit steps; a test checks that
running every step yields exactly these tables, so the two cannot drift apart.

Design choices:
- Kinds and statuses are plain strings checked in Python, not CHECK constraints or native
  enums: adding a status later is then a code change, not a table rebuild on SQLite.
- ``media.id`` is ``search.ids.media_id(uri)``, so the primary key already makes ``uri`` unique;
  no separate unique index on ``uri``, which PostgreSQL could not build for very long signed
  URLs (b-tree entries are limited to about 2.7 kB).
- Video windows (frames, segments) are not catalogued: they are derived from a media item and
  the ingest settings, live only as points in the vector store (payload ``t``, ``t_start``,
  ``t_end``, ``media_id``), and are deleted by ``media_id``. A second copy here would have to be
  kept in sync for no query that needs it; ``media.point_count`` keeps the number.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on both dialects.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as naive
    UTC text and given its zone back on the way out. Naive input is refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"catalog timestamps must be timezone-aware, got naive {value!r}")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def json_type() -> TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL (binary, indexable, no duplicate keys)."""
    return JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


ID = String(36)
ROWID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only auto-increments INTEGER

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("uri", Text, nullable=False),
    Column("options", json_type(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_scan_at", UtcDateTime(), nullable=True),
)

media = Table(
    "media",
    metadata,
    Column("id", ID, primary_key=True),
    Column("source_id", ID, ForeignKey("sources.id", ondelete="CASCADE"), nullable=True),
    Column("uri", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("content_hash", String(128), nullable=True),
    Column("size_bytes", BigInteger, nullable=True),
    Column("mtime", Float, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("duration", Float, nullable=True),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("metadata", json_type(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # added in schema version 2
    Column("thumbnail", Text, nullable=True),
    Column("point_count", Integer, nullable=False, server_default="0"),
    Column("model", String(200), nullable=True),
    Column("job_id", ID, nullable=True),  # provenance only: jobs may be pruned, media stays
    Column("indexed_at", UtcDateTime(), nullable=True),
    Index("ix_media_source_status", "source_id", "status"),
    Index("ix_media_kind_status", "kind", "status"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("params", json_type(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("discovered", BigInteger, nullable=False, server_default="0"),
    Column("indexed", BigInteger, nullable=False, server_default="0"),
    Column("failed", BigInteger, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    # added in schema version 2
    Column("skipped", BigInteger, nullable=False, server_default="0"),
    # added in schema version 3: who runs the job, and the run that continued it
    Column("owner", Text, nullable=True),  # owners.JobOwner of an embedded job; None when distributed
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    Column("resumed_from", ID, nullable=True),
    Column("resumed_by", ID, nullable=True),
    Index("ix_jobs_created_at", "created_at"),
    Index("ix_jobs_status", "status"),
)

job_failures = Table(
    "job_failures",
    metadata,
    Column("id", ROWID, primary_key=True, autoincrement=True),
    Column("job_id", ID, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("uri", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_job_failures_job", "job_id", "id"),
)
