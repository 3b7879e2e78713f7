"""The Catalog facade: every read and write of sources, media, jobs and failures goes through it.

Each public method is one short transaction on a pooled connection and returns frozen records,
so a Catalog is safe to share between threads, and several processes (Celery workers, the API)
can write the same database at once: counters are incremented in SQL, read-modify-write
updates lock their row (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).
Ingestion writes in groups: ``media_by_uris`` reads 500 rows per query, ``write_media`` and
``commit_outcomes`` write many items with multi-row ``INSERT … ON CONFLICT DO UPDATE``
statements, so a group of outcomes costs a few statements and one commit whatever its size.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, Table, and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from search.errors import MMSearchError, NotFound, StoreUnavailable
from search.ids import media_id

from .engine import WRITE_OPTION, create_catalog_engine, is_memory_sqlite, parse_url
from .migrations import ensure_schema
from .owners import orphan_reason
from .schema import job_failures, jobs, media, sources, utcnow
from .types import (
    FINISHED_JOB_STATUSES,
    JOB_STATUSES,
    MEDIA_KINDS,
    MEDIA_STATUSES,
    RESUMABLE_JOB_STATUSES,
    SOURCE_KINDS,
    FailureRecord,
    JobRecord,
    JobStatus,
    MediaKind,
    MediaRecord,
    MediaStatus,
    SourceKind,
    SourceRecord,
)

MTIME_TOLERANCE_S = 1e-6  # float seconds survive both databases exactly; allow rounding noise
_STATUSES_WITH_REASON = ("failed", "partial")  # nothing fails, or stops half-way, silently
_ID_CHUNK = 500  # ids per IN (…) list, far below SQLite's and PostgreSQL's parameter limits
_JOB_COUNTERS = ("discovered", "indexed", "skipped", "failed")
# nullable media columns a write leaves alone when it gives None: COALESCE(new, stored)
_KEPT_WHEN_NONE = (
    "source_id",
    "content_hash",
    "size_bytes",
    "mtime",
    "width",
    "height",
    "duration",
    "thumbnail",
    "model",
    "job_id",
    "indexed_at",
)
_SOURCE_NAMESPACE = uuid.UUID("0b8e3a5c-63a1-5f0e-8d7b-2f4c9a1e6d30")


@dataclass(frozen=True)
class MediaWrite:
    """One item's row as a group write leaves it (``Catalog.write_media``, ``Catalog.commit_outcomes``).

    The fields mean what ``upsert_media`` and ``set_media_status`` take: ``status`` and ``error``
    are always written, None elsewhere keeps the stored value, ``metadata`` merges key by key.
    """

    uri: str
    kind: MediaKind
    status: MediaStatus = "pending"
    error: str | None = None
    source_id: str | None = None
    content_hash: str | None = None
    size_bytes: int | None = None
    mtime: float | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    thumbnail: str | None = None
    model: str | None = None
    job_id: str | None = None
    point_count: int | None = None
    metadata: dict[str, Any] | None = None


class CatalogUnavailable(StoreUnavailable):
    """The catalog database cannot be reached, or stayed locked past the busy timeout."""


class CatalogClosed(MMSearchError):
    """The Catalog was used after ``close()``: a lifecycle bug in the caller."""


def source_id(kind: str, uri: str) -> str:
    """Stable source id, so adding the same folder twice names the same source."""
    return str(uuid.uuid5(_SOURCE_NAMESPACE, f"source:{kind}:{uri}"))


class Catalog:
    """Relational record of sources, media items, ingest jobs and their failures."""

    def __init__(self, engine: Engine, *, serialize: bool = False) -> None:
        """Use ``Catalog.open``; this takes an engine whose schema is already current."""
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._lock: AbstractContextManager[Any] = threading.RLock() if serialize else nullcontext()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Connect to ``url`` (SQLite path or PostgreSQL), creating or upgrading the schema."""
        parsed = parse_url(url)
        engine = create_catalog_engine(parsed)
        catalog = cls(engine, serialize=is_memory_sqlite(parsed))
        try:
            with catalog._guard():
                ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return catalog

    def close(self) -> None:
        """Close pooled connections; further calls raise CatalogClosed."""
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The database URL with any password hidden, for logs and /health."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def ping(self) -> bool:
        """True when the database answers a trivial query; never raises (for health checks)."""
        try:
            with self._read() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except (MMSearchError, SQLAlchemyError):
            return False

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn driver-level connection and lock failures into our own error type."""
        if self._closed:
            raise CatalogClosed("the catalog was closed")
        try:
            with self._lock:
                yield
        except (OperationalError, InterfaceError) as exc:
            raise CatalogUnavailable(f"catalog database unavailable: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise CatalogUnavailable(f"catalog connection lost: {exc.orig}") from exc
            raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guard(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._guard(), self._writer.begin() as conn:
            yield conn

    # -- sources -----------------------------------------------------------------------------

    def upsert_source(self, kind: SourceKind, uri: str, options: dict[str, Any] | None = None) -> SourceRecord:
        """Register a source, or replace the options of the same (kind, uri)."""
        _check_choice("source kind", kind, SOURCE_KINDS)
        _check_text("source uri", uri)
        sid = source_id(kind, uri)
        with self._write() as conn:
            row = {"id": sid, "kind": kind, "uri": uri, "options": clean_json(options or {})}
            if not _insert_ignore(conn, sources, {**row, "created_at": utcnow()}) and options is not None:
                stmt = update(sources).where(sources.c.id == sid)
                conn.execute(stmt.values(options=clean_json(options)))
            return _source(conn, sid)

    def get_source(self, source_id: str) -> SourceRecord:
        with self._read() as conn:
            return _source(conn, source_id)

    def list_sources(self) -> list[SourceRecord]:
        with self._read() as conn:
            rows = conn.execute(select(sources).order_by(sources.c.created_at, sources.c.id))
            return [SourceRecord(**r._mapping) for r in rows]

    def mark_source_scanned(self, source_id: str, at: datetime | None = None) -> SourceRecord:
        """Remember when discovery last walked this source (shown to users, used for rescans)."""
        if at is not None and at.tzinfo is None:
            raise ValueError("scan time must be timezone-aware")
        with self._write() as conn:
            stmt = update(sources).where(sources.c.id == source_id)
            if conn.execute(stmt.values(last_scan_at=at or utcnow())).rowcount == 0:
                raise NotFound(f"no source with id {source_id!r}")
            return _source(conn, source_id)

    # -- media -------------------------------------------------------------------------------

    def get_media(self, media_id: str) -> MediaRecord:
        """The item with this id; raises NotFound."""
        with self._read() as conn:
            return _media(conn, media_id)

    def get_media_by_uri(self, uri: str) -> MediaRecord | None:
        """The item at this URI, or None: ingestion asks this before deciding what to do."""
        with self._read() as conn:
            row = conn.execute(select(media).where(media.c.id == media_id(uri))).one_or_none()
        return _media_record(row) if row is not None and row.uri == uri else None

    def get_media_many(self, ids: Iterable[str]) -> dict[str, MediaRecord]:
        """Records for many ids in few queries (to enrich a page of hits); unknown ids skipped."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, MediaRecord] = {}
        with self._read() as conn:
            for chunk in _chunks(wanted, _ID_CHUNK):
                for row in conn.execute(select(media).where(media.c.id.in_(chunk))):
                    found[row.id] = _media_record(row)
        return found

    def media_by_uris(self, uris: Iterable[str]) -> dict[str, MediaRecord]:
        """Records of many URIs keyed by URI, one query per 500 (a rescan's lookups); unknown URIs absent."""
        wanted = {media_id(uri): uri for uri in uris}
        return {r.uri: r for mid, r in self.get_media_many(wanted).items() if r.uri == wanted[mid]}

    def upsert_media(
        self,
        uri: str,
        *,
        kind: MediaKind,
        source_id: str | None = None,
        status: MediaStatus = "pending",
        error: str | None = None,
        content_hash: str | None = None,
        size_bytes: int | None = None,
        mtime: float | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: float | None = None,
        metadata: dict[str, Any] | None = None,
        thumbnail: str | None = None,
        job_id: str | None = None,
    ) -> MediaRecord:
        """Insert the item at ``uri`` or update it; the id is always ``media_id(uri)``.

        Upserting means the item (re)enters the pipeline, so ``status`` is always written
        (``pending`` by default). Other arguments left as None keep what is stored, so a later
        stage never erases what an earlier one learned; ``metadata`` is merged key by key.
        """
        _check_text("media uri", uri)
        _check_choice("media kind", kind, MEDIA_KINDS)
        state = _status_values(status, error)
        known = _given(
            content_hash=content_hash,
            size_bytes=size_bytes,
            mtime=mtime,
            width=width,
            height=height,
            duration=duration,
            thumbnail=thumbnail,
            job_id=job_id,
            source_id=source_id,
        )
        mid = media_id(uri)
        with self._write() as conn:
            if source_id is not None:
                _source(conn, source_id)
            now = utcnow()
            fresh = {
                "id": mid,
                "uri": uri,
                "kind": kind,
                "metadata": clean_json(metadata or {}),
                "created_at": now,
                "updated_at": now,
                "point_count": 0,
                **known,
                **state,
            }
            if not _insert_ignore(conn, media, fresh):
                _update_media(conn, mid, {"kind": kind, **known, **state}, metadata, now)
            return _media(conn, mid)

    def set_media_status(
        self,
        media_id: str,
        status: MediaStatus,
        error: str | None = None,
        *,
        point_count: int | None = None,
        model: str | None = None,
        thumbnail: str | None = None,
        content_hash: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: float | None = None,
        metadata: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> MediaRecord:
        """Move an item to ``status`` and record what the stage learned about it.

        ``failed`` and ``partial`` need an ``error`` (nothing fails silently); any other status
        clears the old error. ``indexed`` and ``partial`` stamp ``indexed_at``. None keeps the
        stored value; metadata merges.
        """
        if point_count is not None and point_count < 0:
            raise ValueError(f"point_count must be >= 0, got {point_count}")
        values = {
            **_status_values(status, error),
            **_given(
                point_count=point_count,
                model=model,
                thumbnail=thumbnail,
                content_hash=content_hash,
                width=width,
                height=height,
                duration=duration,
                job_id=job_id,
            ),
        }
        with self._write() as conn:
            _update_media(conn, media_id, values, metadata, utcnow())
            return _media(conn, media_id)

    def write_media(self, writes: Sequence[MediaWrite]) -> dict[str, int]:
        """Insert or update many items in one transaction, a few statements whatever their number.

        Each ``MediaWrite`` does what ``upsert_media`` followed by ``set_media_status`` would
        (see its docstring). Returns every written item's ``point_count`` by media id, so a
        caller knows which items already had points without reading them again.
        """
        if not writes:
            return {}
        with self._write() as conn:
            return _write_media_rows(conn, writes, utcnow())

    def media_for_source(self, source_id: str, status: MediaStatus | None = None) -> list[MediaRecord]:
        """Items of one source, optionally in one status, in URI order ([] for unknown ids)."""
        stmt = select(media).where(media.c.source_id == source_id).order_by(media.c.uri)
        if status is not None:
            _check_choice("media status", status, MEDIA_STATUSES)
            stmt = stmt.where(media.c.status == status)
        with self._read() as conn:
            return [_media_record(r) for r in conn.execute(stmt)]

    def mark_missing_deleted(self, source_id: str, seen_uris: Iterable[str]) -> list[MediaRecord]:
        """Flag the source's items that this scan did not see as deleted, and return them.

        The caller deletes their points from the vector store; the rows stay (status
        ``deleted``) so the item's history survives and a file that comes back is re-indexed.
        """
        seen = set(seen_uris)
        with self._write() as conn:
            _source(conn, source_id)
            live = select(media).where(media.c.source_id == source_id, media.c.status != "deleted")
            gone = [r for r in conn.execute(live) if r.uri not in seen]
            now = utcnow()
            for chunk in _chunks([r.id for r in gone], _ID_CHUNK):
                stmt = update(media).where(media.c.id.in_(chunk))
                conn.execute(stmt.values(status="deleted", error=None, updated_at=now))
        return [replace(_media_record(r), status="deleted", error=None, updated_at=now) for r in gone]

    def mark_media_deleted(self, media_ids: Iterable[str]) -> int:
        """Flag the given items deleted with no points (their points and thumbnails are gone).

        Unknown ids are ignored; an item already deleted is written again, so a deletion that was
        interrupted half-way and is repeated leaves the same rows. Returns the rows written.
        """
        wanted = list(dict.fromkeys(media_ids))
        written = 0
        with self._write() as conn:
            now = utcnow()
            for chunk in _chunks(wanted, _ID_CHUNK):
                stmt = update(media).where(media.c.id.in_(chunk))
                written += conn.execute(stmt.values(status="deleted", error=None, point_count=0, updated_at=now)).rowcount
        return written

    def is_unchanged(
        self,
        uri: str,
        size: int | None,
        mtime: float | None,
        content_hash: str | None = None,
        *,
        model: str | None = None,
    ) -> bool:
        """True when the item is indexed and its fingerprint matches, so ingestion can skip it.

        Size and mtime must both match; a given ``content_hash`` must match too (remote media
        has no trustworthy mtime, so the hash decides there); a given ``model`` must be the one
        it was indexed with. Failed items are never unchanged: a retry is cheap and lets a
        fixed decoder or a grown size limit take effect.
        """
        return record_is_unchanged(self.get_media_by_uri(uri), size, mtime, content_hash, model=model)

    def media_to_enrich(self, marker: str, kinds: Sequence[str], limit: int = 500) -> list[MediaRecord]:
        """Searchable items of ``kinds`` that an enrichment pass has not done since they were
        last indexed: no ``metadata[marker]``, or its ``at`` (ISO time) older than ``indexed_at``.

        The marker lives in the metadata JSON, so the test runs here rather than in SQL (the two
        dialects spell JSON paths differently); rows are read a page at a time, ordered by id.
        """
        found: list[MediaRecord] = []
        after = ""
        searchable = and_(media.c.kind.in_(list(kinds)), media.c.status.in_(("indexed", "partial")))
        with self._read() as conn:
            while len(found) < limit:
                stmt = select(media).where(searchable, media.c.id > after).order_by(media.c.id).limit(_ID_CHUNK)
                rows = [_media_record(row) for row in conn.execute(stmt)]
                if not rows:
                    break
                found.extend(r for r in rows if needs_enrichment(r, marker))
                after = rows[-1].id
        return found[:limit]

    def enrichment_counts(self, marker: str, kinds: Sequence[str]) -> dict[str, int]:
        """Searchable items of ``kinds`` by their marker's ``status`` (``pending`` when not done
        since last indexed), for progress lines: ``{"pending": 3, "text": 5, "no_text": 9}``."""
        searchable = and_(media.c.kind.in_(list(kinds)), media.c.status.in_(("indexed", "partial")))
        counts: dict[str, int] = {}
        with self._read() as conn:
            for row in conn.execute(select(media).where(searchable)):
                record = _media_record(row)
                status = "pending" if needs_enrichment(record, marker) else str(record.metadata[marker].get("status"))
                counts[status] = counts.get(status, 0) + 1
        return counts

    def merge_media_metadata(self, updates: dict[str, dict[str, Any]]) -> int:
        """Merge keys into the metadata of many items in one transaction (an enrichment pass's
        markers); status, counters and ``indexed_at`` stay. Unknown ids are skipped."""
        merged = 0
        with self._write() as conn:
            now = utcnow()
            for mid, metadata in updates.items():
                try:
                    _update_media(conn, mid, {}, metadata, now)
                except NotFound:
                    continue
                merged += 1
        return merged

    def counts_by_kind_and_status(self) -> dict[str, dict[str, int]]:
        """``{"image": {"indexed": 10, "failed": 1}, …}`` for /stats; absent pairs are zero."""
        stmt = select(media.c.kind, media.c.status, func.count()).group_by(media.c.kind, media.c.status)
        counts: dict[str, dict[str, int]] = {}
        with self._read() as conn:
            for kind, status, n in conn.execute(stmt):
                counts.setdefault(kind, {})[status] = int(n)
        return counts

    # -- jobs --------------------------------------------------------------------------------

    def create_job(
        self, kind: str, params: dict[str, Any] | None = None, *, owner: str | None = None, resume: bool = False
    ) -> JobRecord:
        """A queued job with a fresh UUID; ``params`` is whatever the runner needs to redo it.

        ``owner`` names the process that will run it in-process (``owners.JobOwner.encode()``).
        With ``resume``, when the newest earlier job of the same kind and params was interrupted
        or cancelled and nothing continued it yet, this job continues it: each records the other
        (``resumed_from`` / ``resumed_by``), and runners of the old one stop.
        """
        _check_text("job kind", kind)
        now = utcnow()
        job = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "params": clean_json(params or {}),
            "status": "queued",
            "discovered": 0,
            "indexed": 0,
            "skipped": 0,
            "failed": 0,
            "created_at": now,
            "owner": owner,
            "heartbeat_at": now if owner else None,
        }
        with self._write() as conn:
            if resume:
                job["resumed_from"] = _claim_resumable(conn, kind, job["params"], job["id"])
            conn.execute(jobs.insert().values(job))
            return _job(conn, job["id"])

    def get_job(self, job_id: str) -> JobRecord:
        """The job with this id; raises NotFound."""
        with self._read() as conn:
            return _job(conn, job_id)

    def list_jobs(self, limit: int = 50, status: JobStatus | None = None) -> list[JobRecord]:
        """Newest first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        stmt = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit)
        if status is not None:
            _check_choice("job status", status, JOB_STATUSES)
            stmt = stmt.where(jobs.c.status == status)
        with self._read() as conn:
            return [JobRecord(**r._mapping) for r in conn.execute(stmt)]

    def start_job(self, job_id: str, owner: str | None = None) -> JobRecord:
        """queued → running, with a heartbeat (and ``owner`` for an in-process run). Idempotent for
        a redelivered task, which also revives an interrupted job nobody continued; a cancelled
        job stays cancelled, so the runner should stop when the returned record is finished."""
        now = utcnow()
        with self._write() as conn:
            stmt = update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued")
            conn.execute(stmt.values(status="running", started_at=now, **_given(owner=owner)))
            _beat(conn, jobs.c.id == job_id, now)
            return _job(conn, job_id)

    def beat_job(self, job_id: str) -> None:
        """Show that someone works on the job (a Celery task of it, or the CLI following it)."""
        with self._write() as conn:
            _beat(conn, jobs.c.id == job_id, utcnow())

    def beat_owner(self, owner: str) -> None:
        """Show that process ``owner`` is alive: one heartbeat for every job it runs or queued."""
        with self._write() as conn:
            _beat(conn, jobs.c.owner == owner, utcnow())

    def interrupt_orphaned_jobs(self, timeout: float, now: datetime | None = None) -> list[JobRecord]:
        """Mark ``interrupted`` (with the reason) every queued or running job whose runner is gone.

        The rule is ``owners.orphan_reason``: the owner process died on this host, or nobody
        sent a heartbeat for ``timeout`` seconds. A job that shows life between the check and
        the write is left alone. Returns the jobs marked.
        """
        now = now or utcnow()
        open_jobs = select(jobs).where(jobs.c.status.in_(("queued", "running")))
        with self._read() as conn:
            candidates = [JobRecord(**r._mapping) for r in conn.execute(open_jobs)]
        orphans = [(job, reason) for job in candidates if (reason := orphan_reason(job, now, timeout)) is not None]
        marked: list[JobRecord] = []
        if not orphans:
            return marked
        with self._write() as conn:
            for job, reason in orphans:
                unchanged = and_(
                    jobs.c.id == job.id,
                    jobs.c.status == job.status,
                    jobs.c.heartbeat_at.is_not_distinct_from(job.heartbeat_at),
                )
                stmt = update(jobs).where(unchanged).values(status="interrupted", error=reason, finished_at=now)
                if conn.execute(stmt).rowcount:
                    marked.append(_job(conn, job.id))
        return marked

    def finish_job(self, job_id: str, status: JobStatus, error: str | None = None) -> JobRecord:
        """queued/running → done, failed (needs ``error``) or cancelled. The first finish wins:
        a worker reporting ``done`` after a user cancelled does not resurrect the job. An
        interrupted job whose runner turns out to be alive may still finish, unless a later
        run continues it."""
        _check_choice("final job status", status, FINISHED_JOB_STATUSES)
        if status == "failed" and not (error and error.strip()):
            raise ValueError("a failed job needs an error message")
        with self._write() as conn:
            stmt = update(jobs).where(jobs.c.id == job_id, _unfinished())
            conn.execute(stmt.values(status=status, error=error, finished_at=utcnow()))
            return _job(conn, job_id)

    def cancel_job(self, job_id: str) -> JobRecord:
        """Ask a job to stop; workers see it in the record ``add_to_job``/``start_job`` return."""
        return self.finish_job(job_id, "cancelled")

    def add_to_job(self, job_id: str, discovered: int = 0, indexed: int = 0, skipped: int = 0, failed: int = 0) -> JobRecord:
        """Atomically add to the counters (``SET n = n + :d`` in SQL, so concurrent workers in
        any number of processes never lose an update) and return the job as it now stands."""
        deltas = dict(discovered=discovered, indexed=indexed, skipped=skipped, failed=failed)
        with self._write() as conn:
            return _add_counts(conn, job_id, deltas)

    def record_failure(self, job_id: str, uri: str, reason: str) -> FailureRecord:
        """Keep why one item was lost. Counters are separate: also call ``add_to_job(failed=1)``."""
        _check_text("failure reason", reason)
        with self._write() as conn:
            _job(conn, job_id)
            row = {"job_id": job_id, "uri": uri, "reason": reason, "at": utcnow()}
            stmt = job_failures.insert().values(row).returning(*job_failures.c)
            return FailureRecord(**conn.execute(stmt).one()._mapping)

    def commit_outcomes(
        self,
        job_id: str,
        counts: dict[str, int],
        failures: Sequence[tuple[str, str]] = (),
        writes: Sequence[MediaWrite] = (),
    ) -> JobRecord:
        """One transaction for a group of ingest outcomes: the job's counters (as ``add_to_job``),
        the failure list's new ``(uri, reason)`` rows and the items' rows (as ``write_media``).

        All or nothing, so the counting rule of ``ingest.stages.record`` (counted before marked
        done) holds trivially. Returns the job as it now stands.
        """
        now = utcnow()
        for uri, reason in failures:
            _check_text("failure reason", reason)
            _check_text("failure uri", uri)
        with self._write() as conn:
            job = _add_counts(conn, job_id, counts)
            if failures:
                rows = [{"job_id": job_id, "uri": uri, "reason": reason, "at": now} for uri, reason in failures]
                conn.execute(job_failures.insert(), rows)
            if writes:
                _write_media_rows(conn, writes, now)
            return job

    def job_failures(self, job_id: str, limit: int | None = None) -> list[FailureRecord]:
        """Failures of a job in the order they happened; raises NotFound for an unknown job."""
        stmt = select(job_failures).where(job_failures.c.job_id == job_id)
        stmt = stmt.order_by(job_failures.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            _job(conn, job_id)
            return [FailureRecord(**r._mapping) for r in conn.execute(stmt)]


# -- helpers (module level: they take the connection of the caller's transaction) -------------


def _source(conn: Connection, sid: str) -> SourceRecord:
    row = conn.execute(select(sources).where(sources.c.id == sid)).one_or_none()
    if row is None:
        raise NotFound(f"no source with id {sid!r}")
    return SourceRecord(**row._mapping)


def _media(conn: Connection, mid: str) -> MediaRecord:
    row = conn.execute(select(media).where(media.c.id == mid)).one_or_none()
    if row is None:
        raise NotFound(f"no media item with id {mid!r}")
    return _media_record(row)


def _job(conn: Connection, job_id: str) -> JobRecord:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
    if row is None:
        raise NotFound(f"no job with id {job_id!r}")
    return JobRecord(**row._mapping)


def _add_counts(conn: Connection, job_id: str, deltas: dict[str, int]) -> JobRecord:
    """Add to a job's counters in SQL (``SET n = n + :d``); the job as it then stands."""
    for name, delta in deltas.items():
        if name not in _JOB_COUNTERS:
            raise ValueError(f"unknown job counter {name!r}; expected one of {', '.join(_JOB_COUNTERS)}")
        if delta < 0:
            raise ValueError(f"job counter {name} can only grow, got {delta}")
    values = {name: jobs.c[name] + delta for name, delta in deltas.items() if delta}
    if not values:
        return _job(conn, job_id)
    row = conn.execute(update(jobs).where(jobs.c.id == job_id).values(values).returning(*jobs.c)).one_or_none()
    if row is None:
        raise NotFound(f"no job with id {job_id!r}")
    return JobRecord(**row._mapping)


