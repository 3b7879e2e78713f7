"""Sidecar subtitles for the procedural world's videos: what is said, against what is shown.

A subtitled video gets ``vid_NNN.srt`` beside it (the name ingest looks for), with three kinds
of cue (``synthetic.truth.VideoCue``):

- ``describes``: names the appearance on screen, timed over it ("a red star appears"). A pair
  is described in every video that shows it or in none, so "shown and said" and "shown only"
  are properties of the pair, not of one appearance;
- ``mentions``: names a pair that no video of the set shows ("somebody asks about a green
  ring"), where it is free to: what is said but never seen;
- ``chatter``: names no pair ("welcome back"), in some of the gaps left.

Other appearances are never mentioned. Everything is drawn from the seed, per video, apart
from the two choices that need the whole set (which pairs are described, which are unshown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from synthetic.captions import with_article
from synthetic.images import item_rng
from synthetic.truth import VideoCue, VideoTruth
from synthetic.vocab import ALL_PAIRS

_STREAM_SUBTITLES = 5
DESCRIBED_SHARE = 0.5  # share of the shown pairs whose appearances are described
DESCRIBES = ("{} appears", "here comes {}", "look, {}", "now there is {}")
MENTIONS = ("somebody asks about {}", "last week we saw {}", "nobody has seen {} yet", "imagine {} there")
CHATTER = ("welcome back", "let us keep watching", "that was quick", "stay with us", "what will come next")
_GAP = 0.25  # seconds kept free between two cues


def add_subtitles(truths: Sequence[VideoTruth], seed: int) -> list[VideoTruth]:
    """Write a sidecar ``.srt`` beside each video and return the truths with their cues."""
    shown = sorted({m.pair for t in truths for m in t.moments})
    pick = np.random.default_rng([seed, _STREAM_SUBTITLES])
    described = {shown[int(i)] for i in pick.permutation(len(shown))[: int(round(DESCRIBED_SHARE * len(shown)))]}
    unshown = [ALL_PAIRS[int(i)] for i in pick.permutation(len(ALL_PAIRS)) if ALL_PAIRS[int(i)] not in set(shown)]
    out = []
    for index, truth in enumerate(truths):
        rng = item_rng(seed, _STREAM_SUBTITLES, index)
        own = {m.pair for m in truth.moments}
        pool = unshown or [p for p in ALL_PAIRS if p not in own]  # a tiny set can show no pair twice
        mentions = [pool[(2 * index + j) % len(pool)] for j in range(1 + int(rng.random() < 0.5))]
        cues = plan_cues(rng, truth, described, mentions)
        path = truth.path.with_suffix(".srt")
        write_srt(path, cues)
        out.append(replace(truth, cues=cues, subtitles=path))
    return out


def plan_cues(
    rng: np.random.Generator, truth: VideoTruth, described: set[tuple[str, str]], mentions: Sequence[tuple[str, str]]
) -> tuple[VideoCue, ...]:
    """Cues for one video, in time order and never overlapping."""
    cues = [
        VideoCue(m.start, m.end, _say(rng, DESCRIBES, m.pair), "describes", *m.pair) for m in truth.moments if m.pair in described
    ]
    for pair in mentions:
        slot = _free_slot(rng, cues, float(rng.uniform(2.0, 3.5)), truth.duration)
        if slot is not None:
            cues.append(VideoCue(*slot, _say(rng, MENTIONS, pair), "mentions", *pair))
    for _ in range(2):
        slot = _free_slot(rng, cues, float(rng.uniform(1.5, 2.5)), truth.duration)
        if slot is not None and rng.random() < 0.6:
            cues.append(VideoCue(*slot, str(rng.choice(CHATTER)), "chatter"))
    return tuple(sorted(cues, key=lambda c: c.start))


def _say(rng: np.random.Generator, templates: Sequence[str], pair: tuple[str, str]) -> str:
    return str(rng.choice(templates)).format(with_article(f"{pair[0]} {pair[1]}"))


def _free_slot(rng: np.random.Generator, cues: Sequence[VideoCue], length: float, duration: float) -> tuple[float, float] | None:
    """A random [start, start + length) clear of every cue (by ``_GAP``), on a 0.25 s grid."""
    starts = np.arange(0.5, duration - length - 0.5, 0.25)
    free = [float(s) for s in starts if all(s + length + _GAP <= c.start or s >= c.end + _GAP for c in cues)]
    if not free:
        return None
    start = free[int(rng.integers(len(free)))]
    return round(start, 3), round(start + length, 3)


def write_srt(path: Path, cues: Sequence[VideoCue]) -> Path:
    """SubRip: numbered blocks, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, the text, a blank line."""
    blocks = [f"{i}\n{_stamp(c.start)} --> {_stamp(c.end)}\n{c.text}\n" for i, c in enumerate(cues, start=1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def _stamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"
