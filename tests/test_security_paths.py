"""Server-side paths in ingest requests stay inside the allowed roots, and no message echoes a file.

Found by trying as an attacker would (issue 9): ``POST /ingest {"url_lists": ["/etc/passwd"]}``
recorded every line of the file in the job's failures, readable by anyone at ``/jobs/{id}``.
Now a path outside the allowed roots (the data dir, ``MMSEARCH_INGEST__ALLOWED_ROOTS`` and
``mmsearch serve --root``) is a 422 naming the field and no job is created; symlinks are
resolved before the check; relative paths are refused; a manifest's photos may not climb out
of it; and the reasons recorded for bad lines name the line, never its text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.jobs import BackgroundLauncher
from ingest.sources import SourceContext, SourceSpec, discover
from ingest.sources.manifest import read_manifest, read_url_list
from search.api import create_app
from search.fetch import Fetcher
from search.services import Services
from tests._ingest_support import base_settings, make_image, serve_folder

SECRET = "s3cret-line-content"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An allowed root with a URL list and a manifest, and a folder outside every root."""
    base = tmp_path_factory.mktemp("roots")
    root, outside = base / "allowed", base / "outside"
    make_image(root / "shop" / "inside.png", "red")
    make_image(outside / f"{SECRET}.png", "blue")
    (outside / "list.txt").write_text(f"{SECRET}\n")
    (root / "list.txt").write_text(f"# a comment\nroot:x:0:0:{SECRET}:/root:/bin/bash\nnot a url {SECRET}\n")
    (root / "shop" / "products.csv").write_text(
        "id,title,image\n"
        f"P-{SECRET},Escapes by dots,../../outside/{SECRET}.png\n"
        f"P2,Absolute outside,{outside / f'{SECRET}.png'}\n"
        f"P3,File URL outside,{(outside / f'{SECRET}.png').as_uri()}\n"
        "P4,Inside,inside.png\n"
        f"P-{SECRET}-5,No image,\n"
    )
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return {"base": base, "root": root, "outside": outside}


@pytest.fixture(scope="module")
def api(world: dict[str, Path]) -> Iterator[tuple[TestClient, BackgroundLauncher, Services]]:
    settings = base_settings(world["base"] / "data", ingest={"allowed_roots": [str(world["root"])]})
    services = Services(settings)
    launcher = BackgroundLauncher(services)
    try:
        with TestClient(create_app(settings, services=services, launcher=launcher)) as client:
            yield client, launcher, services
    finally:
        launcher.close()
        services.close()


def jobs(client: TestClient) -> int:
    return len(client.get("/jobs", params={"limit": 500}).json()["jobs"])


