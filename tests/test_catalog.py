"""The catalog behaves the same on SQLite and PostgreSQL: every test runs on both.

PostgreSQL tests use a scratch database ``mmsearch_test_<random>`` on 127.0.0.1:5432 (user
postgres), emptied before each test and dropped after the run; they are skipped when no server
answers there.
"""

from __future__ import annotations

import multiprocessing
import secrets
import threading
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, bindparam, inspect, text

from search.catalog import (
    SCHEMA_VERSION,
    Catalog,
    CatalogClosed,
    CatalogUnavailable,
    MediaRecord,
    ensure_schema,
)
from search.catalog.engine import create_catalog_engine, parse_url
from search.catalog.schema import UtcDateTime
from search.catalog.schema import metadata as latest_schema
from search.errors import ConfigError, NotFound
from search.ids import media_id

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# -- fixtures ---------------------------------------------------------------------------------


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A scratch PostgreSQL database for the whole run, dropped afterwards."""
    try:
        admin = _pg_admin()
    except Exception as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    name = f"mmsearch_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}"
    url: str = request.getfixturevalue("pg_database")
    engine = create_catalog_engine(parse_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(catalog_url)
    yield cat
    cat.close()


def _image(cat: Catalog, source: str, name: str, **fields: object) -> MediaRecord:
    uri = f"/photos/{name}"
    return cat.upsert_media(uri, kind="image", source_id=source, **fields)  # type: ignore[arg-type]


# -- opening ----------------------------------------------------------------------------------


def test_open_creates_schema_and_parent_folder(tmp_path: Path) -> None:
    db = tmp_path / "not" / "yet" / "catalog.sqlite3"
    with Catalog.open(f"sqlite:///{db}") as cat:
        assert cat.ping() and db.exists() and cat.dialect == "sqlite"
        mode = cat._engine.connect().exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal"


def test_plain_postgresql_urls_use_psycopg_and_bad_urls_are_config_errors() -> None:
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ConfigError, match="only sqlite"):
        Catalog.open("mysql://u@h/db")
    with pytest.raises(ConfigError, match="not a database URL"):
        Catalog.open("just some words")


def test_unreachable_server_is_catalog_unavailable() -> None:
    with pytest.raises(CatalogUnavailable):
        Catalog.open("postgresql://postgres@127.0.0.1:1/nothing")


def test_closed_catalog_refuses_work_and_fails_ping(catalog: Catalog) -> None:
    catalog.close()
    assert catalog.ping() is False
    with pytest.raises(CatalogClosed):
        catalog.list_jobs()


# -- sources and media ------------------------------------------------------------------------


def test_upserting_a_source_twice_names_the_same_source(catalog: Catalog) -> None:
    first = catalog.upsert_source("folder", "/photos", {"recursive": True})
    again = catalog.upsert_source("folder", "/photos", {"recursive": False})
    assert again.id == first.id and again.options == {"recursive": False}
    assert again.created_at == first.created_at and again.created_at.tzinfo == timezone.utc
    assert [s.id for s in catalog.list_sources()] == [first.id]
    scanned = catalog.mark_source_scanned(first.id)
    assert scanned.last_scan_at is not None and scanned.last_scan_at >= first.created_at
    with pytest.raises(ValueError, match="unknown source kind"):
        catalog.upsert_source("ftp", "/x")
    with pytest.raises(NotFound):
        catalog.get_source("nope")


def test_upsert_media_is_idempotent_by_uri_and_keeps_what_it_is_not_told(catalog: Catalog) -> None:
    src = catalog.upsert_source("folder", "/photos")
    exif = {"exif": {"Make": "Canon"}}
    first = _image(catalog, src.id, "a.jpg", size_bytes=10, mtime=1.5, metadata=exif)
    again = _image(catalog, src.id, "a.jpg", width=640, metadata={"album": "summer"})
    assert again.id == first.id == media_id("/photos/a.jpg")
    assert (again.size_bytes, again.mtime, again.width) == (10, 1.5, 640)
    assert again.metadata == {"exif": {"Make": "Canon"}, "album": "summer"}
    assert again.created_at == first.created_at and again.updated_at >= first.updated_at
    assert len(catalog.media_for_source(src.id)) == 1
    assert catalog.get_media_by_uri("/photos/a.jpg") == again
    assert catalog.get_media_by_uri("/photos/missing.jpg") is None
    assert set(catalog.get_media_many([first.id, "unknown", first.id])) == {first.id}
    with pytest.raises(FrozenInstanceError):
        again.status = "indexed"  # type: ignore[misc]


def test_concurrent_upserts_of_one_uri_make_one_row(catalog: Catalog) -> None:
    src = catalog.upsert_source("folder", "/photos")
    threads = [threading.Thread(target=_image, args=(catalog, src.id, "same.jpg"), kwargs={"width": i + 1}) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [m.uri for m in catalog.media_for_source(src.id)] == ["/photos/same.jpg"]


def test_media_status_transitions_record_error_reasons(catalog: Catalog) -> None:
    src = catalog.upsert_source("folder", "/photos")
    item = _image(catalog, src.id, "broken.jpg")
    assert item.status == "pending" and item.indexed_at is None
    with pytest.raises(ValueError, match="needs an error"):
        catalog.set_media_status(item.id, "failed")
    failed = catalog.set_media_status(item.id, "failed", "cannot identify image file")
    assert (failed.status, failed.error) == ("failed", "cannot identify image file")
    done = catalog.set_media_status(
        item.id,
        "indexed",
        point_count=1,
        model="ViT-B-32",
        thumbnail="ab/cd.webp",
        width=4,
        height=3,
        metadata={"exif": {"Model": "X100\x00\x00"}},
    )
    assert (done.status, done.error, done.point_count) == ("indexed", None, 1)
    assert (done.model, done.thumbnail, done.width, done.height) == ("ViT-B-32", "ab/cd.webp", 4, 3)
    assert done.metadata == {"exif": {"Model": "X100"}}  # NULs stripped: JSONB refuses them
    assert done.indexed_at is not None and done.indexed_at.tzinfo == timezone.utc
    with pytest.raises(ValueError, match="unknown media status"):
        catalog.set_media_status(item.id, "weird")
    with pytest.raises(ValueError, match="not JSON"):
        catalog.set_media_status(item.id, "indexed", metadata={"raw": b"\x01"})
    with pytest.raises(NotFound):
        catalog.set_media_status("no-such-id", "indexed")
    with pytest.raises(NotFound):
        catalog.upsert_media("/x.jpg", kind="image", source_id="no-such-source")


def test_unchanged_means_indexed_with_the_same_fingerprint(catalog: Catalog) -> None:
    src = catalog.upsert_source("folder", "/photos")
    uri = "/photos/a.jpg"
    assert not catalog.is_unchanged(uri, 10, 1.25)
    item = _image(catalog, src.id, "a.jpg", size_bytes=10, mtime=1.25, content_hash="h1")
    assert not catalog.is_unchanged(uri, 10, 1.25)  # pending: never finished
    catalog.set_media_status(item.id, "indexed", model="m1")
    assert catalog.is_unchanged(uri, 10, 1.25)
    assert catalog.is_unchanged(uri, 10, 1.25, "h1", model="m1")
    assert not catalog.is_unchanged(uri, 11, 1.25)
    assert not catalog.is_unchanged(uri, 10, 2.0)
    assert not catalog.is_unchanged(uri, 10, 1.25, "h2")
    assert not catalog.is_unchanged(uri, 10, 1.25, model="m2")
    catalog.set_media_status(item.id, "failed", "decoder crashed")
    assert not catalog.is_unchanged(uri, 10, 1.25)  # failures are retried


def test_items_missing_from_a_scan_are_flagged_deleted_once(catalog: Catalog) -> None:
    photos = catalog.upsert_source("folder", "/photos")
    other = catalog.upsert_source("folder", "/other")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _image(catalog, photos.id, name)
    kept = catalog.upsert_media("/other/z.jpg", kind="image", source_id=other.id)
    gone = catalog.mark_missing_deleted(photos.id, ["/photos/a.jpg", "/photos/c.jpg"])
    assert [(m.uri, m.status) for m in gone] == [("/photos/b.jpg", "deleted")]
    assert catalog.mark_missing_deleted(photos.id, ["/photos/a.jpg", "/photos/c.jpg"]) == []
    deleted = catalog.media_for_source(photos.id, status="deleted")
    assert [m.uri for m in deleted] == ["/photos/b.jpg"]
    assert catalog.get_media(kept.id).status == "pending"
    back = _image(catalog, photos.id, "b.jpg")  # the file came back
    assert back.status == "pending"


def test_counts_by_kind_and_status(catalog: Catalog) -> None:
    src = catalog.upsert_source("manifest", "/shop.csv")
    a = _image(catalog, src.id, "a.jpg")
    _image(catalog, src.id, "b.jpg")
    catalog.upsert_media("/v/clip.mp4", kind="video", source_id=src.id, status="failed", error="no video stream")
    catalog.upsert_media("sku-1", kind="product", source_id=src.id, status="indexed")
    catalog.set_media_status(a.id, "indexed")
    assert catalog.counts_by_kind_and_status() == {
        "image": {"indexed": 1, "pending": 1},
        "video": {"failed": 1},
        "product": {"indexed": 1},
    }


# -- jobs ----------------------------------------------------------------------------------------


def test_job_lifecycle_and_first_finish_wins(catalog: Catalog) -> None:
    job = catalog.create_job("ingest_folder", {"path": "/photos"})
    assert (job.status, job.params) == ("queued", {"path": "/photos"})
    assert (job.processed, job.finished, job.started_at) == (0, False, None)
    running = catalog.start_job(job.id)
    assert running.status == "running" and running.started_at is not None
    assert catalog.start_job(job.id).started_at == running.started_at  # redelivered task
    done = catalog.finish_job(job.id, "done")
    assert done.finished and done.finished_at is not None
    assert catalog.finish_job(job.id, "failed", "late worker").status == "done"
    cancelled = catalog.cancel_job(catalog.create_job("crawl").id)
    assert catalog.start_job(cancelled.id).status == "cancelled"
    with pytest.raises(ValueError, match="needs an error"):
        catalog.finish_job(job.id, "failed")
    with pytest.raises(ValueError, match="final job status"):
        catalog.finish_job(job.id, "running")
    newest = catalog.list_jobs(limit=1)
    assert [j.id for j in newest] == [cancelled.id]
    assert [j.id for j in catalog.list_jobs(status="done")] == [job.id]


def test_unknown_jobs_are_not_found(catalog: Catalog) -> None:
    for call in (
        lambda: catalog.get_job("nope"),
        lambda: catalog.add_to_job("nope", indexed=1),
        lambda: catalog.record_failure("nope", "/a.jpg", "corrupt"),
        lambda: catalog.job_failures("nope"),
        lambda: catalog.start_job("nope"),
        lambda: catalog.get_media("nope"),
    ):
        with pytest.raises(NotFound):
            call()


def test_failures_are_listed_in_order(catalog: Catalog) -> None:
    job = catalog.create_job("ingest_urls")
    catalog.record_failure(job.id, "http://x/a.jpg", "HTTP 404")
    catalog.record_failure(job.id, "http://x/b.jpg", "not an image")
    failures = catalog.job_failures(job.id)
    assert [(f.uri, f.reason) for f in failures] == [
        ("http://x/a.jpg", "HTTP 404"),
        ("http://x/b.jpg", "not an image"),
    ]
    assert all(f.job_id == job.id and f.at.tzinfo == timezone.utc for f in failures)
    assert catalog.get_job(job.id).failed == 0  # counters move only through add_to_job
    with pytest.raises(ValueError):
        catalog.record_failure(job.id, "http://x/c.jpg", "  ")


def test_job_counters_survive_concurrent_threads(catalog: Catalog) -> None:
    job = catalog.create_job("ingest_folder")

    def work() -> None:
        for _ in range(25):
            catalog.add_to_job(job.id, discovered=2, indexed=1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = catalog.add_to_job(job.id, skipped=1, failed=3)
    assert (final.discovered, final.indexed, final.skipped, final.failed) == (400, 200, 1, 3)
    with pytest.raises(ValueError, match="only grow"):
        catalog.add_to_job(job.id, indexed=-1)


def _count_in_process(url: str, job_id: str, inherited: Catalog, n: int) -> None:
    """Child of a fork: half the work through its own Catalog, half through the inherited one."""
    own = Catalog.open(url)
    for i in range(n):
        (own if i % 2 else inherited).add_to_job(job_id, indexed=1)
    own.close()


def test_job_counters_survive_concurrent_processes(catalog_url: str, catalog: Catalog) -> None:
    job = catalog.create_job("ingest_folder")
    catalog.add_to_job(job.id, discovered=1)  # the parent's pool holds a live connection now
    ctx = multiprocessing.get_context("fork")
    args = (catalog_url, job.id, catalog, 40)
    procs = [ctx.Process(target=_count_in_process, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for _ in range(20):
        catalog.add_to_job(job.id, skipped=1)
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    final = catalog.get_job(job.id)
    assert (final.discovered, final.indexed, final.skipped) == (1, 80, 20)


def _open_and_create_job(url: str) -> None:
    with Catalog.open(url) as cat:
        cat.create_job("ingest_folder")


def test_workers_opening_a_new_catalog_at_once_create_it_once(catalog_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_open_and_create_job, args=(catalog_url,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with Catalog.open(catalog_url) as cat:
        assert len(cat.list_jobs()) == 3


# -- schema versions ------------------------------------------------------------------------------


V1_ROWS = (
    "INSERT INTO sources (id, kind, uri, options, created_at) VALUES ('s1', 'folder', '/p', '{}', :at)",
    "INSERT INTO media (id, source_id, uri, kind, size_bytes, mtime, status, metadata,"
    " created_at, updated_at)"
    " VALUES (:mid, 's1', '/p/a.jpg', 'image', 10, 1.5, 'indexed', '{\"w\": 1}', :at, :at)",
    "INSERT INTO jobs (id, kind, params, status, indexed, created_at) VALUES ('j1', 'ingest_folder', '{}', 'done', 1, :at)",
)


def _v1_database(url: str) -> Engine:
    """A catalog as the first release left it, with an indexed photo and a finished job."""
    engine = create_catalog_engine(parse_url(url))
    assert ensure_schema(engine, target=1) == 1
    at = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        for sql in V1_ROWS:
            stmt = text(sql).bindparams(bindparam("at", type_=UtcDateTime()))
            conn.execute(stmt, {"at": at, "mid": media_id("/p/a.jpg")})
    return engine


def test_an_older_catalog_is_upgraded_in_place(catalog_url: str) -> None:
    _v1_database(catalog_url).dispose()
    with Catalog.open(catalog_url) as cat:
        photo = cat.get_media_by_uri("/p/a.jpg")
        assert photo is not None and photo.metadata == {"w": 1}
        assert photo.point_count == 0 and photo.thumbnail is None
        assert photo.indexed_at == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)  # backfilled
        job = cat.get_job("j1")
        assert (job.indexed, job.skipped) == (1, 0)
        cat.record_failure("j1", "/p/b.jpg", "corrupt")  # the table added in version 2
        assert cat.is_unchanged("/p/a.jpg", 10, 1.5)
        with cat._engine.connect() as conn:
            version = conn.execute(text("SELECT version FROM schema_version")).scalar()
        assert version == SCHEMA_VERSION
        assert _shape(cat._engine) == _latest_shape(catalog_url)


def _shape(engine: Engine, schema: str | None = None) -> dict[str, object]:
    """Columns (type, nullability, default), indexes and foreign keys of each catalog table."""
    insp = inspect(engine)
    shape: dict[str, object] = {}
    for table in latest_schema.tables:
        cols = {
            c["name"]: (str(c["type"]), c["nullable"], _default(c.get("default"), schema))
            for c in insp.get_columns(table, schema=schema)
        }
        idx = sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table, schema=schema))
        fks = sorted(
            (tuple(f["constrained_columns"]), f["referred_table"], f["options"].get("ondelete"))
            for f in insp.get_foreign_keys(table, schema=schema)
        )
        shape[table] = (cols, idx, fks)
    return shape


def _default(default: object, schema: str | None) -> str:
    """Server defaults as text, without the schema prefix PostgreSQL puts on sequence names."""
    return str(default).replace(f"{schema}.", "").strip("'()")


def _latest_shape(url: str) -> dict[str, object]:
    """The shape ``schema.py`` describes, built directly with create_all next to the real one."""
    engine = create_catalog_engine(parse_url(url))
    if engine.dialect.name == "sqlite":
        engine.dispose()
        reference = url.replace("catalog.sqlite3", "reference.sqlite3")
        engine = create_catalog_engine(parse_url(reference))
        latest_schema.create_all(engine)
        try:
            return _shape(engine)
        finally:
            engine.dispose()
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA reference"))
        latest_schema.create_all(conn.execution_options(schema_translate_map={None: "reference"}))
    try:
        return _shape(engine, schema="reference")
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA reference CASCADE"))
        engine.dispose()


def test_a_newer_or_foreign_database_is_refused(catalog_url: str) -> None:
    engine = create_catalog_engine(parse_url(catalog_url))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE media (id VARCHAR(10))"))
    with pytest.raises(ConfigError, match="not created by mmsearch"):
        Catalog.open(catalog_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE media"))
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    with pytest.raises(ConfigError, match="newer than this mmsearch"):
        Catalog.open(catalog_url)


def test_timestamps_are_utc_aware_and_naive_ones_are_refused(catalog: Catalog) -> None:
    src = catalog.upsert_source("folder", "/photos")
    local = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    scanned = catalog.mark_source_scanned(src.id, local)
    assert scanned.last_scan_at == datetime(2025, 1, 1, 10, 0, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="timezone-aware"):
        catalog.mark_source_scanned(src.id, datetime(2025, 1, 1))
