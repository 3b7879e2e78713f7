"""The payload contract: one typed module defines what points carry; nothing else spells payload keys.

``search/payload.py`` declares each kind of point, its indexed fields and its derived fields.
These tests hold the rest of the code base to it (by reading the source), check that every
kind survives a round trip through its stored form, and that a collection from a newer
mmsearch stops the CLI with exit code 2.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from search import payload as contract
from search.payload import (
    FIELD_NAMES,
    INDEXED_FIELDS,
    SCHEMA_HISTORY,
    SCHEMA_VERSION,
    CollectionRecord,
    FieldType,
    FramePayload,
    GeoPoint,
    ImagePayload,
    PayloadError,
    ProductPayload,
    SegmentPayload,
    parse_payload,
    read_payload,
)

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "search" / "payload.py"
CHECKED_ROOMS = ("search", "ingest")
# Where points and results are handled, a payload field name as a literal key is a payload read
# whatever the variable is called; elsewhere ("name" of an HTML tag, "path" of a request) only
# receivers that say "payload" count.
POINT_HANDLING = ("search/engine", "search/api", "search/store", "ingest/stages")


# -- nobody else spells payload keys --------------------------------------------------------------


def _sources() -> list[Path]:
    return [p for room in CHECKED_ROOMS for p in sorted((ROOT / room).rglob("*.py")) if p != CONTRACT]


def _literal_key_reads(source: Path, root: Path = ROOT) -> list[str]:
    """``x.get("key")`` and ``x["key"]`` reads whose receiver is a payload, or (in code handling
    points) whose key is a payload field name: code that knows the stored layout, not the contract."""
    text = source.read_text()
    handles_points = str(source.relative_to(root)).startswith(POINT_HANDLING) or root != ROOT
    found = []
    for node in ast.walk(ast.parse(text, filename=str(source))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
            receiver, key = node.func.value, node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            receiver, key = node.value, node.slice
        else:
            continue
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            continue
        about_payload = "payload" in (ast.get_source_segment(text, receiver) or "").lower()
        if about_payload or (handles_points and key.value in FIELD_NAMES):
            found.append(f"{source.relative_to(root)}:{node.lineno}: {ast.get_source_segment(text, node)}")
    return found


def test_no_code_outside_the_payload_module_reads_a_payload_by_a_literal_key() -> None:
    offending = [hit for source in _sources() for hit in _literal_key_reads(source)]
    assert offending == [], "read payloads through search.payload:\n" + "\n".join(offending)


def test_the_key_scan_catches_what_it_is_meant_to(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(hit, p, row, meta):\n"
        "    a = hit.payload.get('anything')\n"
        "    b = p['video_id']\n"
        "    c = row.get('status')\n"  # not a payload field, not a payload: fine
        "    return hit.payload.get(key)\n"  # a variable key: fine
    )
    reads = [r.split(": ", 1)[1] for r in _literal_key_reads(sample, root=tmp_path)]
    assert reads == ["hit.payload.get('anything')", "p['video_id']"]


def test_every_literal_filter_key_names_a_declared_payload_field() -> None:
    """``Match("kind", ...)``/``Range("price", ...)`` with a key the contract does not declare
    would filter on a field nobody writes, and match nothing, silently."""
    unknown = []
    for source in _sources():
        text = source.read_text()
        for node in ast.walk(ast.parse(text, filename=str(source))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Match", "Range")):
                continue
            key = node.args[0] if node.args else None
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value not in FIELD_NAMES:
                unknown.append(f"{source.relative_to(ROOT)}:{node.lineno}: {key.value!r}")
    assert unknown == []


def test_the_ui_reads_results_by_the_api_schema_not_by_payload_fields() -> None:
    """ui/client.py parses the API's JSON: every key it reads from a result, product or moment
    is a field of the API's response schema (payload-only fields reach it under ``metadata``)."""
    from search.api.schemas import MomentOut, ProductOut, ResultOut

    allowed = set(ResultOut.model_fields) | set(ProductOut.model_fields) | set(MomentOut.model_fields)
    text = (ROOT / "ui" / "client.py").read_text()
    tree = ast.parse(text)
    readers = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in ("_hit", "_moment", "_product")]
    assert len(readers) == 3
    keys = set()
    for function in readers:
        for node in ast.walk(function):
            key = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
                key = node.args[0]
            elif isinstance(node, ast.Subscript):
                key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                keys.add(key.value)
    assert keys and keys <= allowed, sorted(keys - allowed)


# -- the declarations -------------------------------------------------------------------------------


