"""The procedural world: deterministic, truthful, and never leaking held-out pairs into training."""

from __future__ import annotations

import csv
import json
import re

import av
import numpy as np
import pytest
from PIL import Image

from search.media.subtitles import read_subtitles
from synthetic import generate_corpus, generate_images, generate_products, generate_videos, load_truth
from synthetic.captions import canonical_caption, sample_caption
from synthetic.pool import TrainingPool
from synthetic.render import render_scene
from synthetic.scene import Background, ObjectSpec, Scene, sample_scene, sample_training_scene
from synthetic.truth import VideoTruth
from synthetic.vocab import COLOUR_NAMES, COLOURS, HELD_OUT, SEEN_PAIRS, SHAPE_NAMES, SHAPES, colour, shape


def _bytes(truths):
    return [t.path.read_bytes() for t in truths]


def test_same_seed_gives_identical_image_bytes_and_truths(tmp_path):
    a = generate_images(tmp_path / "a", 8, seed=11, size=64)
    b = generate_images(tmp_path / "b", 8, seed=11, size=64)
    assert _bytes(a) == _bytes(b)
    assert [(t.scene, t.caption, t.format) for t in a] == [(t.scene, t.caption, t.format) for t in b]


def test_other_seed_gives_different_images(tmp_path):
    a = generate_images(tmp_path / "a", 8, seed=11, size=64)
    c = generate_images(tmp_path / "c", 8, seed=12, size=64)
    assert [t.scene for t in a] != [t.scene for t in c]
    assert sum(x != y for x, y in zip(_bytes(a), _bytes(c))) >= 7


def test_images_are_real_files_in_their_declared_format(tmp_path):
    truths = generate_images(tmp_path, 30, seed=3, size=64)
    assert {t.format for t in truths} == {"jpeg", "png", "webp"}
    for t in truths:
        with Image.open(t.path) as im:
            assert im.format.lower() == t.format
            assert im.size == (64, 64)


def test_object_pixels_have_the_object_colour():
    bg = Background("plain", (120, 120, 120), (120, 120, 120))
    for name in ("red", "blue", "yellow", "black"):
        scene = Scene((ObjectSpec(name, "square", "large", "center"),), bg)
        pixels = np.asarray(render_scene(scene, 96))
        assert np.abs(pixels[48, 48].astype(int) - colour(name).rgb).max() <= 2
        assert np.abs(pixels[2, 2].astype(int) - 120).max() <= 2


def _mentions(text: str, words) -> bool:
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)


def test_captions_name_only_what_is_rendered_and_single_objects_fully():
    rng = np.random.default_rng(5)
    for _ in range(400):
        scene = sample_training_scene(rng)
        caption = sample_caption(rng, scene)
        present_colours = {o.colour for o in scene.objects}
        present_shapes = {o.shape for o in scene.objects}
        for c in COLOURS:
            if c.name not in present_colours:
                assert not _mentions(caption, (c.name, *c.synonyms)), (caption, scene.pairs)
        for s in SHAPES:
            if s.name not in present_shapes:
                assert not _mentions(caption, (s.name, *s.synonyms)), (caption, scene.pairs)
        obj = scene.objects[0]
        assert _mentions(
            caption, [n for o in scene.objects for n in (o.colour, *colour(o.colour).synonyms, o.shape, *shape(o.shape).synonyms)]
        )
        canonical = canonical_caption(scene)
        assert all(f"{o.colour} {o.shape}" in canonical for o in scene.objects)
        assert obj.colour in canonical


def test_held_out_pairs_never_reach_training_but_every_colour_and_shape_does(tmp_path):
    assert 6 <= len(HELD_OUT) <= 10
    assert {c for c, _ in SEEN_PAIRS} == {c.name for c in COLOURS}
    assert {s for _, s in SEEN_PAIRS} == {s.name for s in SHAPES}
    rng = np.random.default_rng(9)
    seen = set()
    for _ in range(3000):
        seen.update(sample_training_scene(rng).pairs)
    assert not seen & HELD_OUT
    assert len(seen) == len(SEEN_PAIRS)
    pool = TrainingPool(seed=1, pool_size=64, size=32)
    pool.refresh(32)
    assert not {p for s in pool.scenes for p in s.pairs} & HELD_OUT


def test_scene_objects_are_distinct_and_do_not_share_a_position():
    rng = np.random.default_rng(2)
    for _ in range(500):
        scene = sample_scene(rng, n_objects=3)
        assert len(set(scene.pairs)) == len(scene.pairs)
        assert len({o.position for o in scene.objects}) == len(scene.objects)


def _colour_pixels(frame: np.ndarray, name: str, tolerance: int = 45) -> int:
    distance = np.abs(frame.astype(int) - np.array(colour(name).rgb)).max(axis=-1)
    return int((distance <= tolerance).sum())


