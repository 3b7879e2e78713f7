"""What a folder scan leaves out on purpose: ignore files, settings globs, hidden and system folders.

Real folders with real JPEGs written by Pillow; the walk is checked directly, and one real
in-process ingest checks that settings globs and an unparsable ``.mmsearchignore`` line reach
the job (the bad line is a recorded failure, everything else is indexed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.items import Problem
from ingest.jobs import run_ingest
from ingest.sources.folder import FileFilter, FolderEntry, walk_folder
from search.embedder import load_embedder
from search.services import IngestRequest
from tests._ingest_support import SharedModelServices, base_settings, make_image


def _found(root: Path, file_filter: FileFilter | None = None) -> tuple[set[str], list[Problem]]:
    file_filter = file_filter or FileFilter()
    names: set[str] = set()
    problems: list[Problem] = []
    for found in walk_folder(root, file_filter):
        if isinstance(found, FolderEntry):
            names.add(found.path.relative_to(root).as_posix())
        else:
            problems.append(found)
    return names, problems


def test_ignore_file_applies_to_its_subtree_and_deeper_files_have_the_last_word(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.png", "raw/x.jpg", "trip/c.png", "trip/keep.png", "trip/deep/d.png", "other/e.png"):
        make_image(tmp_path / name, "red")
    (tmp_path / ".mmsearchignore").write_text("# comment\nraw/\n")
    (tmp_path / "trip" / ".mmsearchignore").write_text("*.png\n!keep.png\n")
    names, problems = _found(tmp_path)
    assert problems == []
    assert names == {"a.jpg", "b.png", "trip/keep.png", "other/e.png"}


def test_anchored_pattern_matches_only_at_the_ignore_files_folder(tmp_path: Path) -> None:
    for name in ("top.jpg", "sub/top.jpg"):
        make_image(tmp_path / name, "blue")
    (tmp_path / ".mmsearchignore").write_text("/top.jpg\n")
    names, _ = _found(tmp_path)
    assert names == {"sub/top.jpg"}


def test_a_line_that_does_not_parse_is_reported_and_the_other_lines_apply(tmp_path: Path) -> None:
    for name in ("a.jpg", "skip.jpg", "b.jpg"):
        make_image(tmp_path / name, "green")
    (tmp_path / ".mmsearchignore").write_text("skip.jpg\n[z-a].jpg\n\\\n")
    names, problems = _found(tmp_path)
    assert names == {"a.jpg", "b.jpg"}
    reasons = sorted(p.reason for p in problems)
    assert len(reasons) == 2 and reasons[0].startswith("line 2 ") and reasons[1].startswith("line 3 ")
    assert all("not a valid gitignore pattern" in r and "[z-a]" not in r for r in reasons), "no file content echoed"
    assert all(p.uri.endswith("/.mmsearchignore") for p in problems)


@pytest.mark.parametrize("folder", ["@eaDir", ".thumbnails", ".Trash-1000", "$RECYCLE.BIN", "System Volume Information"])
def test_system_folders_are_skipped_even_with_hidden_included(tmp_path: Path, folder: str) -> None:
    make_image(tmp_path / "photo.jpg", "red")
    make_image(tmp_path / folder / "thumb.jpg", "red")
    assert _found(tmp_path)[0] == {"photo.jpg"}
    assert _found(tmp_path, FileFilter(include_hidden=True))[0] == {"photo.jpg"}


def test_dot_folders_are_skipped_unless_hidden_is_included(tmp_path: Path) -> None:
    make_image(tmp_path / "photo.jpg", "red")
    make_image(tmp_path / ".cache" / "c.jpg", "red")
    assert _found(tmp_path)[0] == {"photo.jpg"}
    assert _found(tmp_path, FileFilter(include_hidden=True))[0] == {"photo.jpg", ".cache/c.jpg"}


def test_settings_globs_and_a_bad_ignore_line_reach_the_job(tmp_path: Path) -> None:
    media = tmp_path / "media"
    for name in ("keep.jpg", "tmp_draft.jpg", "cache/c.jpg", "ignored.jpg", "@eaDir/t.jpg"):
        make_image(media / name, "yellow")
    (media / ".mmsearchignore").write_text("ignored.jpg\n[z-a]\n")
    settings = base_settings(tmp_path / "data", ingest={"exclude": ["tmp_*", "cache/*"]})
    services = SharedModelServices(settings, load_embedder(settings))
    try:
        job = run_ingest(services, IngestRequest(paths=(str(media),)))
        failures = services.catalog.job_failures(job.id)
        indexed = {m.uri.rsplit("/", 1)[-1] for m in services.catalog.media_for_source(services.catalog.list_sources()[0].id)}
    finally:
        services.close()
    assert indexed == {"keep.jpg"}
    assert job.indexed == 1 and job.failed == 1
    assert [f.reason for f in failures] == ["line 2 is not a valid gitignore pattern: skipped, the other lines apply"]