def refused(client: TestClient, body: dict[str, Any], field: str) -> str:
    before = jobs(client)
    response = client.post("/ingest", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(field), detail
    assert jobs(client) == before, "a refused request creates no job"
    return detail


def finished(client: TestClient, launcher: BackgroundLauncher, body: dict[str, Any]) -> dict[str, Any]:
    started = client.post("/ingest", json=body)
    assert started.status_code == 202, started.text
    launcher.join(timeout=120)
    deadline = time.monotonic() + 60
    while not (job := client.get(started.json()["status_url"]).json())["finished"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job["finished"], job
    return job


@pytest.mark.parametrize("secret_file", ["/etc/passwd", "/proc/self/environ"])
def test_a_url_list_outside_the_roots_is_refused_before_any_job(api: Any, secret_file: str) -> None:
    client, _, _ = api
    detail = refused(client, {"url_lists": [secret_file]}, "url_lists.0")
    assert "allowed" in detail and "root:" not in detail


@pytest.mark.parametrize("field", ["paths", "url_lists", "manifests"])
def test_every_path_field_is_checked_against_the_roots(api: Any, world: dict[str, Path], field: str) -> None:
    client, _, _ = api
    outside = str(world["outside"] / "list.txt")
    refused(client, {field: [str(world["root"] / "list.txt"), outside]}, f"{field}.1")


@pytest.mark.parametrize("path", ["list.txt", "./allowed/list.txt", "~/list.txt", "file:///etc/passwd"])
def test_relative_paths_are_refused_from_the_api(api: Any, path: str) -> None:
    client, _, _ = api
    assert "absolute" in refused(client, {"paths": [path]}, "paths.0")


def test_a_symlink_inside_a_root_that_leads_out_is_refused(api: Any, world: dict[str, Path]) -> None:
    client, _, _ = api
    refused(client, {"paths": [str(world["root"] / "escape")]}, "paths.0")
    refused(client, {"url_lists": [str(world["root"] / "escape" / "list.txt")]}, "url_lists.0")
    refused(client, {"paths": [str(world["root"] / "shop" / ".." / ".." / "outside")]}, "paths.0")


def test_bad_lines_of_an_allowed_url_list_are_reported_without_their_text(api: Any, world: dict[str, Path]) -> None:
    client, launcher, _ = api
    job = finished(client, launcher, {"url_lists": [str(world["root"] / "list.txt")]})
    assert job["failed"] == 2 and job["indexed"] == 0
    reasons = sorted(f["reason"] for f in job["failures"])
    assert reasons == ["line 2 is not an http(s) URL", "line 3 is not an http(s) URL"]
    assert all(SECRET not in f["uri"] and "root:" not in f["uri"] for f in job["failures"])


def test_manifest_photos_may_not_leave_the_roots(api: Any, world: dict[str, Path]) -> None:
    client, launcher, _ = api
    job = finished(client, launcher, {"manifests": [str(world["root"] / "shop" / "products.csv")]})
    assert (job["indexed"], job["failed"]) == (1, 4), job
    for failure in job["failures"]:
        assert SECRET not in failure["reason"] and SECRET not in failure["uri"], failure
    reasons = " | ".join(f["reason"] for f in job["failures"])
    for line in (2, 3, 4):
        assert f"line {line}: the image lies outside the folders this server may read" in reasons
    assert "line 6: the product has no image" in reasons


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"foo": 1}, "options.foo"),
        ({"crawl_max_depth": "a"}, "options.crawl_max_depth"),
        ({"crawl_delay": -1}, "options.crawl_delay"),
    ],
)
def test_a_bad_ingest_option_is_the_clients_mistake(api: Any, world: dict[str, Path], options: dict, field: str) -> None:
    client, _, _ = api
    response = client.post("/ingest", json={"paths": [str(world["root"])], "options": options})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(field)


def test_the_api_knows_every_ingest_option() -> None:
    from ingest.sources import OPTION_TYPES
    from search.api.schemas import IngestOptionsIn

    assert set(IngestOptionsIn.model_fields) == set(OPTION_TYPES)


def test_url_list_and_manifest_messages_name_lines_not_content() -> None:
    problems = list(read_url_list(f"https://ok.example/a.jpg\n{SECRET}\nftp://{SECRET}/x\n", name="list.txt"))
    assert [p.reason for p in problems[1:]] == ["line 2 is not an http(s) URL", "line 3 is not an http(s) URL"]  # type: ignore[union-attr]
    assert [p.uri for p in problems[1:]] == ["list.txt#L2", "list.txt#L3"]  # type: ignore[union-attr]
    csv_text = f"id,image\n{SECRET},\n,{SECRET}.png\n{SECRET},a.png,{SECRET}\n"
    jsonl_text = f'{{"id": "{SECRET}"}}\n["{SECRET}"]\n{{"{SECRET}\n'
    for text, name in ((csv_text, "m.csv"), (jsonl_text, "m.jsonl")):
        reasons = [p.reason for p in read_manifest(text, name, "/nowhere") if hasattr(p, "reason")]
        assert len(reasons) == 3 and all(SECRET not in r for r in reasons), reasons


def test_a_remote_manifest_cannot_name_local_files(world: dict[str, Path], tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_image(site / "remote.png", "green")
    secret = world["outside"] / f"{SECRET}.png"
    (site / "m.csv").write_text(f"id,image\nR1,remote.png\nR2,{secret}\nR3,{secret.as_uri()}\n")
    settings = base_settings(tmp_path / "data", ingest={"allow_hosts": ["127.0.0.1"], "allowed_roots": [str(world["outside"])]})
    with serve_folder(site) as (base, _), Fetcher(settings.ingest) as fetcher:
        ctx = SourceContext(settings.ingest, fetcher, "src", {})
        found = list(discover(SourceSpec("manifest", f"{base}/m.csv"), ctx))
    items = [f for f in found if hasattr(f, "kind")]
    problems = [f for f in found if not hasattr(f, "kind")]
    # an absolute path in a web manifest is a path on that web site, never on this disk
    assert [i.uri for i in items] == [f"{base}/remote.png", f"{base}{secret}"]
    assert [p.reason for p in problems] == [f"{base}/m.csv line 4: a manifest on the web may name only http(s) images"]
