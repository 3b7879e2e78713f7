"""Ingestion in embedded mode (no broker): the job runs in this process, which owns the store.

Real files (Pillow, PyAV/libx264), the bundled model, Qdrant Edge and SQLite. Each test states
the exact point ids that must exist, computed from ``search.ids`` rather than read back from
the pipeline, and checks the catalog's record of every item.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.jobs import run_ingest
from search.embedder import Embedder, load_embedder
from search.ids import media_id
from search.services import IngestRequest, Services
from search.store import Filter, Match
from tests._ingest_support import (
    BAD_MAX_PIXELS,
    VIDEO,
    VIDEO_FRAMES,
    VIDEO_WINDOWS,
    SharedModelServices,
    base_settings,
    build_media,
    expected_ids,
    file_uri,
    image_point_id,
    make_bad_folder,
    make_image,
    make_video,
    video_point_ids,
)


def all_ids(services: Services) -> set[str]:
    return {hit.id for hit in services.store.scroll(limit=10_000).hits}


@pytest.fixture(scope="module")
def media_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_media(tmp_path_factory.mktemp("media-template"))


@pytest.fixture
def media(media_template: Path, tmp_path: Path) -> Path:
    """A private copy: tests change and delete files in it."""
    return Path(shutil.copytree(media_template, tmp_path / "media"))


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return load_embedder(base_settings(tmp_path_factory.mktemp("model")))


@pytest.fixture
def services(tmp_path: Path, embedder: Embedder) -> Iterator[Services]:
    svc = SharedModelServices(base_settings(tmp_path / "data", ingest={"max_image_pixels": BAD_MAX_PIXELS}), embedder)
    yield svc
    svc.close()


def test_folder_ingest_writes_exactly_the_expected_points_and_records(services: Services, media: Path) -> None:
    seen: list[int] = []
    job = run_ingest(services, IngestRequest(paths=[str(media)]), progress=lambda j: seen.append(j.processed))

    assert (job.status, job.discovered, job.indexed, job.skipped, job.failed) == ("done", 5, 5, 0, 0)
    assert seen and seen[-1] == 5, "progress must report the final counters"
    assert all_ids(services) == expected_ids(media)

    video = services.catalog.get_media_by_uri(file_uri(media / VIDEO))
    assert video is not None and video.status == "indexed" and video.kind == "video"
    assert video.point_count == len(VIDEO_FRAMES) + len(VIDEO_WINDOWS)
    assert video.duration == pytest.approx(4.0, abs=0.2) and (video.width, video.height) == (96, 64)
    red = services.catalog.get_media_by_uri(file_uri(media / "red.jpg"))
    assert red is not None and red.status == "indexed" and red.point_count == 1 and red.content_hash
    assert (services.settings.thumbnails_dir / red.thumbnail).is_file()

    segment = services.store.scroll(Filter(must=(Match("kind", ("segment",)),))).hits[0].payload
    assert (segment["t_start"], segment["t_end"], segment["n_frames"]) == (0.0, 4.0, 4)
    assert segment["video_id"] == media_id(file_uri(media / VIDEO))
    yellow = services.store.retrieve([image_point_id(media / "sub/deeper/yellow.jpg")])[0].payload
    assert yellow["dirs"][-2:] == [str(media / "sub"), str(media / "sub/deeper")]
    assert (yellow["kind"], yellow["width"], yellow["height"], yellow["model"]) == ("image", 96, 72, "mmsearch-synthetic")


def test_frames_carry_the_colour_shown_at_their_time(services: Services, media: Path) -> None:
    """The 1 s frame shows red and the 3 s frame blue: each is closest to the photo of its colour."""
    run_ingest(services, IngestRequest(paths=[str(media)]))
    video = media_id(file_uri(media / VIDEO))
    frames = services.store.scroll(Filter(must=(Match("video_id", (video,)), Match("kind", ("frame",)))), with_vectors=True).hits
    by_time = {hit.payload["t"]: hit.vector for hit in frames}
    photos = services.store.retrieve(
        [image_point_id(media / "red.jpg"), image_point_id(media / "sub/blue.webp")], with_vectors=True
    )
    red, blue = (np.asarray(p.vector) for p in photos)
    assert float(by_time[1.0] @ red) > float(by_time[1.0] @ blue)
    assert float(by_time[3.0] @ blue) > float(by_time[3.0] @ red)


def test_rescans_skip_unchanged_replace_changed_and_remove_deleted(services: Services, media: Path) -> None:
    request = IngestRequest(paths=[str(media)])
    run_ingest(services, request)
    before = {hit.id: np.asarray(hit.vector) for hit in services.store.scroll(limit=100, with_vectors=True).hits}

    again = run_ingest(services, request)
    assert (again.discovered, again.indexed, again.skipped, again.failed) == (5, 0, 5, 0)
    assert set(before) == all_ids(services)

    (media / "green.png").unlink()
    make_image(media / "red.jpg", "blue", (120, 90))  # same name, new content
    os.utime(media / "red.jpg", (1_700_000_000, 1_700_000_000))
    make_video(media / VIDEO, ["green"], seconds_each=2.0)  # a shorter video: stale frames must go
    changed = run_ingest(services, request)
    assert (changed.discovered, changed.indexed, changed.skipped, changed.failed) == (4, 2, 2, 0)

    green_id = image_point_id(media / "green.png")
    shorter = video_point_ids(media / VIDEO, (0.0, 1.0), ((0.0, 2.0),))
    expected = (expected_ids(media) - {green_id} - video_point_ids(media / VIDEO, VIDEO_FRAMES, VIDEO_WINDOWS)) | shorter
    assert all_ids(services) == expected
    red_id = image_point_id(media / "red.jpg")
    red_now = np.asarray(services.store.retrieve([red_id], with_vectors=True)[0].vector)
    assert not np.allclose(red_now, before[red_id]), "a changed file must be re-embedded"
    assert services.store.retrieve([red_id])[0].payload["width"] == 120
    gone = services.catalog.get_media_by_uri(file_uri(media / "green.png"))
    assert gone is not None and gone.status == "deleted"
    assert not (services.settings.thumbnails_dir / f"{gone.id}.webp").exists()

    (media / "green.png").write_bytes((media / "sub/blue.webp").read_bytes())  # it comes back
    back = run_ingest(services, request)
    assert (back.indexed, back.skipped) == (1, 4)
    assert green_id in all_ids(services)


def test_bad_files_are_failed_with_reasons_and_good_files_indexed(services: Services, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    reasons = make_bad_folder(folder)
    make_video(folder / "fine.mp4", ["yellow"], seconds_each=2.0)

    job = run_ingest(services, IngestRequest(paths=[str(folder)]))

    assert job.status == "done"
    assert (job.discovered, job.indexed, job.failed) == (len(reasons) + 2, 2, len(reasons))
    failures = {Path(f.uri).name: f.reason for f in services.catalog.job_failures(job.id)}
    assert set(failures) == set(reasons)
    for name, phrase in reasons.items():
        assert phrase in failures[name], f"{name}: {failures[name]!r} should mention {phrase!r}"
        record = services.catalog.get_media_by_uri(file_uri(folder / name))
        assert record is not None and record.status == "failed" and record.error == failures[name]
    expected = {image_point_id(folder / "whole.jpg")} | video_point_ids(folder / "fine.mp4", (0.0, 1.0), ((0.0, 2.0),))
    assert all_ids(services) == expected


def test_product_manifest_rows_become_filterable_product_points(services: Services, tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    make_image(shop / "photos" / "p1-front.jpg", "red")
    make_image(shop / "photos" / "p1-back.jpg", "red", (80, 80))
    make_image(shop / "photos" / "p2.png", "green")
    manifest = shop / "products.csv"
    manifest.write_text(
        "sku,title,category,brand,price,colour,images\n"
        'P1,Red mug,kitchen,Acme,"$1,299.50",red,photos/p1-front.jpg|photos/p1-back.jpg\n'
        "P2,Green mug,kitchen,Bolt,9.99,green,photos/p2.png\n"
        "P3,Ghost,kitchen,Acme,5,none,photos/missing.jpg\n"
        ",No id,kitchen,Acme,5,none,photos/p2.png\n"
    )
    job = run_ingest(services, IngestRequest(manifests=[str(manifest)]))

    assert (job.indexed, job.failed) == (3, 2)
    reasons = " | ".join(f.reason for f in services.catalog.job_failures(job.id))
    assert "products.csv line 4: cannot read file" in reasons and "no product id" in reasons
    hits = services.store.scroll(Filter(must=(Match("brand", ("Acme",)),))).hits
    assert {h.id for h in hits} == {image_point_id(shop / "photos" / n, "product") for n in ("p1-front.jpg", "p1-back.jpg")}
    payload = hits[0].payload
    assert (payload["kind"], payload["product_id"], payload["price"], payload["colour"]) == ("product", "P1", 1299.5, "red")

    manifest.write_text(manifest.read_text().replace("9.99", "7.49"))  # a new price re-indexes the row
    again = run_ingest(services, IngestRequest(manifests=[str(manifest)]))
    assert (again.indexed, again.skipped) == (1, 2)
    p2 = services.store.retrieve([image_point_id(shop / "photos" / "p2.png", "product")])[0].payload
    assert p2["price"] == 7.49


def test_an_empty_request_and_a_missing_path_are_clear_errors(services: Services, tmp_path: Path) -> None:
    from search.errors import ConfigError

    with pytest.raises(ConfigError, match="nothing to ingest"):
        run_ingest(services, IngestRequest())
    job = run_ingest(services, IngestRequest(paths=[str(tmp_path / "nowhere")]))
    assert (job.status, job.failed) == ("done", 1)
    assert "no such file or folder" in services.catalog.job_failures(job.id)[0].reason


def test_windows_cover_every_frame_with_overlapping_fixed_spans() -> None:
    from ingest.stages.pooling import windows

    spans = windows([float(t) for t in range(10)], 10.0, length=4.0, stride=2.0)
    assert [(w.t_start, w.t_end) for w in spans] == [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (6.0, 10.0)]
    assert spans[1].indices == (2, 3, 4, 5)
    tail = windows([0.0, 1.0, 2.0, 3.0, 4.0], 4.5, length=4.0, stride=2.0)
    assert [(w.t_start, w.t_end) for w in tail] == [(0.0, 4.0), (2.0, 4.5)], "the last window is clipped to the end"
    assert windows([], 3.0, 4.0, 2.0) == []


def test_globs_filter_and_symlink_loops_are_walked_once(services: Services, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_image(root / "a" / "keep.jpg", "red")
    make_image(root / "a" / "drop.png", "green")
    make_image(root / "b" / "KEEP2.JPG", "blue")
    make_image(root / "c" / "Other.JPG", "yellow")
    (root / "a" / "up").symlink_to(root, target_is_directory=True)  # a loop back to the top
    request = IngestRequest(paths=[str(root)], include=["*.jpg"], exclude=["b/*"])
    job = run_ingest(services, request)
    assert (job.discovered, job.indexed, job.failed) == (2, 2, 0)
    assert all_ids(services) == {image_point_id(root / "a" / "keep.jpg"), image_point_id(root / "c" / "Other.JPG")}


def test_background_launcher_runs_jobs_in_the_store_owning_process(services: Services, media: Path) -> None:
    """What the API uses in embedded mode: the id comes back at once, the job runs on a thread."""
    from ingest.jobs import BackgroundLauncher

    launcher = BackgroundLauncher(services)
    try:
        first = launcher(IngestRequest(paths=[str(media / "sub")]))
        second = launcher(IngestRequest(paths=[str(media / "red.jpg")]))
        launcher.join(timeout=120)
    finally:
        launcher.close()
    jobs = [services.catalog.get_job(job_id) for job_id in (first, second)]
    assert [(j.status, j.indexed) for j in jobs] == [("done", 2), ("done", 1)]
    assert all_ids(services) == {image_point_id(media / n) for n in ("sub/blue.webp", "sub/deeper/yellow.jpg", "red.jpg")}


def _photo_folder_with_bad_files(root: Path) -> Path:
    """Real JPEGs (sizes, subsampling, grey, EXIF-turned, CMYK), a PNG, a truncated and a fake JPEG."""
    from tests.test_batch_decode import photo, save_jpeg

    for i, (w, h) in enumerate([(640, 480), (320, 240), (480, 640), (1024, 768), (300, 200), (200, 200)]):
        save_jpeg(photo(w, h, 20 + i), root / f"photo_{i}.jpg", subsampling=i % 3)
    save_jpeg(photo(400, 300, 30).convert("L"), root / "grey.jpg")
    save_jpeg(photo(400, 300, 31), root / "turned.jpg", orientation=6)
    save_jpeg(photo(320, 240, 32).convert("CMYK"), root / "cmyk.jpg")
    photo(160, 120, 33).save(root / "plain.png", "PNG")
    whole = save_jpeg(photo(320, 240, 34), root / "whole.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "notes.jpg").write_bytes(b"\xff\xd8\xff" + b"not a jpeg at all" * 20)
    return root


def test_batched_jpeg_decoding_indexes_what_the_pillow_path_indexes(embedder: Embedder, tmp_path: Path) -> None:
    """MMSEARCH_INGEST__DEVICE_DECODE=on (torchvision's libjpeg-turbo on this CPU) against off:
    the same points and failures, vectors within a cosine of 0.999, and not bit-identical (the
    batched path really ran)."""
    folder = _photo_folder_with_bad_files(tmp_path / "photos")
    runs = {}
    for mode in ("off", "on"):
        settings = base_settings(tmp_path / f"data-{mode}", ingest={"device_decode": mode, "decode_batches_in_flight": 2})
        svc = SharedModelServices(settings, embedder)
        try:
            job = run_ingest(svc, IngestRequest(paths=[str(folder)]))
            hits = svc.store.scroll(limit=1000, with_vectors=True).hits
            failures = {(f.uri, f.reason) for f in svc.catalog.job_failures(job.id)}
            records = {uri: svc.catalog.get_media_by_uri(uri) for uri in (file_uri(p) for p in folder.iterdir())}
            runs[mode] = (job, {h.id: np.asarray(h.vector) for h in hits}, failures, records)
        finally:
            svc.close()
    (job_off, vectors_off, failures_off, records_off), (job_on, vectors_on, failures_on, records_on) = runs["off"], runs["on"]
    assert (job_on.status, job_on.indexed, job_on.failed) == (job_off.status, job_off.indexed, job_off.failed) == ("done", 11, 2)
    assert set(vectors_on) == set(vectors_off) and len(vectors_on) == 11
    assert failures_on == failures_off and {uri.rsplit("/", 1)[1] for uri, _ in failures_on} == {"truncated.jpg", "notes.jpg"}
    for uri, record in records_on.items():
        other = records_off[uri]
        assert record is not None and other is not None
        assert (record.status, record.width, record.height, record.thumbnail) == (
            other.status,
            other.width,
            other.height,
            other.thumbnail,
        )
    cosines = {i: float(np.dot(vectors_on[i], vectors_off[i])) for i in vectors_on}
    assert min(cosines.values()) >= 0.999, cosines
    assert min(cosines.values()) < 1 - 1e-6, "the batched decoder never ran"
