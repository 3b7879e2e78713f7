"""Timed text of a video: sidecar ``.srt``/``.vtt`` files and subtitle streams in the container.

A video's words are searchable as *cues* (start, end, text, language). They come from:

- sidecar files next to the video with the same base name, optionally with a language suffix
  (``movie.srt``, ``movie.ja.srt``, ``movie.en-US.vtt``); any transcript tool's SRT or WebVTT
  output dropped there works the same;
- subtitle streams inside the container, demuxed by PyAV: ``mov_text`` (MP4), SubRip, ASS/SSA
  and WebVTT (MKV, WebM). Their packets carry the timing and the raw text, so nothing is
  rendered and no subtitle decoder is needed.

Subtitles are an extra, never a reason to lose the video: ``read_subtitles`` does not raise for
a bad file, it returns the cues it could read and one problem line per bad source ("subtitles of
movie.ja.srt: not text in a known encoding"), which ingest records on the job. Problems never
quote the file's content.

Text encodings are tried in the order subtitle files are met in the wild: a BOM (UTF-8,
UTF-16), strict UTF-8, then Shift JIS when its decoding is mostly Japanese script, then cp1252.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

SIDECAR_EXTENSIONS = (".srt", ".vtt")
MAX_SIDECAR_BYTES = 8 * 1024 * 1024  # a feature film's subtitles are ~100 KB; more is not subtitles
MAX_CUES = 20_000
MAX_CUE_CHARS = 1_000
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")
_TIMING = re.compile(r"^\s*(-?(?:\d+:)?\d{1,2}:\d{1,2}[,.]\d{1,3})\s*-->\s*(-?(?:\d+:)?\d{1,2}:\d{1,2}[,.]\d{1,3})(?:\s.*)?$")
_TAG = re.compile(r"<[^>\n]{0,200}>")  # <i>, <b>, <font ...>, <c.yellow>, <v Speaker>, <00:01.000>
_ASS_OVERRIDE = re.compile(r"\{[^}\n]{0,200}\}")  # {\an8}, {\i1}
_SPACE = re.compile(r"[ \t\u00a0]+")


class SubtitleError(ValueError):
    """A subtitle source that yields no usable cue; the message never quotes its content."""


@dataclass(frozen=True)
class Cue:
    """One piece of timed text, in seconds from the start of the video."""

    start: float
    end: float
    text: str
    lang: str | None = None


@dataclass(frozen=True)
class Track:
    """The cues of one source: a sidecar file's name, or ``stream #N`` inside the container."""

    source: str
    lang: str | None
    cues: tuple[Cue, ...]
    notes: tuple[str, ...] = ()  # what was dropped or odd (bad times, overlaps), for the job's record


@dataclass(frozen=True)
class Subtitles:
    """Everything timed a video says, and the problems met reading it."""

    tracks: tuple[Track, ...]
    problems: tuple[str, ...]  # "subtitles of <source>: <reason>", one per bad or odd source

    @property
    def cues(self) -> list[Cue]:
        """All tracks' cues in time order."""
        return sorted((c for t in self.tracks for c in t.cues), key=lambda c: (c.start, c.end))


# -- finding and reading everything -----------------------------------------------------------


def read_subtitles(video: Path, *, embedded: bool = True) -> Subtitles:
    """Cues of ``video`` from its sidecar files and (when ``embedded``) its subtitle streams.

    Never raises for subtitle problems: each bad source becomes a problem line instead.
    """
    tracks: list[Track] = []
    problems: list[str] = []
    for sidecar in sidecar_paths(video):
        try:
            tracks.append(read_sidecar(sidecar, sidecar_language(video, sidecar)))
        except SubtitleError as exc:
            problems.append(f"subtitles of {sidecar.name}: {exc}")
    if embedded:
        found, failed = embedded_tracks(video)
        tracks.extend(found)
        problems.extend(f"subtitles of {video.name} {reason}" for reason in failed)
    for track in tracks:
        problems.extend(f"subtitles of {track.source}: {note}" for note in track.notes)
    return Subtitles(tuple(t for t in tracks if t.cues), tuple(problems))


