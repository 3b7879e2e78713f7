"""The duplicate finder on real files ingested through the real pipeline, on both store backends.

The archive holds an original photo, a byte-for-byte copy (exact), a resized re-encoded copy
(near), a copied video (exact, hashed only because its size collides) and unrelated pictures.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ingest.jobs import run_ingest
from mmsearch.cli import main
from search.api import create_app
from search.duplicates import find_duplicates
from search.services import IngestRequest, Services
from synthetic.images import generate_images
from tests._api_support import settings_for
from tests._ingest_support import make_video


@dataclass
class Archive:
    folder: Path
    services: Services


@pytest.fixture(scope="module", params=["edge", "local"])
def archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    root = tmp_path_factory.mktemp(f"dups-{request.param}")
    folder = root / "photos"
    (folder / "backup").mkdir(parents=True)
    generate_images(root / "scenes", 5, seed=5, formats=False)  # the procedural world: distinct scenes
    scenes = sorted((root / "scenes").rglob("*.jpg"))
    original = shutil.copyfile(scenes[0], folder / "beach.jpg")
    shutil.copyfile(original, folder / "backup" / "beach copy.jpg")
    Image.open(original).resize((180, 180)).save(folder / "beach small.jpg", quality=70)
    for number, scene in enumerate(scenes[1:], start=2):
        shutil.copyfile(scene, folder / f"other{number}.jpg")
    clip = make_video(folder / "clip.mp4", ["red", "blue"], seconds_each=1.0)
    shutil.copyfile(clip, folder / "backup" / "clip.mp4")
    settings = settings_for(request.param, root / "data")
    services = Services(settings)
    job = run_ingest(services, IngestRequest(paths=(str(folder),)))
    assert job.failed == 0, job
    yield Archive(folder, services)
    services.close()


def _names(items: object) -> set[str]:
    return {item.uri.rsplit("/", 1)[-1].replace("%20", " ") for item in items}  # type: ignore[attr-defined]


def test_exact_copies_are_grouped_by_their_bytes(archive: Archive) -> None:
    report = find_duplicates(archive.services.store, archive.services.catalog, near=False)
    groups = sorted((_names(g.items) for g in report.exact), key=sorted)
    assert groups == [{"beach.jpg", "beach copy.jpg"}, {"clip.mp4"}] or groups == [{"beach copy.jpg", "beach.jpg"}, {"clip.mp4"}]
    video = next(g for g in report.exact if _names(g.items) == {"clip.mp4"})
    assert len(video.items) == 2 and report.hashed_files == 2, "videos are hashed only because their sizes collide"
    assert all(g.reclaimable_bytes == g.items[0].size_bytes for g in report.exact)


def test_a_resized_copy_is_a_near_duplicate_and_unrelated_pictures_are_not(archive: Archive) -> None:
    report = find_duplicates(archive.services.store, archive.services.catalog, threshold=0.9)
    near = [_names(g.items) for g in report.near]
    assert near == [{"beach.jpg", "beach copy.jpg", "beach small.jpg"}]
    group = report.near[0]
    assert all(0.9 <= i.similarity <= 1.0 for i in group.items) and all(i.size_bytes for i in group.items)
    assert report.points_checked >= 7


def test_cli_exports_csv_and_json(archive: Archive, tmp_path: Path) -> None:
    if archive.services.settings.store_url:  # the CLI opens the default (Edge) store of its data dir
        pytest.skip("one backend is enough for the export format")
    archive.services.close()  # the Edge folder admits one process-wide owner at a time
    data_dir = str(archive.services.settings.data_dir)
    out_json, out_csv = tmp_path / "d.json", tmp_path / "d.csv"
    base = ["--data-dir", data_dir, "--model", "mmsearch-synthetic", "duplicates", "--threshold", "0.9"]
    assert main([*base, "--format", "json", "--output", str(out_json)]) == 0
    assert main([*base, "--format", "csv", "--output", str(out_csv)]) == 0
    document = json.loads(out_json.read_text())
    assert document["exact_groups"] == 2 and document["near_groups"] == 1
    assert {"uri", "size_bytes", "taken_at", "similarity"} <= set(document["groups"][0]["items"][0])
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len({r["group"] for r in rows}) == 3 and {r["kind"] for r in rows} == {"exact", "near"}


def test_api_lists_groups_as_json_and_csv(archive: Archive) -> None:
    with TestClient(create_app(archive.services.settings, services=archive.services)) as client:
        response = client.get("/duplicates", params={"threshold": 0.9})
        assert response.status_code == 200, response.text
        assert response.json()["exact_groups"] == 2 and response.json()["near_groups"] == 1
        exported = client.get("/duplicates", params={"kind": "exact", "format": "csv"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert len(list(csv.DictReader(io.StringIO(exported.text)))) == 4
        bad = client.get("/duplicates", params={"threshold": 2})
        assert bad.status_code == 422 and "threshold" in bad.text


@pytest.mark.slow
def test_duplicates_page_shows_the_groups_the_api_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from streamlit.testing.v1 import AppTest

    from tests import ui_live

    api = ui_live.shared_api()
    expected = httpx.get(f"{api.url}/duplicates", params={"threshold": 0.95}, timeout=300).json()
    monkeypatch.setenv("MMSEARCH_API_URL", api.url)
    at = AppTest.from_file(str(ui_live.ROOT / "ui" / "app.py"), default_timeout=300).run()
    at.switch_page("pages_duplicates.py").run()
    next(b for b in at.button if b.label == "Find duplicates").click().run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Exact groups"] == str(expected["exact_groups"])
    assert metrics["Near groups"] == str(expected["near_groups"])
    assert len(at.dataframe) == min(len(expected["groups"]), 50)