def _unfinished() -> ColumnElement[bool]:
    """Jobs someone may still work on: queued, running, or interrupted and not continued."""
    revivable = and_(jobs.c.status == "interrupted", jobs.c.resumed_by.is_(None))
    return or_(jobs.c.status.in_(("queued", "running")), revivable)


def _beat(conn: Connection, which: ColumnElement[bool], now: datetime) -> None:
    """A heartbeat for the jobs ``which`` selects; an interrupted one nobody continued comes back."""
    conn.execute(update(jobs).where(which, jobs.c.status.in_(("queued", "running"))).values(heartbeat_at=now))
    revivable = and_(which, jobs.c.status == "interrupted", jobs.c.resumed_by.is_(None))
    back = case((jobs.c.started_at.is_(None), "queued"), else_="running")
    conn.execute(update(jobs).where(revivable).values(status=back, error=None, finished_at=None, heartbeat_at=now))


def _claim_resumable(conn: Connection, kind: str, params: dict[str, Any], new_id: str) -> str | None:
    """The id of the job ``new_id`` continues (see ``Catalog.create_job``), marked as taken."""
    recent = select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.created_at.desc(), jobs.c.id).limit(200)
    previous = next((JobRecord(**r._mapping) for r in conn.execute(recent) if r.params == params), None)
    if previous is None or previous.status not in RESUMABLE_JOB_STATUSES or previous.superseded:
        return None
    claim = update(jobs).where(jobs.c.id == previous.id, jobs.c.resumed_by.is_(None)).values(resumed_by=new_id)
    return previous.id if conn.execute(claim).rowcount == 1 else None


