"""Catalog writes in groups: a group of ingest outcomes is one transaction of a few statements,
on SQLite and PostgreSQL, and leaves exactly the rows the per-item methods leave.

Statements are counted with a SQLAlchemy ``before_cursor_execute`` listener on the catalog's
own engine, transactions with a ``commit`` listener; nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pytest
from sqlalchemy import event

from search.catalog import Catalog, MediaRecord, MediaWrite
from search.ids import media_id
from tests.test_catalog import catalog, catalog_url, pg_database  # noqa: F401 - fixtures, SQLite and PostgreSQL


@dataclass
class Statements:
    """What a block sent to the database: every SQL statement, and how many transactions committed."""

    sql: list[str] = field(default_factory=list)
    commits: int = 0

    def count(self, verb: str) -> int:
        return sum(1 for s in self.sql if s.lstrip().upper().startswith(verb))


@contextmanager
def counting(cat: Catalog) -> Iterator[Statements]:
    seen = Statements()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.sql.append(statement)

    def on_commit(_conn: Any) -> None:
        seen.commits += 1

    engine = cat._engine
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


def pending(source_id: str, job_id: str, uris: list[str]) -> list[MediaWrite]:
    return [MediaWrite(u, "image", source_id=source_id, size_bytes=10 + i, mtime=1.5, job_id=job_id) for i, u in enumerate(uris)]


def indexed(uri: str, job_id: str, n: int) -> MediaWrite:
    return MediaWrite(
        uri,
        "image",
        status="indexed",
        point_count=1,
        model="m",
        thumbnail=f"{n:02x}.webp",
        content_hash=f"h{n}",
        width=64 + n,
        height=48,
        metadata={"mime": "image/jpeg", "n": n},
        job_id=job_id,
    )


def comparable(record: MediaRecord) -> dict[str, Any]:
    """A record without what must differ between two items (id, uri, clocks)."""
    values = asdict(record)
    for name in ("id", "uri", "created_at", "updated_at", "indexed_at"):
        values.pop(name)
    values["indexed"] = record.indexed_at is not None
    return values


@pytest.mark.parametrize("size", [8, 64])
def test_a_group_of_outcomes_is_one_transaction_of_a_few_statements_whatever_its_size(catalog: Catalog, size: int) -> None:  # noqa: F811
    src = catalog.upsert_source("folder", "/photos")
    job = catalog.create_job("ingest")
    uris = [f"file:///photos/{i:03d}.jpg" for i in range(size + 2)]
    with counting(catalog) as registered:
        had = catalog.write_media(pending(src.id, job.id, uris))
    assert registered.commits == 1 and registered.count("INSERT") == 1 and len(registered.sql) <= 2  # BEGIN on SQLite
    assert set(had.values()) == {0} and len(had) == size + 2

    done = [indexed(u, job.id, n) for n, u in enumerate(uris[:size])]
    failed = [MediaWrite(u, "image", status="failed", error="cannot identify image file", job_id=job.id) for u in uris[size:]]
    failures = [(w.uri, w.error or "") for w in failed]
    with counting(catalog) as group:
        after = catalog.commit_outcomes(job.id, {"discovered": size + 2, "indexed": size, "failed": 2}, failures, done + failed)
    # BEGIN (SQLite), the counters, the failure rows, the stored metadata read, one upsert per row shape
    assert group.commits == 1, group.sql
    assert group.count("UPDATE") == 1 and group.count("SELECT") == 1 and group.count("INSERT") == 3, group.sql
    assert len(group.sql) <= 6, group.sql
    assert (after.discovered, after.indexed, after.failed) == (size + 2, size, 2)

    first = catalog.get_media_by_uri(uris[0])
    assert first is not None and (first.status, first.point_count, first.width, first.size_bytes) == ("indexed", 1, 64, 10)
    assert first.metadata == {"mime": "image/jpeg", "n": 0} and first.indexed_at is not None
    last = catalog.get_media_by_uri(uris[-1])
    assert last is not None and (last.status, last.error, last.size_bytes) == ("failed", "cannot identify image file", size + 11)
    assert [(f.uri, f.reason) for f in catalog.job_failures(job.id)] == failures


def test_a_rescan_reads_500_paths_per_query(catalog: Catalog) -> None:  # noqa: F811
    src = catalog.upsert_source("folder", "/photos")
    job = catalog.create_job("ingest")
    uris = [f"file:///photos/{i:04d}.jpg" for i in range(1200)]
    catalog.write_media(pending(src.id, job.id, uris))
    with counting(catalog) as lookups:
        found = catalog.media_by_uris([*uris, "file:///photos/unknown.jpg"])
    assert lookups.count("SELECT") == 3  # ceil(1201 / 500)
    assert sorted(found) == uris and found[uris[7]].size_bytes == 17


def test_group_writes_leave_the_rows_the_per_item_methods_leave(catalog: Catalog) -> None:  # noqa: F811
    """None keeps the stored value, metadata merges key by key, status and error are always
    written, and a re-registered item keeps its points count: the same as upsert_media and
    set_media_status, item for item."""
    src = catalog.upsert_source("folder", "/photos")
    job = catalog.create_job("ingest")
    steps = [
        pending(src.id, job.id, ["a"]),
        [indexed("a", job.id, 3)],
        [MediaWrite("a", "image", status="pending", source_id=src.id, size_bytes=99, job_id=job.id)],  # changed on disk
        [MediaWrite("a", "video", status="partial", error="decoding stopped at 2.0 s", point_count=4, metadata={"fps": 8.0})],
        [MediaWrite("a", "video", status="failed", error="corrupt video", point_count=0)],
    ]
    by_group, by_item = "file:///photos/group.jpg", "file:///photos/item.jpg"
    for [write] in steps:
        catalog.write_media([replace(write, uri=by_group)])
        _per_item(catalog, replace(write, uri=by_item))
        group, item = catalog.get_media_by_uri(by_group), catalog.get_media_by_uri(by_item)
        assert group is not None and item is not None
        assert comparable(group) == comparable(item)
    assert group.metadata == {"mime": "image/jpeg", "n": 3, "fps": 8.0} and group.size_bytes == 99


def test_an_item_written_twice_in_one_group_ends_as_the_later_write(catalog: Catalog) -> None:  # noqa: F811
    job = catalog.create_job("ingest")
    writes = [indexed("file:///a.jpg", job.id, 1), MediaWrite("file:///a.jpg", "image", status="indexed", metadata={"x": 1})]
    assert catalog.write_media(writes) == {media_id("file:///a.jpg"): 1}
    record = catalog.get_media_by_uri("file:///a.jpg")
    assert record is not None and record.metadata == {"mime": "image/jpeg", "n": 1, "x": 1} and record.width == 65


def test_a_bad_write_in_a_group_writes_nothing_of_it(catalog: Catalog) -> None:  # noqa: F811
    job = catalog.create_job("ingest")
    good = indexed("file:///good.jpg", job.id, 1)
    with pytest.raises(ValueError, match="failed media item needs an error reason"):
        catalog.commit_outcomes(job.id, {"indexed": 1}, [], [good, MediaWrite("file:///bad.jpg", "image", status="failed")])
    assert catalog.get_media_by_uri("file:///good.jpg") is None and catalog.get_job(job.id).indexed == 0


def _per_item(cat: Catalog, write: MediaWrite) -> None:
    """What ingestion did before group writes: upsert the row, then set its status."""
    if cat.get_media_by_uri(write.uri) is None or write.status == "pending":
        cat.upsert_media(
            write.uri,
            kind=write.kind,
            source_id=write.source_id,
            status=write.status,
            error=write.error,
            size_bytes=write.size_bytes,
            mtime=write.mtime,
            job_id=write.job_id,
        )
    else:
        cat.upsert_media(write.uri, kind=write.kind, status="pending")
    if write.status != "pending":
        cat.set_media_status(
            cat.get_media_by_uri(write.uri).id,  # type: ignore[union-attr]
            write.status,
            write.error,
            point_count=write.point_count,
            model=write.model,
            thumbnail=write.thumbnail,
            content_hash=write.content_hash,
            width=write.width,
            height=write.height,
            duration=write.duration,
            metadata=write.metadata,
            job_id=write.job_id,
        )
