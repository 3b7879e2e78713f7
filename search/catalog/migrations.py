"""Explicit, step-by-step schema migrations, so an old catalog is upgraded in place.

Every database, new or old, goes through the same numbered steps: step N takes version N-1 to
version N. Each step spells out its own DDL with frozen column definitions (never the live
tables in ``schema.py``), because a step must keep producing the same result after the live
schema moves on. ``ensure_schema`` runs the missing steps in one transaction under a lock
(PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``), so several workers starting at once
upgrade a database exactly once, and a failed step leaves it untouched.

Version history:
1. sources, media (discovery fields, status, metadata) and jobs (discovered/indexed/failed).
2. media.thumbnail, point_count, model, job_id, indexed_at (backfilled from updated_at for
   indexed items); jobs.skipped; the job_failures table; the (kind, status) index for /stats.
3. jobs.owner and heartbeat_at (who runs a job and when they last showed life; running jobs
   get their start time as a heartbeat, so ones left over from before are found interrupted),
   jobs.resumed_from and resumed_by (a run that continues an interrupted one), a status index.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.schema import CreateColumn

from search.errors import ConfigError

from .schema import ROWID, UtcDateTime, json_type

SCHEMA_VERSION = 3
VERSION_TABLE = "schema_version"
CATALOG_TABLES = ("sources", "media", "jobs", "job_failures")
_PG_LOCK_KEY = 0x6D6D_7365_6172_6368  # "mmsearch": one advisory lock for schema changes

Step = Callable[[Connection], None]


def _step_1_initial(conn: Connection) -> None:
    """The first layout: discovery, status and job progress."""
    md = MetaData()
    Table(VERSION_TABLE, md, Column("version", Integer, primary_key=True, autoincrement=False))
    Table(
        "sources",
        md,
        Column("id", String(36), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("uri", Text, nullable=False),
        Column("options", json_type(), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("last_scan_at", UtcDateTime(), nullable=True),
    )
    Table(
        "media",
        md,
        Column("id", String(36), primary_key=True),
        Column("source_id", String(36), ForeignKey("sources.id", ondelete="CASCADE")),
        Column("uri", Text, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("content_hash", String(128)),
        Column("size_bytes", BigInteger),
        Column("mtime", Float()),
        Column("width", Integer),
        Column("height", Integer),
        Column("duration", Float()),
        Column("status", String(16), nullable=False),
        Column("error", Text),
        Column("metadata", json_type(), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
        Index("ix_media_source_status", "source_id", "status"),
    )
    Table(
        "jobs",
        md,
        Column("id", String(36), primary_key=True),
        Column("kind", String(32), nullable=False),
        Column("params", json_type(), nullable=False),
        Column("status", String(16), nullable=False),
        Column("discovered", BigInteger, nullable=False, server_default="0"),
        Column("indexed", BigInteger, nullable=False, server_default="0"),
        Column("failed", BigInteger, nullable=False, server_default="0"),
        Column("error", Text),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("started_at", UtcDateTime()),
        Column("finished_at", UtcDateTime()),
        Index("ix_jobs_created_at", "created_at"),
    )
    md.create_all(conn)


def _step_2_thumbnails_models_failures(conn: Connection) -> None:
    """Track what each item produced (thumbnail, point count, model) and why jobs lost items."""
    _add_column(conn, "media", Column("thumbnail", Text, nullable=True))
    _add_column(conn, "media", Column("point_count", Integer, nullable=False, server_default="0"))
    _add_column(conn, "media", Column("model", String(200), nullable=True))
    _add_column(conn, "media", Column("job_id", String(36), nullable=True))
    _add_column(conn, "media", Column("indexed_at", UtcDateTime(), nullable=True))
    _add_column(conn, "jobs", Column("skipped", BigInteger, nullable=False, server_default="0"))
    conn.execute(text("UPDATE media SET indexed_at = updated_at WHERE status = 'indexed'"))
    md = MetaData()
    Table("jobs", md, Column("id", String(36), primary_key=True))  # FK target only
    media = Table("media", md, Column("kind", String(16)), Column("status", String(16)))
    Index("ix_media_kind_status", media.c.kind, media.c.status).create(conn)
    Table(
        "job_failures",
        md,
        Column("id", ROWID, primary_key=True, autoincrement=True),
        Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        Column("uri", Text, nullable=False),
        Column("reason", Text, nullable=False),
        Column("at", UtcDateTime(), nullable=False),
        Index("ix_job_failures_job", "job_id", "id"),
    ).create(conn)


def _step_3_job_owners_and_resumes(conn: Connection) -> None:
    """Know who runs each job, so a job whose runner died is shown interrupted and resumed."""
    _add_column(conn, "jobs", Column("owner", Text, nullable=True))
    _add_column(conn, "jobs", Column("heartbeat_at", UtcDateTime(), nullable=True))
    _add_column(conn, "jobs", Column("resumed_from", String(36), nullable=True))
    _add_column(conn, "jobs", Column("resumed_by", String(36), nullable=True))
    conn.execute(text("UPDATE jobs SET heartbeat_at = COALESCE(started_at, created_at) WHERE status = 'running'"))
    md = MetaData()
    jobs = Table("jobs", md, Column("status", String(16)))
    Index("ix_jobs_status", jobs.c.status).create(conn)


STEPS: dict[int, Step] = {
    1: _step_1_initial,
    2: _step_2_thumbnails_models_failures,
    3: _step_3_job_owners_and_resumes,
}


def _add_column(conn: Connection, table: str, column: Column) -> None:
    """ALTER TABLE … ADD COLUMN, rendered for the connection's dialect (Core has no construct)."""
    spec = CreateColumn(column).compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {spec}")


def current_version(conn: Connection) -> int:
    """0 for an empty database; refuses a database holding catalog tables but no version."""
    names = set(inspect(conn).get_table_names())
    if VERSION_TABLE not in names:
        strays = sorted(names.intersection(CATALOG_TABLES))
        if strays:
            raise ConfigError(
                f"the catalog database has tables {strays} but no {VERSION_TABLE} table; "
                "it was not created by mmsearch, so it is left alone"
            )
        return 0
    found = conn.execute(text(f"SELECT max(version) FROM {VERSION_TABLE}")).scalar()
    return int(found or 0)


def upgrade(conn: Connection, target: int = SCHEMA_VERSION) -> int:
    """Run the steps from the stored version up to ``target`` on an open transaction."""
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the catalog is at schema version {version}, newer than this mmsearch knows "
            f"({SCHEMA_VERSION}); upgrade mmsearch or point it at another catalog"
        )
    for step in range(version + 1, target + 1):
        STEPS[step](conn)
        _stamp(conn, step)
    return max(version, target)


def _stamp(conn: Connection, version: int) -> None:
    conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
    conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version) VALUES (:v)"), {"v": version})


def ensure_schema(engine: Engine, target: int = SCHEMA_VERSION) -> int:
    """Create or upgrade the catalog; safe when several processes call it at the same time.

    ``target`` below the latest version exists for tests that need an old database.
    """
    writer = engine.execution_options(mmsearch_write=True)
    with writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        return upgrade(conn, target)
