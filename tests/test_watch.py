"""Folder watching with a real watchdog observer on real folders, rescans through the real pipeline.

Each test starts a ``FolderWatcher`` in its background thread over a tmp folder; rescans run
``run_ingest`` in-process, as ``mmsearch watch`` does. Waits poll the catalog with a deadline.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.jobs import run_ingest
from ingest.watch import FolderWatcher, WatchRegistry
from search.api import create_app
from search.embedder import Embedder, load_embedder
from search.ids import media_id
from search.services import IngestRequest, Services
from tests._ingest_support import SharedModelServices, base_settings, file_uri, make_image

DEADLINE = 30.0  # seconds; a rescan of a few files takes well under one on an idle machine


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return load_embedder(base_settings(tmp_path_factory.mktemp("model")))


@pytest.fixture()
def services(tmp_path: Path, embedder: Embedder) -> Iterator[Services]:
    settings = base_settings(tmp_path / "data", ingest={"watch_debounce": 0.3, "watch_rescan_interval": 0})
    held = SharedModelServices(settings, embedder)
    yield held
    held.close()


@pytest.fixture()
def watcher(services: Services) -> Iterator[FolderWatcher]:
    def rescan(request: IngestRequest) -> str:
        return run_ingest(services, request).id

    running = FolderWatcher(services.settings, services.catalog, rescan).start()
    yield running
    running.close()


def wait_for(what: str, check: Callable[[], bool]) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > DEADLINE:
            raise AssertionError(f"not within {DEADLINE:.0f} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def status_of(services: Services, path: Path) -> str | None:
    record = services.catalog.get_media_by_uri(file_uri(path))
    return record.status if record is not None else None


def state_of(watcher: FolderWatcher) -> str:
    return watcher.watched()[0].state


def test_new_changed_and_deleted_files_follow_the_folder(tmp_path: Path, services: Services, watcher: FolderWatcher) -> None:
    folder = tmp_path / "photos"
    make_image(folder / "first.jpg", "red")
    watcher.watch(str(folder))
    wait_for("the first scan indexes first.jpg", lambda: status_of(services, folder / "first.jpg") == "indexed")

    new = make_image(folder / "trip" / "new.jpg", "blue")
    took = wait_for("a new file is indexed", lambda: status_of(services, new) == "indexed")
    print(f"new file indexed {took:.1f} s after it was written")

    before = services.catalog.get_media_by_uri(file_uri(new))
    assert before is not None
    make_image(new, "green", (120, 90))
    os.utime(new, (time.time() + 5, time.time() + 5))  # a distinct mtime even on a coarse clock
    wait_for(
        "a changed file is indexed again",
        lambda: (
            (r := services.catalog.get_media_by_uri(file_uri(new))) is not None
            and r.size_bytes != before.size_bytes
            and r.status == "indexed"
        ),
    )

    (folder / "first.jpg").unlink()
    wait_for("a deleted file is removed", lambda: status_of(services, folder / "first.jpg") == "deleted")
    with TestClient(create_app(services.settings, services=services)) as client:
        assert client.get(f"/media/{media_id(file_uri(folder / 'first.jpg'))}").status_code == 404
        assert client.get(f"/media/{media_id(file_uri(new))}").status_code == 200


def test_non_media_changes_start_no_rescan(tmp_path: Path, services: Services, watcher: FolderWatcher) -> None:
    folder = tmp_path / "photos"
    make_image(folder / "a.jpg", "red")
    watcher.watch(str(folder))
    wait_for("the first scan", lambda: status_of(services, folder / "a.jpg") == "indexed")
    wait_for("the first rescan settles", lambda: state_of(watcher) == "watching")
    jobs = len(services.catalog.list_jobs(limit=100))
    (folder / "notes.txt").write_text("shopping list")
    time.sleep(1.5)
    assert len(services.catalog.list_jobs(limit=100)) == jobs


def test_a_removed_and_recreated_folder_keeps_working(tmp_path: Path, services: Services, watcher: FolderWatcher) -> None:
    folder = tmp_path / "card"
    make_image(folder / "a.jpg", "red")
    watcher.watch(str(folder))
    wait_for("the first scan", lambda: status_of(services, folder / "a.jpg") == "indexed")

    shutil.rmtree(folder)
    wait_for("the folder is reported missing", lambda: state_of(watcher) == "missing")
    assert "missing" in watcher.watched()[0].detail
    assert status_of(services, folder / "a.jpg") == "indexed", "a missing folder is not a deletion"

    make_image(folder / "b.jpg", "blue")  # the folder comes back (a remount) with other files
    wait_for("a file in the re-created folder is indexed", lambda: status_of(services, folder / "b.jpg") == "indexed")
    wait_for("what the folder lost is removed", lambda: status_of(services, folder / "a.jpg") == "deleted")
    later = make_image(folder / "c.jpg", "green")
    wait_for("events work on the re-created folder", lambda: status_of(services, later) == "indexed")


def test_an_empty_folder_with_indexed_items_looks_unmounted_and_loses_nothing(
    tmp_path: Path, services: Services, watcher: FolderWatcher
) -> None:
    folder = tmp_path / "mnt"
    make_image(folder / "a.jpg", "red")
    watcher.watch(str(folder))
    wait_for("the first scan", lambda: status_of(services, folder / "a.jpg") == "indexed")
    (folder / "a.jpg").unlink()  # what an unmount looks like from inside: the mount point is empty
    wait_for("the empty folder is reported", lambda: state_of(watcher) == "empty")
    assert status_of(services, folder / "a.jpg") == "indexed"
    make_image(folder / "b.jpg", "blue")
    wait_for("files appearing again are indexed", lambda: status_of(services, folder / "b.jpg") == "indexed")


def test_registry_keeps_watched_folders_with_their_excludes(tmp_path: Path) -> None:
    registry = WatchRegistry(tmp_path / "watched.json")
    settings = base_settings(tmp_path / "data")
    services = Services(settings)
    try:
        first = FolderWatcher(settings, services.catalog, lambda r: "", registry=registry)
        added = first.watch(str(tmp_path / "photos"), exclude=["*.png"])
        again = FolderWatcher(settings, services.catalog, lambda r: "", registry=registry)
        assert [(f.id, f.path, f.exclude) for f in again.watched()] == [(added.id, str(tmp_path / "photos"), ("*.png",))]
        assert again.unwatch(added.id) and not again.unwatch(added.id)
        assert WatchRegistry(tmp_path / "watched.json").load() == []
    finally:
        services.close()


def test_api_registers_lists_and_removes_watched_folders(tmp_path: Path, embedder: Embedder) -> None:
    media = tmp_path / "media"
    make_image(media / "a.jpg", "red")
    ingest = {"watch_debounce": 0.3, "watch_rescan_interval": 0, "allowed_roots": [str(media)]}
    services = SharedModelServices(base_settings(tmp_path / "data", ingest=ingest), embedder)

    def rescan(request: IngestRequest) -> str:
        return run_ingest(services, request).id

    watcher = FolderWatcher(services.settings, services.catalog, rescan, registry=WatchRegistry(tmp_path / "w.json")).start()
    try:
        with TestClient(create_app(services.settings, services=services, watcher=watcher)) as client:
            outside = client.post("/sources/watch", json={"path": str(tmp_path)})
            assert outside.status_code == 422 and "path" in outside.text
            assert client.post("/sources/watch", json={"path": str(media), "colour": "x"}).status_code == 422
            added = client.post("/sources/watch", json={"path": str(media), "exclude": ["*.png"]})
            assert added.status_code == 201, added.text
            source_id = added.json()["id"]
            wait_for("the watched folder is indexed", lambda: status_of(services, media / "a.jpg") == "indexed")
            listed = {s["id"]: s for s in client.get("/sources").json()["sources"]}
            assert listed[source_id]["kind"] == "folder" and listed[source_id]["watch"]["exclude"] == ["*.png"]
            assert listed[source_id]["watch"]["state"] in ("watching", "scanning")
            assert client.delete(f"/sources/{source_id}/watch").status_code == 204
            assert client.delete(f"/sources/{source_id}/watch").status_code == 404
            assert client.get("/sources").json()["sources"][0]["watch"] is None
        with TestClient(create_app(services.settings, services=services)) as client:
            assert client.post("/sources/watch", json={"path": str(media)}).status_code == 503
            assert client.get("/sources").json()["watching"] is False
    finally:
        watcher.close()
        services.close()


@pytest.mark.slow
def test_ingest_page_adds_lists_and_removes_a_watched_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from streamlit.testing.v1 import AppTest

    from tests import ui_live

    api = ui_live.shared_api()  # a real `mmsearch serve`, which runs the watcher
    folder = api.data.corpus / "watched-by-ui"
    make_image(folder / "w.jpg", "yellow")
    monkeypatch.setenv("MMSEARCH_API_URL", api.url)
    at = AppTest.from_file(str(ui_live.ROOT / "ui" / "app.py"), default_timeout=60).run()
    at.switch_page("pages_ingest.py").run()
    at.text_input(key="watch.path").input(str(folder))
    at.text_input(key="watch.exclude").input("*.png")
    next(b for b in at.button if b.label == "Watch folder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.run()
    rows = [m.value for m in at.markdown if str(folder) in m.value]
    assert rows and "skips *.png" in rows[0]
    wait_for(
        "the watched folder is indexed by the server",
        lambda: any(
            s.get("watch") and s["watch"]["state"] == "watching" and s["watch"]["last_job"]
            for s in httpx.get(f"{api.url}/sources", timeout=10).json()["sources"]
        ),
    )
    next(b for b in at.button if b.label == "Stop watching").click().run()
    at.run()
    assert not [m.value for m in at.markdown if str(folder) in m.value and "badge" in m.value]
