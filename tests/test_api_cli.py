"""``mmsearch search``: the same queries and the same error messages as the API, on a terminal.

The command opens the store itself, and an embedded store admits one process at a time, so
this module indexes its own small copy (the corpus's images) instead of sharing the API tests'.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmsearch.cli import main
from search.services import IngestRequest, Services
from tests._api_support import corpus, scratch, settings_for


@pytest.fixture(scope="module")
def data_dir() -> Path:
    from ingest.jobs import run_ingest

    folder = scratch() / "data-cli"
    services = Services(settings_for("edge", folder))
    try:
        job = run_ingest(services, IngestRequest(paths=(str(corpus().images),)))
    finally:
        services.close()
    assert job.indexed == len(corpus().truth["images"])
    return folder


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSEARCH_EMBEDDER__THREADS", "1")


def mmsearch(data_dir: Path, *args: str) -> int:
    return main(["--data-dir", str(data_dir), "--model", "mmsearch-synthetic", "search", *args])


def test_json_output_is_the_api_document(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mmsearch(data_dir, "a red shape", "--limit", "3", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["query_type"] == "text" and len(document["results"]) == 3
    colours = corpus().colours
    assert all("red" in colours[r["path"]] for r in document["results"])


def test_human_output_lists_ranked_results_and_contributions(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mmsearch(data_dir, '"red" - 0.5*"blue"', "--limit", "2", "--explain") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("images for") and lines[1].lstrip().startswith("1. ")
    assert str(corpus().images) in lines[1]
    assert '"blue" (x-0.5)' in out and "more: --offset 2" in out


def test_an_image_file_and_text_combine(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted(corpus().images.glob("*.jpg"))[0]
    assert mmsearch(data_dir, "--image", str(image), "--limit", "1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["path"] == str(image)
    assert mmsearch(data_dir, "--image", str(image), '- 0.2*"red"', "--limit", "1", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert [t["kind"] for t in document["terms"]] == ["file", "text"]
    assert mmsearch(data_dir, f'file:{image} + 0.1*"blue"', "--limit", "1", "--json") == 0  # file: works here


def test_a_syntax_error_shows_the_message_and_a_caret(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mmsearch(data_dir, '"red" + ') == 2
    err = capsys.readouterr().err
    assert "Expected a term after '+' (at position 8)" in err
    assert '  "red" + \n          ^' in err


@pytest.mark.parametrize(
    "args, message",
    [
        (("id:nope",), "No indexed item with id 'nope'."),
        ((), "Give a query"),
        (("red", "--folder", "relative"), "path_prefix must be an absolute folder path"),
        (("red", "--image", "/no/such.jpg"), "No image file at '/no/such.jpg'."),
        (("red", "--kind", "nonsense"), "Unknown kind 'nonsense'"),
    ],
)
def test_errors_read_as_the_api_words_them(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert mmsearch(data_dir, *args) == 2
    assert message in capsys.readouterr().err