def test_indexed_fields_are_collected_from_the_field_declarations() -> None:
    declared = {
        f.name: f.metadata["index"] for cls in contract._CLASSES for f in dataclasses.fields(cls) if "index" in f.metadata
    }
    assert dict(INDEXED_FIELDS) == declared
    assert INDEXED_FIELDS["kind"] is FieldType.KEYWORD and INDEXED_FIELDS["geo"] is FieldType.GEO
    assert {"media_id", "source", "dirs", "video_id", "product_id", "category", "brand"} <= {
        name for name, t in INDEXED_FIELDS.items() if t is FieldType.KEYWORD
    }
    assert {INDEXED_FIELDS[n] for n in ("t", "t_start", "t_end", "taken_at", "price")} == {FieldType.FLOAT}
    assert set(SCHEMA_HISTORY) == set(range(1, SCHEMA_VERSION + 1)), "every version says what it changed"


def test_filter_field_constants_name_declared_fields() -> None:
    for name in ("KIND", "MEDIA_ID", "SOURCE", "VIDEO_ID", "DIRS", "CATEGORY", "BRAND", "TAKEN_AT", "PRICE"):
        assert getattr(contract, name) in FIELD_NAMES


# -- round trips ----------------------------------------------------------------------------------


ORIGIN = {
    "media_id": "5e1b0f6c-0000-4000-8000-000000000001",
    "source": "src-1",
    "uri": "file:///photos/2024/trip/beach.jpg",
    "name": "beach.jpg",
    "model": "mmsearch-synthetic",
    "taken_at": 1_700_000_000.0,
    "size_bytes": 123_456,
    "path": "/photos/2024/trip/beach.jpg",
    "dirs": ("/photos", "/photos/2024", "/photos/2024/trip"),
    "width": 640,
    "height": 480,
    "thumb": "ab/cd.webp",
}

EXAMPLES = {
    "image": ImagePayload(**ORIGIN, camera="Canon EOS R5", gps_lat=-33.86, gps_lon=151.21),
    "product": ProductPayload(
        **ORIGIN, product_id="P1", title="Red shoe", category="shoes", brand="Acme", price=12.5, extra={"colour": "red"}
    ),
    "frame": FramePayload(**ORIGIN, video_id="v1", duration=12.0, t=3.0),
    "segment": SegmentPayload(**ORIGIN, video_id="v1", duration=12.0, t_start=2.0, t_end=6.0, n_frames=4),
}


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_every_kind_survives_its_stored_form_unchanged(kind: str) -> None:
    point = EXAMPLES[kind]
    stored = point.to_payload()
    assert stored["kind"] == kind == point.kind
    assert stored["dirs"] == list(ORIGIN["dirs"]), "lists, as JSON and both engines store them"
    assert parse_payload(stored) == point
    assert type(point).from_payload(stored) == point


def _derived(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("derived")}


def test_the_stored_form_is_what_the_previous_layout_wrote_plus_derived_fields() -> None:
    stored = EXAMPLES["product"].to_payload()
    assert {k: v for k, v in stored.items() if k not in _derived(ProductPayload)} == {
        **{k: list(v) if isinstance(v, tuple) else v for k, v in ORIGIN.items()},
        "kind": "product",
        "colour": "red",  # a manifest column of its own, at the top level as before
        "product_id": "P1",
        "title": "Red shoe",
        "category": "shoes",
        "brand": "Acme",
        "price": 12.5,
    }, "absent facts (camera, position) are left out, not stored as null"
    image = EXAMPLES["image"].to_payload()
    assert image["geo"] == {"lat": -33.86, "lon": 151.21} and image["gps_lat"] == -33.86


def test_derived_fields_are_recomputed_not_trusted() -> None:
    stored = {**EXAMPLES["image"].to_payload(), "geo": {"lat": 0.0, "lon": 0.0}}
    assert parse_payload(stored).geo == GeoPoint(-33.86, 151.21)
    without = {k: v for k, v in stored.items() if k not in ("gps_lat", "gps_lon")}
    parsed = parse_payload(without)
    assert parsed.geo is None and "geo" not in parsed.to_payload()
    outside = ImagePayload(**ORIGIN, gps_lat=95.0, gps_lon=10.0)
    assert outside.geo is None, "a position off the globe is no position"


