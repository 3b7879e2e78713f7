"""What an ingest costs the catalog: statements per group of outcomes, and per rescanned file.

A real embedded ingest (bundled model, Qdrant Edge, SQLite) over real JPEGs; statements are
counted with a SQLAlchemy ``before_cursor_execute`` listener on the catalog's engine. The old
engine sent about eight statements per image (a lookup, a second lookup for the unchanged check,
a registration with its read-back, a status write with its locked read and read-back); an
unchanged rescan sent two per file.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ingest import discovery
from ingest.jobs import run_ingest
from search.services import IngestRequest, Services
from tests._ingest_support import make_image
from tests.test_catalog_groups import counting

IMAGES = 40


def photo_folder(root: Path, count: int) -> Path:
    colours = ["red", "green", "blue", "yellow"]
    for i in range(count):
        make_image(root / f"img_{i:03d}.jpg", colours[i % 4], (64 + i % 16, 48))
    return root


def media_lookups(sql: list[str]) -> int:
    """Reads of whole media rows by id (discovery's batched lookups)."""
    return sum(1 for s in sql if s.lstrip().upper().startswith("SELECT") and "media.uri" in s and "media.id IN" in s)


def transactions(sql: list[str]) -> list[list[str]]:
    """The statements grouped by transaction (SQLite: each starts with BEGIN)."""
    found: list[list[str]] = []
    for statement in sql:
        if statement.startswith("BEGIN"):
            found.append([])
        elif found:
            found[-1].append(statement)
    return found


def writes_media(statement: str) -> bool:
    return statement.lstrip().upper().startswith(("INSERT INTO MEDIA", "UPDATE MEDIA"))


def test_an_ingest_writes_the_catalog_in_groups_not_per_image(services: Services, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos", IMAGES)
    with counting(services.catalog) as seen:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
    assert (job.status, job.indexed, job.failed) == ("done", IMAGES, 0)
    assert media_lookups(seen.sql) == 1, "one lookup for the whole folder"
    writing = [t for t in transactions(seen.sql) if any(writes_media(s) for s in t)]
    registration, *groups = writing
    assert [s.split()[0] for s in registration] == ["INSERT"], "the folder's items registered in one statement"
    assert groups and sum(1 for t in groups for s in t if writes_media(s)) == len(groups), "one upsert per group"
    for group in groups:  # the counters, the stored metadata it merges into, the rows: one transaction
        assert len(group) == 3 and group[0].startswith("UPDATE jobs") and "media.metadata" in group[1], group
    assert len(groups) < IMAGES


def test_an_unchanged_rescan_costs_one_lookup_per_chunk_of_paths(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = photo_folder(tmp_path / "photos", IMAGES)
    run_ingest(services, IngestRequest(paths=[str(folder)]))
    monkeypatch.setattr(discovery, "ADMIT_CHUNK", 16)
    with counting(services.catalog) as seen:
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
    assert (job.status, job.skipped, job.indexed) == ("done", IMAGES, 0)
    assert media_lookups(seen.sql) == math.ceil(IMAGES / 16)
    assert not [s for s in seen.sql if writes_media(s)]
    # the only other statement about media is the sweep for vanished files; the rest is per job
    touching_media = [s for s in seen.sql if "FROM media" in s or writes_media(s)]
    assert len(touching_media) == media_lookups(seen.sql) + 1 and "media.source_id = " in touching_media[-1]