def test_videos_decode_with_their_duration_and_moments_where_objects_are(tmp_path):
    (truth,) = generate_videos(tmp_path, 1, seed=4, fps=10, size=96, duration=14.0)
    assert truth.moments and truth.duration == pytest.approx(14.0)
    with av.open(str(truth.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert container.duration / 1e6 == pytest.approx(14.0, abs=0.15)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 140
    for moment in truth.moments:
        middle = frames[int((moment.start + moment.end) / 2 * truth.fps)]
        assert _colour_pixels(middle, moment.colour) > 25, moment
        before = [i for i in range(len(frames)) if not truth.moments_at(i / truth.fps)]
        assert before, "the video should have object-free stretches"
        assert _colour_pixels(frames[before[0]], moment.colour) < 5, moment


def test_subtitled_videos_say_some_appearances_mention_unshown_pairs_and_leave_others_unsaid(tmp_path):
    truths = generate_videos(tmp_path, 3, seed=4, fps=6, size=64, duration=24.0, subtitles=True)
    shown = {m.pair for t in truths for m in t.moments}
    kinds = {c.kind for t in truths for c in t.cues}
    assert kinds == {"describes", "mentions", "chatter"}
    unsaid = [m for t in truths for m in t.moments if not any(c.pair == m.pair for c in t.cues)]
    assert unsaid, "some appearances are never mentioned"
    for truth in truths:
        assert truth.subtitles == truth.path.with_suffix(".srt") and truth.subtitles.is_file()
        parsed = read_subtitles(truth.path, embedded=False)  # the parser ingest uses
        assert parsed.problems == ()
        assert [(c.start, c.end, c.text) for c in parsed.cues] == [(c.start, c.end, c.text) for c in truth.cues]
        for a, b in zip(truth.cues, truth.cues[1:]):
            assert a.end <= b.start  # cues never overlap
        for cue in truth.cues:
            if cue.kind == "describes":  # timed over an appearance of the pair it names
                assert any((m.pair, m.start, m.end) == (cue.pair, cue.start, cue.end) for m in truth.moments)
                assert f"{cue.colour} {cue.shape}" in cue.text
            elif cue.kind == "mentions":
                assert cue.pair not in shown and f"{cue.colour} {cue.shape}" in cue.text
            else:
                assert cue.pair is None and not _mentions(cue.text, COLOUR_NAMES + SHAPE_NAMES)
    starts = {m.start for t in truths for m in t.moments}
    assert starts & {c for t in truths for c in t.background_changes}, "some appearances start on a cut"
    again = generate_videos(tmp_path / "again", 3, seed=4, fps=6, size=64, duration=24.0, subtitles=True)
    assert [t.subtitles.read_bytes() for t in again] == [t.subtitles.read_bytes() for t in truths]


def test_videos_have_no_subtitles_unless_asked(tmp_path):
    (truth,) = generate_videos(tmp_path, 1, seed=4, fps=6, size=64, duration=10.0)
    assert truth.cues == () and truth.subtitles is None and not list(tmp_path.glob("*.srt"))


def test_video_cues_round_trip_through_truth_json_and_older_truths_still_load(tmp_path):
    truth = generate_corpus(
        tmp_path / "c", seed=8, n_images=2, n_videos=2, n_products=0, image_size=64, video_size=64, subtitles=True
    )
    loaded = load_truth(tmp_path / "c")
    assert loaded.videos == truth.videos and all(v.cues for v in loaded.videos)
    old = truth.videos[0].to_dict(truth.root)
    del old["cues"], old["subtitles"]  # a truth.json written before videos had subtitles
    restored = VideoTruth.from_dict(old, truth.root)
    assert restored.cues == () and restored.subtitles is None and restored.moments == truth.videos[0].moments


def test_products_have_manifests_several_photos_and_near_duplicates(tmp_path):
    truth = generate_products(tmp_path, 8, seed=6, size=64, near_duplicate_fraction=0.5)
    rows = list(csv.DictReader(truth.csv_path.open(encoding="utf-8")))
    records = [json.loads(line) for line in truth.manifest_path.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in records] == [p.id for p in truth.products]
    assert len({(p.colour, p.shape, p.accent) for p in truth.products}) == 8
    copies = {p.id: [d.path for d in truth.near_duplicates if d.product_id == p.id] for p in truth.products}
    root = tmp_path.resolve()
    for row, record, product in zip(rows, records, truth.products):
        assert len(product.images) >= 3
        listed = [p.relative_to(root).as_posix() for p in (*product.images, *copies[product.id])]
        assert row["images"].split(";") == record["images"] == listed  # copies are listed like any photo
        assert float(row["price"]) == record["price"] == product.price and row["brand"] and row["category"]
        assert all((root / p).is_file() for p in listed)
    assert truth.near_duplicates
    for dup in truth.near_duplicates:
        a = np.asarray(Image.open(dup.path).convert("RGB"), dtype=float)
        b = np.asarray(Image.open(dup.original).convert("RGB"), dtype=float)
        assert dup.path.read_bytes() != dup.original.read_bytes()
        assert np.abs(a - b).mean() < 25  # same picture, slightly cropped and re-encoded


def test_whole_corpus_is_byte_identical_for_a_seed(tmp_path):
    def files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    kwargs = dict(seed=21, n_images=3, n_videos=1, n_products=2, image_size=64, video_size=64)
    generate_corpus(tmp_path / "a", **kwargs)
    generate_corpus(tmp_path / "b", **kwargs)
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert {k.split("/")[0] for k in a} == {"images", "videos", "products", "truth.json"}
    assert a == b
    counts = json.loads(a["truth.json"])["counts"]
    assert counts == {"images": 3, "videos": 1, "products": 2}


def test_corpus_truth_round_trips_through_truth_json(tmp_path):
    truth = generate_corpus(tmp_path / "corpus", seed=8, n_images=4, n_videos=1, n_products=2, image_size=64, video_size=64)
    loaded = load_truth(tmp_path / "corpus")
    assert loaded.images == truth.images and loaded.videos == truth.videos and loaded.products == truth.products
    data = json.loads((tmp_path / "corpus" / "truth.json").read_text())
    assert data["images"][0]["path"].startswith("images/")
    assert sorted(map(tuple, data["held_out"])) == sorted(HELD_OUT)


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        render_scene(sample_scene(np.random.default_rng(0)), 4)
    with pytest.raises(ValueError, match="between 0 and"):
        generate_products(tmp_path, 10_000, seed=0)
    with pytest.raises(ValueError, match="unknown colour"):
        colour("teal")
    with pytest.raises(FileNotFoundError):
        load_truth(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="even"):
        generate_videos(tmp_path, 1, seed=0, size=97)