def test_fields_outside_the_contract_travel_in_extra_and_are_written_back() -> None:
    stored = {**EXAMPLES["frame"].to_payload(), "subtitle_lang": "ja", "written_by": {"tool": "x"}}
    parsed = parse_payload(stored)
    assert parsed.extra == {"subtitle_lang": "ja", "written_by": {"tool": "x"}}
    assert parsed.to_payload() == stored
    assert parsed.details() == {"subtitle_lang": "ja", "written_by": {"tool": "x"}}


def test_a_missing_field_reads_as_empty_and_a_stored_list_as_a_tuple() -> None:
    parsed = parse_payload({"kind": "frame", "video_id": "v1", "t": 2.0, "dirs": ["/a"]})
    assert isinstance(parsed, FramePayload)
    assert (parsed.t, parsed.width, parsed.dirs, parsed.thumb) == (2.0, None, ("/a",), None)
    assert (parsed.media_id, parsed.uri, parsed.taken_at) == ("", "", None)


def test_constructors_check_every_value_so_stored_payloads_are_well_typed() -> None:
    product = ProductPayload(
        **{**ORIGIN, "width": True, "size_bytes": 12.0},
        product_id="P1",
        price=3,
        extra={"camera": 42, "colour": "red"},
    )
    assert (product.width, product.size_bytes, product.price) == (None, 12, 3.0)
    assert product.camera == "42" and product.extra == {"colour": "red"}, "a column named like a field fills it"
    with_title = ProductPayload(**ORIGIN, product_id="P1", title="Named", extra={"title": "column"})
    assert with_title.title == "Named" and "title" not in with_title.extra


def test_an_untrusted_payload_is_read_through_the_checks() -> None:
    untrusted = {"kind": "frame", "video_id": "v1", "t": 2, "width": "wide", "height": 64.0, "dirs": "/a", "zz": 1}
    parsed = FramePayload.from_untrusted(untrusted)
    assert (parsed.t, parsed.width, parsed.height, parsed.dirs, parsed.extra) == (2.0, None, 64, ("/a",), {"zz": 1})
    normalised = contract.normalise_payload(untrusted) or {}
    assert {k: v for k, v in normalised.items() if k not in _derived(FramePayload)} == {
        "kind": "frame",
        "video_id": "v1",
        "t": 2.0,
        "height": 64,
        "dirs": ["/a"],
        "zz": 1,
    } | {
        "media_id": "",
        "source": "",
        "uri": "",
        "name": "",
        "model": "",
    }
    assert contract.normalise_payload({"kind": "video"}) is None
    assert parse_payload({"kind": "image", "size_bytes": True, "taken_at": np.nan}).to_payload()["kind"] == "image"


def test_a_payload_that_is_not_ours_is_refused_by_parse_and_skipped_by_read() -> None:
    for foreign in ({"note": "x"}, {"kind": "video"}, {"kind": 3}):
        with pytest.raises(PayloadError, match="kind"):
            parse_payload(foreign)
        assert read_payload(foreign) is None


def test_the_collection_record_round_trips_and_refuses_a_bad_version() -> None:
    record = CollectionRecord(SCHEMA_VERSION)
    assert CollectionRecord.from_payload(record.to_payload()) == record
    for bad in ({}, {"schema_version": "2"}, {"schema_version": 0}, {"schema_version": True}):
        with pytest.raises(PayloadError, match="schema version"):
            CollectionRecord.from_payload(bad)


# -- a newer collection stops the CLI ----------------------------------------------------------------


def test_the_cli_refuses_a_collection_from_a_newer_mmsearch_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmsearch.cli import main
    from search.settings import BUNDLED_MODEL, load_settings
    from search.store import collection_name
    from search.store.edge import EdgeStore

    data = tmp_path / "data"
    monkeypatch.setenv("MMSEARCH_DATA_DIR", str(data))
    monkeypatch.setenv("MMSEARCH_MODEL", BUNDLED_MODEL)
    monkeypatch.delenv("MMSEARCH_BROKER_URL", raising=False)
    monkeypatch.delenv("MMSEARCH_STORE_URL", raising=False)
    settings = load_settings()
    dim = 256  # the bundled model's embedding size (its open_clip_config.json)
    name = collection_name(BUNDLED_MODEL, dim)
    store_url = settings.resolved_store_url
    assert store_url.startswith("edge://")
    newer = EdgeStore(Path(store_url.removeprefix("edge://")) / name, name, dim)
    newer.write_record(CollectionRecord(SCHEMA_VERSION + 1).to_payload())
    newer.close()

    assert main(["search", "a red star"]) == 2
    err = capsys.readouterr().err
    assert f"payload schema version {SCHEMA_VERSION + 1}" in err and "Upgrade mmsearch" in err
