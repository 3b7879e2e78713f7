"""What the API serves from disk, and what a deletion leaves behind (issue 9, items 1 and 6).

An indexed file is served only while its real path lies inside the folder it was indexed from
and it is still the file that was indexed (size and mtime as the catalog recorded them): a file
swapped for a symbolic link to a system file answers 404, a file edited since answers 409. A
deleted item answers 404 everywhere and its thumbnails are gone from disk, whether the API
deleted it or a rescan found its file gone.

Real files (Pillow, PyAV), the real ingest pipeline with the bundled model, Qdrant Edge, SQLite
and the real FastAPI app.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.jobs import run_ingest
from ingest.work import purge_items
from search.api import create_app
from search.embedder import Embedder, load_embedder
from search.engine import media as core
from search.ids import media_id
from search.services import IngestRequest, Services
from search.store import Filter, Match
from tests._ingest_support import SharedModelServices, base_settings, file_uri, make_image, make_video

SECRET = "root:x:0:0:the secret line nobody may read\n"


@dataclass
class Served:
    """A folder ingested through the real pipeline and the API serving it."""

    folder: Path
    services: Services
    client: TestClient

    def id_of(self, name: str) -> str:
        return media_id(file_uri(self.folder / name))

    def ingest(self) -> None:
        job = run_ingest(self.services, IngestRequest(paths=[str(self.folder)]))
        assert job.status == "done", job

    def points(self, name: str) -> int:
        return self.services.store.count(Filter((Match("media_id", (self.id_of(name),)),)))


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return load_embedder(base_settings(tmp_path_factory.mktemp("model")))


@pytest.fixture
def served(tmp_path: Path, embedder: Embedder) -> Iterator[Served]:
    folder = tmp_path / "photos"
    make_image(folder / "red.jpg", "red")
    make_image(folder / "sub" / "blue.png", "blue")
    make_video(folder / "clip.mp4", ["green", "yellow"], seconds_each=1.0)
    services = SharedModelServices(base_settings(tmp_path / "data"), embedder)
    with TestClient(create_app(services.settings, services=services)) as client:
        setup = Served(folder, services, client)
        setup.ingest()
        yield setup
    services.close()


def secret_outside(tmp_path: Path, like: Path | None = None) -> Path:
    """A file outside every indexed folder; with ``like``, of the same size and mtime."""
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir(exist_ok=True)
    text = SECRET
    if like is not None:
        size = like.stat().st_size
        text = (SECRET * (size // len(SECRET) + 1))[:size]
    secret.write_text(text)
    if like is not None:
        stat = like.stat()
        os.utime(secret, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return secret


def swap_for_link(path: Path, target: Path) -> None:
    path.unlink()
    os.symlink(target, path)


# -- serving only what was indexed, from where it was indexed ---------------------------------


def test_an_unchanged_file_is_served_whole_and_in_ranges(served: Served) -> None:
    path = served.folder / "sub" / "blue.png"
    whole = served.client.get(f"/media/{served.id_of('sub/blue.png')}/file")
    assert whole.status_code == 200 and whole.content == path.read_bytes()
    assert whole.headers["content-type"] == "image/png" and whole.headers["accept-ranges"] == "bytes"
    part = served.client.get(f"/media/{served.id_of('sub/blue.png')}/file", headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == path.read_bytes()[4:12]


def test_a_file_swapped_for_a_link_to_a_system_file_is_not_served(served: Served) -> None:
    swap_for_link(served.folder / "red.jpg", Path("/etc/passwd") if Path("/etc/passwd").is_file() else Path("/etc/hostname"))
    answer = served.client.get(f"/media/{served.id_of('red.jpg')}/file")
    assert answer.status_code == 404, answer.status_code  # not answer.text: it would print the file
    assert "outside" in answer.json()["detail"] and "root:" not in answer.text


def test_a_link_to_a_lookalike_outside_the_folder_is_not_served(served: Served, tmp_path: Path) -> None:
    """Same size and mtime as the indexed file: only the folder check can refuse it."""
    original = served.folder / "red.jpg"
    secret = secret_outside(tmp_path, like=original)
    swap_for_link(original, secret)
    assert original.stat().st_size == secret.stat().st_size  # the metadata check alone would pass it
    answer = served.client.get(f"/media/{served.id_of('red.jpg')}/file", headers={"Range": "bytes=0-9"})
    assert answer.status_code == 404 and SECRET[:10] not in answer.text


def test_a_folder_swapped_for_a_link_out_of_the_tree_is_not_served(served: Served, tmp_path: Path) -> None:
    sub = served.folder / "sub"
    moved = tmp_path / "elsewhere" / "sub"
    moved.parent.mkdir(exist_ok=True)
    sub.rename(moved)
    os.symlink(moved, sub)  # the same file, now reached through a link that leaves the folder
    answer = served.client.get(f"/media/{served.id_of('sub/blue.png')}/file")
    assert answer.status_code == 404 and "outside" in answer.json()["detail"]


def test_a_file_changed_since_indexing_answers_409(served: Served) -> None:
    path = served.folder / "red.jpg"
    make_image(path, "green", (97, 72))  # rewritten in place: another size, a new mtime
    answer = served.client.get(f"/media/{served.id_of('red.jpg')}/file")
    assert answer.status_code == 409, answer.text
    assert "changed since it was indexed" in answer.json()["detail"]


def test_a_touched_file_of_the_same_size_answers_409(served: Served) -> None:
    path = served.folder / "sub" / "blue.png"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert served.client.get(f"/media/{served.id_of('sub/blue.png')}/file").status_code == 409


def test_a_removed_file_answers_404(served: Served) -> None:
    (served.folder / "red.jpg").unlink()
    answer = served.client.get(f"/media/{served.id_of('red.jpg')}/file")
    assert answer.status_code == 404 and "no longer" in answer.json()["detail"]


def test_a_file_replaced_by_a_fifo_is_refused_without_blocking(served: Served) -> None:
    path = served.folder / "red.jpg"
    path.unlink()
    os.mkfifo(path)
    assert served.client.get(f"/media/{served.id_of('red.jpg')}/file").status_code == 409


def test_the_file_is_opened_once_so_a_later_swap_changes_nothing(served: Served, tmp_path: Path) -> None:
    """The check and the bytes come from one open file: swapping the path afterwards is too late."""
    path = served.folder / "red.jpg"
    expected = path.read_bytes()
    opened = core.media_file(served.services, served.id_of("red.jpg"))
    assert opened.handle is not None
    try:
        swap_for_link(path, secret_outside(tmp_path))
        assert opened.handle.read() == expected
    finally:
        opened.handle.close()


# -- one deletion, whoever asks for it ----------------------------------------------------------


def thumbnails(served: Served) -> set[str]:
    root = served.services.settings.thumbnails_dir
    return {p.relative_to(root).as_posix() for p in root.rglob("*.webp")}


def test_an_item_deleted_through_the_api_is_gone_everywhere(served: Served) -> None:
    red, clip = served.id_of("red.jpg"), served.id_of("clip.mp4")
    before = thumbnails(served)
    assert f"{red}.webp" in before and any(t.startswith(f"{clip}/") for t in before)
    frame = next(h.id for h in served.services.store.scroll(Filter((Match("media_id", (clip,)),)), limit=1).hits)

    for item in (red, clip):
        deleted = served.client.delete(f"/media/{item}")
        assert deleted.status_code == 200 and deleted.json()["points_deleted"] >= 1
        for url in (f"/media/{item}", f"/media/{item}/file", f"/media/{item}/thumbnail"):
            assert served.client.get(url).status_code == 404, url
        assert served.client.delete(f"/media/{item}").status_code == 404
    assert served.client.get(f"/points/{frame}/thumbnail").status_code == 404

    left = thumbnails(served)
    assert f"{red}.webp" not in left and not any(t.startswith(f"{clip}/") for t in left)
    assert left, "the other items keep their thumbnails"
    record = served.services.catalog.get_media(red)
    assert (record.status, record.point_count) == ("deleted", 0)
    assert served.client.get(f"/media/{served.id_of('sub/blue.png')}/thumbnail").status_code == 200


def test_a_file_gone_from_its_folder_is_deleted_the_same_way(served: Served) -> None:
    clip = served.id_of("clip.mp4")
    (served.folder / "clip.mp4").unlink()
    served.ingest()
    assert served.points("clip.mp4") == 0
    assert not any(t.startswith(f"{clip}/") for t in thumbnails(served))
    record = served.services.catalog.get_media(clip)
    assert (record.status, record.point_count) == ("deleted", 0)
    for url in (f"/media/{clip}", f"/media/{clip}/file", f"/media/{clip}/thumbnail"):
        assert served.client.get(url).status_code == 404, url


def test_the_celery_purge_task_deletes_the_same_way(served: Served) -> None:
    red = served.id_of("red.jpg")
    purge_items(served.services, [red])  # the body of the purge task a Celery worker runs
    assert served.points("red.jpg") == 0 and f"{red}.webp" not in thumbnails(served)
    assert served.services.catalog.get_media(red).status == "deleted"
    assert served.client.get(f"/media/{red}").status_code == 404
