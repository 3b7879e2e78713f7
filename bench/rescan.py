"""Incremental rescans at archive scale: a folder of many tiny JPEGs, indexed, then rescanned unchanged.

Writes ``--files`` 8x8 JPEGs (1,000 per subfolder, as a camera archive is laid out; the bytes
of a few distinct pictures, written fast) and runs the real embedded ingest twice with the
bundled model, Qdrant Edge and SQLite, in this process:

- ``first_index``: every file read, decoded, thumbnailed, embedded and written;
- ``rescan``: the same folder again, unchanged: every file is stat'ed (it must be, to know it
  is unchanged) and judged against catalog rows read 500 paths per query, so no file is opened
  and nothing is written but the job's own record;
- ``walk_only``: the folder walk alone (``walk_folder``: one stat per entry), the floor a
  rescan cannot go below.

Catalog statements are counted with a SQLAlchemy ``before_cursor_execute`` listener on the
catalog's engine: ``statements_per_file`` for each run, and ``media_lookups`` (reads of media
rows by id) for the rescan.

    python bench/rescan.py --quick      # 5,000 files
    python bench/rescan.py              # 100,000 files (the first index takes a while: ~60 files/s on 2 cores)

Prints one line per figure, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.jobs import run_ingest
from ingest.sources.folder import FolderEntry, walk_folder
from search.catalog import Catalog
from search.services import IngestRequest, Services
from search.settings import BUNDLED_MODEL, load_settings

PER_FOLDER = 1000
DISTINCT = 64  # different pictures; the files are copies of their bytes


@dataclass
class Run:
    seconds: float = 0.0
    files_per_s: float = 0.0
    statements: int = 0
    statements_per_file: float = 0.0
    media_lookups: int = 0
    indexed: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class Report:
    files: int
    cpu_count: int | None
    write_s: float
    walk_only_s: float
    first_index: Run = field(default_factory=Run)
    rescan: Run = field(default_factory=Run)


class StatementCounter:
    """Counts what the catalog sends to its database while it is attached."""

    def __init__(self, catalog: Catalog) -> None:
        self.sql: list[str] = []
        self._engine = catalog._engine  # the catalog's own engine: nothing else talks to the database

    def __enter__(self) -> StatementCounter:
        event.listen(self._engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.sql.append(statement)

    @property
    def media_lookups(self) -> int:
        return sum(1 for s in self.sql if s.startswith("SELECT") and "media.uri" in s and "media.id IN" in s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-rescan-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        folder = write_files(root / "archive", args.files)
        report = Report(args.files, os.cpu_count(), round(time.perf_counter() - started, 2), 0.0)
        settings = load_settings(data_dir=root / "data", model=BUNDLED_MODEL, ocr={"enabled": False})  # flat squares
        services = Services(settings)
        try:
            services.embedder, services.store  # noqa: B018 - loaded before the clock starts
            report.first_index = ingest_once(services, folder, args.files)
            report.walk_only_s = round(walk_only(folder), 3)
            report.rescan = ingest_once(services, folder, args.files)
        finally:
            services.close()
    print_report(report)
    print(json.dumps({"bench": "rescan", **asdict(report)}))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 files instead of 100,000")
    parser.add_argument("--files", type=int, default=None, help="how many files (default 100,000, quick 5,000)")
    args = parser.parse_args(argv)
    args.files = args.files or (5_000 if args.quick else 100_000)
    return args


def write_files(folder: Path, count: int) -> Path:
    """``count`` 8x8 JPEGs, ``PER_FOLDER`` per subfolder; a few encodings, written as bytes."""
    pictures = []
    for i in range(DISTINCT):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)).save(buffer, "JPEG", quality=90)
        pictures.append(buffer.getvalue())
    for i in range(count):
        sub = folder / f"{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            sub.mkdir(parents=True)
        (sub / f"IMG_{i:06d}.jpg").write_bytes(pictures[i % DISTINCT])
    return folder


def ingest_once(services: Services, folder: Path, files: int) -> Run:
    with StatementCounter(services.catalog) as counter:
        started = time.perf_counter()
        job = run_ingest(services, IngestRequest(paths=[str(folder)]))
        elapsed = time.perf_counter() - started
    if job.status != "done" or job.indexed + job.skipped + job.failed != files:
        raise RuntimeError(f"the ingest ended {job.status}: {job.indexed} indexed, {job.skipped} skipped, {job.failed} failed")
    return Run(
        round(elapsed, 3),
        round(files / elapsed, 1),
        len(counter.sql),
        round(len(counter.sql) / files, 5),
        counter.media_lookups,
        job.indexed,
        job.skipped,
        job.failed,
    )


def walk_only(folder: Path) -> float:
    started = time.perf_counter()
    found = sum(1 for entry in walk_folder(folder) if isinstance(entry, FolderEntry))
    if not found:
        raise RuntimeError("the walk found nothing")
    return time.perf_counter() - started


def print_report(report: Report) -> None:
    first, again = report.first_index, report.rescan
    print(f"{report.files} files of 8x8 JPEG in {report.files // PER_FOLDER or 1} folders, written in {report.write_s:.1f} s")
    print(
        f"first index: {first.seconds:8.1f} s ({first.files_per_s:7.1f} files/s), "
        f"{first.statements} catalog statements ({first.statements_per_file:.3f} per file)"
    )
    print(
        f"rescan:      {again.seconds:8.1f} s ({again.files_per_s:7.1f} files/s), "
        f"{again.statements} catalog statements ({again.statements_per_file:.4f} per file), "
        f"{again.media_lookups} media lookups ({again.media_lookups / report.files:.4f} per file), "
        f"{again.skipped} skipped"
    )
    print(f"walk only:   {report.walk_only_s:8.1f} s (one stat per entry: the floor of a rescan)")


if __name__ == "__main__":
    sys.exit(main())