def _media_record(row: Row[Any]) -> MediaRecord:
    return MediaRecord(**row._mapping)


def needs_enrichment(record: MediaRecord, marker: str) -> bool:
    """No marker yet, or one written before the item was last (re)indexed."""
    mark = record.metadata.get(marker)
    if not isinstance(mark, dict) or not isinstance(mark.get("at"), str):
        return True
    if record.indexed_at is None:
        return False
    try:
        at = datetime.fromisoformat(mark["at"])
    except ValueError:
        return True
    return at.tzinfo is None or at < record.indexed_at


def _update_media(
    conn: Connection,
    mid: str,
    values: dict[str, Any],
    metadata: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Update one item under a row lock, merging metadata keys into what is stored."""
    if metadata is not None:
        stmt = select(media.c["metadata"]).where(media.c.id == mid).with_for_update()
        stored = conn.execute(stmt).scalar_one_or_none()
        if stored is None:
            raise NotFound(f"no media item with id {mid!r}")
        values = {**values, "metadata": {**stored, **clean_json(metadata)}}
    result = conn.execute(update(media).where(media.c.id == mid).values(updated_at=now, **values))
    if result.rowcount == 0:
        raise NotFound(f"no media item with id {mid!r}")


def _write_media_rows(conn: Connection, writes: Sequence[MediaWrite], now: datetime) -> dict[str, int]:
    """``Catalog.write_media`` inside the caller's transaction.

    One multi-row ``INSERT … ON CONFLICT (id) DO UPDATE`` per shape (whether the rows carry a
    point count, and metadata) and per 500 rows, plus one locked read of the stored metadata
    the new keys merge into. Nullable columns take ``COALESCE(new, stored)``, so None keeps
    what is stored. An id met twice goes into a later round: one statement may not update a
    row twice on PostgreSQL.
    """
    rows = [_media_values(write, now) for write in writes]
    _merge_stored_metadata(conn, [r for r in rows if r["metadata"] is not None])
    counts: dict[str, int] = {}
    for batch in _rounds(rows):
        shapes: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
        for row in batch:
            shapes.setdefault((row["point_count"] is not None, row["metadata"] is not None), []).append(row)
        for (has_count, has_metadata), members in shapes.items():
            for start in range(0, len(members), _ID_CHUNK):
                chunk = members[start : start + _ID_CHUNK]
                counts.update(_upsert_media_rows(conn, chunk, has_count, has_metadata))
    return counts


def _media_values(write: MediaWrite, now: datetime) -> dict[str, Any]:
    """The full row for one write, validated as ``upsert_media`` validates its arguments."""
    _check_text("media uri", write.uri)
    _check_choice("media kind", write.kind, MEDIA_KINDS)
    if write.point_count is not None and write.point_count < 0:
        raise ValueError(f"point_count must be >= 0, got {write.point_count}")
    state = _status_values(write.status, write.error)
    return {
        "id": media_id(write.uri),
        "uri": write.uri,
        "kind": write.kind,
        **{name: getattr(write, name) for name in _KEPT_WHEN_NONE if name != "indexed_at"},
        "indexed_at": None,
        **state,
        "point_count": write.point_count,
        "metadata": None if write.metadata is None else clean_json(write.metadata),
        "created_at": now,
        "updated_at": now,
    }


def _merge_stored_metadata(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Give each row's new metadata keys the stored ones they do not replace (read under a row lock)."""
    stored: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(dict.fromkeys(r["id"] for r in rows)), _ID_CHUNK):
        stmt = select(media.c.id, media.c["metadata"]).where(media.c.id.in_(chunk)).with_for_update()
        stored.update({mid: value for mid, value in conn.execute(stmt)})
    for row in rows:  # in order: a later write of the same item merges into the earlier one
        merged = {**stored.get(row["id"], {}), **row["metadata"]}
        stored[row["id"]] = row["metadata"] = merged