def sidecar_paths(video: Path) -> list[Path]:
    """Subtitle files next to ``video`` named ``<stem>.srt`` or ``<stem>.<lang>.vtt``, sorted."""
    stem = video.stem
    try:
        entries = list(video.parent.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.suffix.lower() not in SIDECAR_EXTENSIONS or not entry.name.startswith(stem):
            continue
        middle = entry.name[len(stem) : -len(entry.suffix)]
        if (middle == "" or (middle.startswith(".") and _LANG.match(middle[1:]))) and entry.is_file():
            found.append(entry)
    return sorted(found)


def sidecar_language(video: Path, sidecar: Path) -> str | None:
    """The language suffix of a sidecar (``movie.ja.srt`` → ``ja``), None without one."""
    middle = sidecar.name[len(video.stem) : -len(sidecar.suffix)]
    return middle[1:] if middle.startswith(".") else None


def read_sidecar(path: Path, lang: str | None = None) -> Track:
    """Parse one ``.srt`` or ``.vtt`` file; SubtitleError when it holds no usable cue."""
    try:
        size = path.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            raise SubtitleError(f"file too large for subtitles ({size} bytes, limit {MAX_SIDECAR_BYTES})")
        data = path.read_bytes()
    except OSError as exc:
        raise SubtitleError(f"cannot read file: {exc.strerror or type(exc).__name__}") from exc
    text = decode_text(data)
    if path.suffix.lower() == ".vtt":
        raw = parse_vtt(text)
    else:
        raw = parse_srt(text)
    cues, notes = clean_cues(raw, lang)
    return Track(path.name, lang, tuple(cues), tuple(notes))


# -- text encodings ----------------------------------------------------------------------------


_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def decode_text(data: bytes) -> str:
    """Subtitle bytes as text: BOM, UTF-8, Shift JIS (when mostly Japanese), cp1252; else error."""
    if not data.strip():
        raise SubtitleError("empty file")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise SubtitleError(f"starts with a {encoding.upper()} byte-order mark but is not valid {encoding}") from exc
    if b"\x00" in data[:4096]:
        raise SubtitleError("not a text file (it holds NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    japanese = _try_decode(data, "shift_jis")
    if japanese is not None and _mostly_japanese(japanese):
        return japanese
    western = _try_decode(data, "cp1252")
    if western is not None:
        return western
    raise SubtitleError("not text in a known encoding (tried UTF-8, UTF-16, Shift JIS, cp1252)")


def _try_decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _mostly_japanese(text: str) -> bool:
    wide = [ch for ch in text if ord(ch) > 0x7F]
    if not wide:
        return False
    kana_kanji = sum(1 for ch in wide if "\u3000" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef")
    return kana_kanji >= 0.8 * len(wide)


# -- formats -----------------------------------------------------------------------------------


def parse_srt(text: str) -> list[Cue]:
    """SubRip blocks: an optional counter line, ``start --> end``, then text lines."""
    if "-->" not in text:
        raise SubtitleError("no subtitle timing line (start --> end) found: not an SRT file")
    return list(_blocks(text))


def parse_vtt(text: str) -> list[Cue]:
    """WebVTT: a ``WEBVTT`` header, then cues (optional id line, timing with settings, text);
    NOTE, STYLE and REGION blocks are skipped."""
    body = text.lstrip("\ufeff")
    if not body.startswith("WEBVTT"):
        raise SubtitleError("missing the WEBVTT header: not a WebVTT file")
    return list(_blocks(body, skip=("WEBVTT", "NOTE", "STYLE", "REGION")))


def _blocks(text: str, skip: Sequence[str] = ()) -> Iterable[Cue]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    block: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            block.append(line)
            continue
        if block and not any(block[0].startswith(word) for word in skip):
            cue = _block_cue(block)
            if cue is not None:
                yield cue
        block = []


def _block_cue(block: Sequence[str]) -> Cue | None:
    for i, line in enumerate(block[:2]):
        match = _TIMING.match(line)
        if match:
            start, end = _seconds(match.group(1)), _seconds(match.group(2))
            return Cue(start, end, clean_text("\n".join(block[i + 1 :])))
    return Cue(float("nan"), float("nan"), "")  # a block without timing: counted as unreadable


def _seconds(stamp: str) -> float:
    negative = stamp.startswith("-")
    parts = stamp.lstrip("-").replace(",", ".").split(":")
    value = 0.0
    for part in parts:
        value = value * 60 + float(part)
    return -value if negative else value


def clean_text(text: str) -> str:
    """Cue text without markup (HTML-like tags, ASS overrides), entities decoded, spaces folded."""
    text = _ASS_OVERRIDE.sub("", text.replace("\\N", "\n").replace("\\n", "\n"))
    text = html.unescape(_TAG.sub("", text))
    lines = (_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return " ".join(line for line in lines if line)[:MAX_CUE_CHARS]


def clean_cues(cues: Iterable[Cue], lang: str | None) -> tuple[list[Cue], list[str]]:
    """Keep the cues with sane times and some text, in time order; say what was dropped.

    Negative or reversed times, and blocks with no timing, are dropped (counted in a note);
    overlapping cues are kept (two people can speak at once) and counted. A source with blocks
    but not one usable cue is an error.
    """
    kept: list[Cue] = []
    bad_time = untimed = empty = 0
    total = 0
    for cue in cues:
        total += 1
        if cue.start != cue.start or cue.end != cue.end:  # NaN: a block without a timing line
            untimed += 1
        elif cue.start < 0 or cue.end <= cue.start:
            bad_time += 1
        elif not cue.text:
            empty += 1
        else:
            kept.append(Cue(round(cue.start, 3), round(cue.end, 3), cue.text, lang))
        if len(kept) >= MAX_CUES:
            break
    kept.sort(key=lambda c: (c.start, c.end))
    overlaps = sum(1 for a, b in itertools.pairwise(kept) if b.start < a.end - 1e-3)
    notes = []
    if bad_time:
        notes.append(f"{bad_time} cue(s) with negative or reversed times dropped")
    if untimed:
        notes.append(f"{untimed} block(s) without a timing line dropped")
    if not kept:
        if total == 0 or empty == total:
            raise SubtitleError("no cue with text found")
        raise SubtitleError(f"no usable cue ({'; '.join(notes) or 'every cue is empty'})")
    if overlaps:
        notes.append(f"{overlaps} cue(s) overlap the one before (kept)")
    return kept, notes


# -- subtitle streams inside the container ------------------------------------------------------


_TEXT_CODECS = {"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"}


def embedded_tracks(video: Path) -> tuple[list[Track], list[str]]:
    """Text subtitle streams of ``video``, from their packets; image subtitles (PGS, DVD) are
    reported, since they hold pictures of text, not text."""
    tracks: list[Track] = []
    problems: list[str] = []
    try:
        container = av.open(str(video), mode="r")
    except (OSError, av.error.FFmpegError):
        return [], []  # the video itself is unreadable: its own error says so
    with container:
        streams = list(container.streams.subtitles)
        texts = [s for s in streams if s.codec_context.name in _TEXT_CODECS]
        for stream in streams:
            if stream not in texts:
                problems.append(f"stream #{stream.index}: {stream.codec_context.name} subtitles are pictures, not text")
        if not texts:
            return [], problems
        raw: dict[int, list[Cue]] = {s.index: [] for s in texts}
        try:
            for packet in container.demux(texts):
                cue = _packet_cue(packet)
                if cue is not None:
                    raw[packet.stream.index].append(cue)
        except av.error.FFmpegError as exc:
            problems.append(f"stream: demuxing stopped early ({getattr(exc, 'strerror', None) or type(exc).__name__})")
        for stream in texts:
            lang = _stream_language(stream)
            source = f"{video.name} stream #{stream.index}"
            try:
                cues, notes = clean_cues(raw[stream.index], lang)
            except SubtitleError as exc:
                problems.append(f"stream #{stream.index}: {exc}")
                continue
            tracks.append(Track(source, lang, tuple(cues), tuple(notes)))
    return tracks, problems


def _packet_cue(packet: av.Packet) -> Cue | None:
    if packet.pts is None or packet.time_base is None:
        return None
    data = bytes(packet)
    name = packet.stream.codec_context.name
    if name == "mov_text":  # 16-bit big-endian text length, the text, then style boxes
        if len(data) < 2:
            return None
        length = int.from_bytes(data[:2], "big")
        data = data[2 : 2 + length]
    elif name in ("ass", "ssa"):  # Matroska ASS: ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
        fields = data.split(b",", 8)
        data = fields[8] if len(fields) == 9 else b""
    if not data.strip():
        return None  # mov_text writes empty samples to clear the screen
    start = float(packet.pts * packet.time_base)
    duration = float(packet.duration * packet.time_base) if packet.duration else 0.0
    text = clean_text(data.decode("utf-8", errors="replace"))
    return Cue(start, start + duration, text)


def _stream_language(stream: av.stream.Stream) -> str | None:
    lang = stream.language or stream.metadata.get("language")
    return None if not lang or lang == "und" else str(lang)
