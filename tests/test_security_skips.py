"""What folder discovery does with links and special files (issue 9, item 11; issue 10).

Every entry that looks like media by its name but is not indexed leaves a record with its
reason in the job; FIFOs and devices are never opened, so nothing blocks; symbolic links that
leave the ingested folder are not followed unless ``MMSEARCH_INGEST__FOLLOW_SYMLINKS`` says so.
An entry that cannot be read keeps whatever was indexed below it: unreadable is not deleted.

Real files (Pillow), real ``os.symlink`` / ``os.mkfifo``, the real pipeline with the bundled model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.jobs import run_ingest
from search.catalog.types import JobRecord
from search.embedder import Embedder, load_embedder
from search.services import IngestRequest, Services
from search.store import Filter, Match
from tests._ingest_support import SharedModelServices, base_settings, file_uri, image_point_id, make_image

INGEST_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return load_embedder(base_settings(tmp_path_factory.mktemp("model")))


@pytest.fixture
def make_services(tmp_path: Path, embedder: Embedder) -> Iterator[Callable[..., Services]]:
    opened: list[Services] = []

    def make(**ingest: object) -> Services:
        services = SharedModelServices(base_settings(tmp_path / "data", ingest=ingest), embedder)
        opened.append(services)
        return services

    yield make
    for services in opened:
        services.close()


def ingest(services: Services, folder: Path) -> tuple[JobRecord, dict[str, str]]:
    """Run a real ingest in a thread with a deadline (a blocked open must fail the test, not hang it)."""
    result: list[JobRecord] = []
    worker = threading.Thread(target=lambda: result.append(run_ingest(services, IngestRequest(paths=[str(folder)]))), daemon=True)
    worker.start()
    worker.join(INGEST_TIMEOUT_S)
    assert not worker.is_alive(), f"ingest still running after {INGEST_TIMEOUT_S:.0f}s: something blocked"
    job = result[0]
    assert job.status == "done" and job.discovered == job.indexed + job.skipped + job.failed, job
    reasons = {Path(f.uri.removeprefix("file://")).name: f.reason for f in services.catalog.job_failures(job.id)}
    return job, reasons


def indexed(services: Services, path: Path) -> bool:
    return services.store.count(Filter((Match("media_id", (_media_id(path),)),))) > 0


def _media_id(path: Path) -> str:
    from search.ids import media_id

    return media_id(file_uri(path))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """An ingested folder with links inside and out, and a folder of real photos outside it."""
    root, outside = tmp_path / "photos", tmp_path / "outside"
    make_image(root / "red.jpg", "red")
    make_image(outside / "blue.jpg", "blue")
    make_image(outside / "album" / "green.png", "green")
    os.symlink(root / "red.jpg", root / "again.jpg")  # stays inside: followed
    os.symlink(outside / "blue.jpg", root / "escape.jpg")
    os.symlink(outside / "album", root / "album")
    return root, outside


def test_links_that_leave_the_folder_are_skipped_with_their_reason(
    make_services: Callable[..., Services], tree: tuple[Path, Path]
) -> None:
    root, _outside = tree
    services = make_services()
    job, reasons = ingest(services, root)

    assert indexed(services, root / "red.jpg") and indexed(services, root / "again.jpg")
    assert not indexed(services, root / "escape.jpg") and not indexed(services, root / "album" / "green.png")
    assert (job.indexed, job.failed) == (2, 0)
    for name in ("escape.jpg", "album"):
        assert "symbolic link" in reasons[name] and "outside" in reasons[name], reasons
        assert "MMSEARCH_INGEST__FOLLOW_SYMLINKS" in reasons[name]


def test_the_follow_symlinks_setting_indexes_links_that_leave_the_folder(
    make_services: Callable[..., Services], tree: tuple[Path, Path]
) -> None:
    root, _outside = tree
    services = make_services(follow_symlinks=True)
    job, reasons = ingest(services, root)
    assert job.indexed == 4 and not reasons
    assert services.store.count(Filter((Match("media_id", (_media_id(root / "album" / "green.png"),)),))) == 1
    assert {h.id for h in services.store.scroll(limit=100).hits} >= {image_point_id(root / "escape.jpg")}


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    """One entry per silent skip of issue 9, next to one real photo."""
    root = tmp_path / "odd"
    make_image(root / "real.jpg", "red")
    os.symlink(root / "was-here.jpg", root / "dangling.jpg")
    os.mkfifo(root / "pipe.jpg")
    os.symlink("/dev/urandom", root / "urandom.jpg")
    make_image(root / "dir_named.jpg" / "inner.png", "green")  # a folder with a photo's name
    (root / "notes.txt").write_text("not media by name: not a candidate, no record")
    return root


def test_entries_named_like_media_that_are_not_indexed_are_recorded(
    make_services: Callable[..., Services], odd_folder: Path
) -> None:
    services = make_services()
    job, reasons = ingest(services, odd_folder)

    assert indexed(services, odd_folder / "real.jpg") and indexed(services, odd_folder / "dir_named.jpg" / "inner.png")
    assert job.indexed == 2
    assert set(reasons) == {"dangling.jpg", "pipe.jpg", "urandom.jpg", "dir_named.jpg"}, reasons
    assert "dangling symbolic link" in reasons["dangling.jpg"]
    assert "named pipe" in reasons["pipe.jpg"]
    assert "outside" in reasons["urandom.jpg"]  # by default the link is not even followed
    assert "folder" in reasons["dir_named.jpg"]
    assert job.failed == 1, "the dangling link is a failure; the rest are deliberate skips"


def test_devices_are_never_opened_even_when_links_are_followed(make_services: Callable[..., Services], odd_folder: Path) -> None:
    services = make_services(follow_symlinks=True)
    job, reasons = ingest(services, odd_folder)
    assert job.indexed == 2
    assert "character device" in reasons["urandom.jpg"] and "named pipe" in reasons["pipe.jpg"]


def test_an_entry_that_cannot_be_read_keeps_what_was_indexed_below_it(
    make_services: Callable[..., Services], tmp_path: Path
) -> None:
    """A folder reached through a chain of links too long to follow (ELOOP even for root) is
    unreadable, not deleted: its photos keep their points, and the job says why."""
    root = tmp_path / "photos"
    make_image(root / "red.jpg", "red")
    make_image(root / "album" / "blue.jpg", "blue")
    services = make_services()
    ingest(services, root)
    assert indexed(services, root / "album" / "blue.jpg")

    real = tmp_path / "kept" / "album"
    real.parent.mkdir()
    (root / "album").rename(real)
    previous = real
    for hop in range(45):  # the kernel gives up after 40
        link = tmp_path / "kept" / f"hop{hop}"
        os.symlink(previous, link)
        previous = link
    os.symlink(previous, root / "album")

    job, reasons = ingest(services, root)
    assert "album" in reasons and job.failed == 1, reasons
    assert indexed(services, root / "album" / "blue.jpg"), "an unreadable folder's photos were deleted"
    assert services.catalog.get_media_by_uri(file_uri(root / "album" / "blue.jpg")).status == "indexed"  # type: ignore[union-attr]