def _rounds(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``rows`` cut into consecutive runs in which no id appears twice."""
    batch: list[dict[str, Any]] = []
    ids: set[str] = set()
    for row in rows:
        if row["id"] in ids:
            yield batch
            batch, ids = [], set()
        batch.append(row)
        ids.add(row["id"])
    if batch:
        yield batch


def _upsert_media_rows(conn: Connection, rows: list[dict[str, Any]], has_count: bool, has_metadata: bool) -> dict[str, int]:
    values = [{**r, "point_count": r["point_count"] or 0, "metadata": r["metadata"] or {}} for r in rows]
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(media)  # rows as executemany parameters: compiled once, sent as one multi-row statement
    new = stmt.excluded
    changes: dict[str, Any] = {name: new[name] for name in ("kind", "status", "error", "updated_at")}
    changes.update({name: func.coalesce(new[name], media.c[name]) for name in _KEPT_WHEN_NONE})
    if has_count:
        changes["point_count"] = new.point_count
    if has_metadata:
        changes["metadata"] = new["metadata"]
    upsert = stmt.on_conflict_do_update(index_elements=[media.c.id], set_=changes)
    return {mid: count for mid, count in conn.execute(upsert.returning(media.c.id, media.c.point_count), values)}


def _insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row is new. Race-free on both dialects."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = conn.execute(insert(table).values(values).on_conflict_do_nothing())
    return result.rowcount == 1


def _status_values(status: str, error: str | None) -> dict[str, Any]:
    _check_choice("media status", status, MEDIA_STATUSES)
    if status in _STATUSES_WITH_REASON and not (error and error.strip()):
        raise ValueError(f"a {status} media item needs an error reason")
    values: dict[str, Any] = {"status": status, "error": error if status in _STATUSES_WITH_REASON else None}
    if status in ("indexed", "partial"):  # a partial item is searchable up to where it broke
        values["indexed_at"] = utcnow()
    return values


def clean_json(value: Any, path: str = "$") -> Any:
    """A copy of ``value`` that both dialects store identically, or ValueError naming the path.

    PostgreSQL's JSONB rejects NUL characters (EXIF strings are often NUL-padded) and NaN, so
    NULs are stripped and non-finite floats become null; tuples become lists; anything that is
    not JSON (bytes, datetimes, objects) is refused here rather than deep inside the driver.
    """
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, (list, tuple)):
        return [clean_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"JSON object keys must be strings at {path}")
        return {k.replace("\x00", ""): clean_json(v, f"{path}.{k}") for k, v in value.items()}
    raise ValueError(f"{type(value).__name__} at {path} is not JSON; convert it first")


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _check_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _check_text(what: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")


def record_is_unchanged(
    record: MediaRecord | None,
    size: int | None,
    mtime: float | None,
    content_hash: str | None = None,
    *,
    model: str | None = None,
) -> bool:
    """``Catalog.is_unchanged`` on a record already read (discovery reads many at once)."""
    if record is None or record.status != "indexed":
        return False
    if model is not None and record.model != model:
        return False
    if content_hash is not None and record.content_hash != content_hash:
        return False
    return record.size_bytes == size and _same_mtime(record.mtime, mtime)


def _same_mtime(stored: float | None, given: float | None) -> bool:
    if stored is None or given is None:
        return stored is given
    return abs(stored - given) <= MTIME_TOLERANCE_S


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
