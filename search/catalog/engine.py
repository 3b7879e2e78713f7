"""Building the SQLAlchemy engine for a catalog URL: dialect quirks live here and nowhere else.

- SQLite: WAL (readers never block the writer), foreign keys on, a busy timeout so concurrent
  writers from several processes wait instead of failing, and explicit transactions: pysqlite's
  legacy mode does not BEGIN before SELECT or DDL, so we take over and emit ``BEGIN`` ourselves,
  and ``BEGIN IMMEDIATE`` for writes, which takes the write lock up front. A deferred write
  transaction that read first can fail with SQLITE_BUSY at once, without waiting, when another
  process wrote in between; an immediate one just queues on the busy timeout.
- PostgreSQL: psycopg 3, a small pool with pre-ping so a restarted server is survived.
- Both: after ``os.fork`` the child drops the inherited pool (without closing the parent's
  sockets), so a Catalog opened before Celery forks its workers is still safe to use.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from search.errors import ConfigError

WRITE_OPTION = "mmsearch_write"
SQLITE_BUSY_TIMEOUT_S = 30.0
PG_CONNECT_TIMEOUT_S = 10


def parse_url(url: str) -> URL:
    """Validate a catalog URL; plain ``postgresql://`` (or ``postgres://``) means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"catalog URL {url!r} is not a database URL: {exc}") from exc
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"catalog URL {parsed.render_as_string(hide_password=True)!r}: only sqlite:///PATH and postgresql://… are supported"
        )
    return parsed


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and (url.database in (None, "", ":memory:") or url.query.get("mode") == "memory")


def create_catalog_engine(url: URL) -> Engine:
    """One engine per Catalog (never at import time), tuned for its dialect."""
    engine = _sqlite_engine(url) if url.get_backend_name() == "sqlite" else _postgres_engine(url)
    _dispose_in_forked_children(engine)
    return engine


def _postgres_engine(url: URL) -> Engine:
    return create_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S, "application_name": "mmsearch"},
    )


def _sqlite_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if is_memory_sqlite(url):
        # One shared connection, or every pooled connection would see its own empty database.
        kwargs = {"connect_args": {"check_same_thread": False}, "poolclass": StaticPool}
    elif url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_on_begin)
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, far fewer fsyncs
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _dispose_in_forked_children(engine: Engine) -> None:
    """Forked children must not share the parent's pooled connections (SQLAlchemy's advice)."""
    ref = weakref.ref(engine)

    def after_fork() -> None:
        alive = ref()
        if alive is not None:
            alive.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork)
