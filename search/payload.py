"""The point payload contract: what every stored point carries, typed, declared once.

Each kind of point (``image``, ``product``, ``frame``, ``segment``) is a frozen dataclass.
Ingest builds one and writes ``to_payload()``; the engine and the API read a stored payload
back with ``parse_payload()`` (or ``<Kind>Payload.from_payload()``) and use attributes, never
string keys. Everything else follows from the field declarations:

- ``_field(FieldType.X)`` gives a field a payload index of that type on both backends;
  ``INDEXED_FIELDS`` is collected from the classes, never listed by hand;
- ``_derived()`` metadata marks a field computed from the others (``geo`` from the EXIF position):
  it is recomputed on every read and write, so a collection written before the field existed
  is brought up to date by setting what ``normalise_payload`` adds (see ``search.store.schema``);
- constructors check every value, so stored payloads are well-typed and reading one back is a
  copy, not a check per field;
- ``SCHEMA_VERSION`` names the layout; bump it when a field is added, indexed differently or
  derived, and say in ``SCHEMA_HISTORY`` what changed, so opening an older collection migrates it.

Adding a field is one line in the class that carries it (plus the version bump); a new kind
is one class added to ``_CLASSES``. Fields outside the contract (a manifest's own columns, or
anything a newer writer added) travel in ``extra`` and are written back untouched.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, ClassVar, Literal, TypeVar, Union

SCHEMA_VERSION = 4
SCHEMA_HISTORY: Mapping[int, str] = {
    1: "the layout before versioning: no schema record in the collection",
    2: "schema record; derived geo field (from gps_lat/gps_lon) with a geo index",
    3: "searchable text: a text field, the derived words field (full-text index) and its BM25 sparse vector",
    4: "derived year field (UTC year of taken_at) with an integer index, for year facets",
}

_INDEX = "index"
_DERIVED = "derived"


class FieldType(str, Enum):
    """Payload index types: how the engine indexes a field so filters on it are fast."""

    KEYWORD = "keyword"  # exact strings, or lists of them (any element matches)
    INTEGER = "integer"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"  # RFC 3339 strings (our dates are unix seconds, FLOAT)
    TEXT = "text"  # full text: words, lower-cased, BM25-scorable
    GEO = "geo"  # {"lat": .., "lon": ..}


class PayloadError(ValueError):
    """A payload that is not one of ours (unknown or missing ``kind``)."""


def _field(index: FieldType | None = None, *, default: Any = dataclasses.MISSING) -> Any:
    """A contract field; ``index`` declares its payload index."""
    return field(default=default, metadata={} if index is None else {_INDEX: index})


def _derived(index: FieldType | None = None) -> dict[str, Any]:
    """Metadata of a derived field (declared ``field(default=None, init=False, metadata=...)``)."""
    return {_DERIVED: True} if index is None else {_DERIVED: True, _INDEX: index}


def _kind(value: str) -> Any:
    return field(default=value, init=False, metadata={_INDEX: FieldType.KEYWORD})


@dataclass(frozen=True)
class GeoPoint:
    """A position in decimal degrees, stored as Qdrant's geo value ``{"lat": .., "lon": ..}``."""

    lat: float
    lon: float

    def to_payload(self) -> dict[str, float]:
        return {"lat": self.lat, "lon": self.lon}


# -- the kinds --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PointPayload:
    """Fields every point carries: where its media came from and what it is.

    ``taken_at`` is unix seconds (EXIF date taken, else the file's mtime, else download time);
    ``dirs`` lists every ancestor folder of a local file, outermost first, for path filters.
    """

    kind: str = _kind("")
    media_id: str = _field(FieldType.KEYWORD)  # the image, video or product photo the point came from
    source: str = _field(FieldType.KEYWORD)  # source id
    uri: str = _field()
    name: str = _field()
    model: str = _field()
    taken_at: float | None = _field(FieldType.FLOAT, default=None)
    size_bytes: int | None = _field(FieldType.INTEGER, default=None)
    path: str | None = _field(default=None)
    dirs: tuple[str, ...] = _field(FieldType.KEYWORD, default=())
    width: int | None = _field(FieldType.INTEGER, default=None)
    height: int | None = _field(FieldType.INTEGER, default=None)
    thumb: str | None = _field(default=None)  # relative to the thumbnails folder
    text: str | None = _field(default=None)  # searchable text from inside the media: EXIF captions, OCR, subtitles
    # What keyword search matches (derived; see ``searchable``): full-text indexed, and the
    # store keeps a BM25 sparse vector of it (``search.store.keywords``).
    words: str | None = field(default=None, init=False, metadata=_derived(FieldType.TEXT))
    year: int | None = field(default=None, init=False, metadata=_derived(FieldType.INTEGER))  # of taken_at, UTC: facets
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields outside the contract, kept as they are

    _spec: ClassVar[_Spec]

    def to_payload(self) -> dict[str, Any]:
        """The stored form: contract fields that have a value, over ``extra`` (which they win)."""
        out = dict(self.extra)
        for name in self._spec.written:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            out[name] = _stored(value)
        return out

    @classmethod
    def from_payload(cls: type[P], data: Mapping[str, Any]) -> P:
        """Read a stored payload as this kind: keys outside the contract go to ``extra``, a
        missing field reads as None (or empty, for a required one), derived fields are
        recomputed rather than trusted.

        Values are taken as stored, without a check per field: search reads hundreds of
        payloads per query, and stored payloads are well-typed, since this module's
        constructors check every value and opening a collection of an older schema version
        normalises its points (``from_untrusted``, run by ``search.store.schema``).
        """
        spec = cls._spec
        state = dict(data)
        extra = {key: state.pop(key) for key in state.keys() - spec.own} if not state.keys() <= spec.own else {}
        state["kind"] = spec.kind
        for name in spec.derived:
            state.pop(name, None)
        for name in spec.tuples:  # stored as lists
            if name in state:
                state[name] = _read_strs(state[name])
        state["extra"] = extra
        point = object.__new__(cls)
        object.__setattr__(point, "__dict__", state)  # absent fields read their class-level default
        point._derive()
        return point

    @classmethod
    def from_untrusted(cls: type[P], data: Mapping[str, Any]) -> P:
        """Read a payload of unknown quality (an older collection, another writer) through the
        constructor: a mistyped value becomes None, or empty for a required field."""
        spec = cls._spec
        values = {key: value for key, value in data.items() if key in spec.readers}
        extra = {key: value for key, value in data.items() if key not in spec.own}
        for name, empty in spec.required.items():
            values.setdefault(name, empty)
        return cls(**values, extra=extra)

    def __post_init__(self) -> None:
        """Every field holds a value of its declared type: what ``from_payload`` relies on.
        An ``extra`` key naming a field of this kind fills that field when it is empty."""
        spec = self._spec
        extra = dict(self.extra)
        for name in extra.keys() & spec.own:
            value = extra.pop(name)
            if name in spec.readers and getattr(self, name) in (None, ()):
                object.__setattr__(self, name, value)
        for name, read in spec.readers.items():
            value = getattr(self, name)
            if (name, type(value)) not in spec.plain:
                fixed = read(value)
                object.__setattr__(self, name, spec.required[name] if fixed is None and name in spec.required else fixed)
        object.__setattr__(self, "extra", extra)
        self._derive()

    def _derive(self) -> None:
        """Compute the derived fields from the others: the searchable words, the year taken."""
        object.__setattr__(self, "words", searchable_words(self._searchable()) or None)
        object.__setattr__(self, "year", _utc_year(self.taken_at))

    def _searchable(self) -> list[str | None]:
        """The texts a person would type to find this point: its file and folder names, and
        the text found inside it; kinds with more to say (camera, product fields) add theirs."""
        folders = [d.rstrip("/").rsplit("/", 1)[-1] for d in self.dirs[-_FOLDER_WORDS:]]
        return [self.name, *folders, self.text]

    def details(self) -> dict[str, Any]:
        """What the API shows as ``metadata``: fields with no first-class place in a result."""
        return dict(self.extra)


@dataclass(frozen=True, kw_only=True)
class _PhotoPayload(PointPayload):
    """A still picture: EXIF facts, and the position they give as a geo point."""

    camera: str | None = _field(default=None)
    gps_lat: float | None = _field(default=None)  # decimal degrees, south negative
    gps_lon: float | None = _field(default=None)  # decimal degrees, west negative
    geo: GeoPoint | None = field(default=None, init=False, metadata=_derived(FieldType.GEO))

    def _derive(self) -> None:
        super()._derive()
        object.__setattr__(self, "geo", _geo(self.gps_lat, self.gps_lon))

    def _searchable(self) -> list[str | None]:
        return [*super()._searchable(), self.camera]

    def details(self) -> dict[str, Any]:
        facts = {"camera": self.camera, "gps_lat": self.gps_lat, "gps_lon": self.gps_lon}
        return {**self.extra, **{k: v for k, v in facts.items() if v is not None}}


@dataclass(frozen=True, kw_only=True)
class ImagePayload(_PhotoPayload):
    """A photo."""

    kind: Literal["image"] = _kind("image")


@dataclass(frozen=True, kw_only=True)
class ProductPayload(_PhotoPayload):
    """A product photo: the manifest row's named fields; its other columns are in ``extra``."""

    kind: Literal["product"] = _kind("product")
    product_id: str = _field(FieldType.KEYWORD)
    title: str | None = _field(default=None)
    category: str | None = _field(FieldType.KEYWORD, default=None)
    brand: str | None = _field(FieldType.KEYWORD, default=None)
    price: float | None = _field(FieldType.FLOAT, default=None)

    def _searchable(self) -> list[str | None]:
        """Also the manifest row: title, brand, category, SKU and its other text columns."""
        columns = [value for value in self.extra.values() if isinstance(value, str) and "://" not in value]
        return [*super()._searchable(), self.product_id, self.title, self.brand, self.category, *columns]


@dataclass(frozen=True, kw_only=True)
class _VideoPayload(PointPayload):
    """A point inside a video; ``media_id`` and ``video_id`` are both the video's id."""

    video_id: str = _field(FieldType.KEYWORD)
    duration: float | None = _field(default=None)  # seconds


@dataclass(frozen=True, kw_only=True)
class FramePayload(_VideoPayload):
    """One sampled frame at ``t`` seconds, with its own thumbnail."""

    kind: Literal["frame"] = _kind("frame")
    t: float = _field(FieldType.FLOAT)


@dataclass(frozen=True, kw_only=True)
class SegmentPayload(_VideoPayload):
    """A window [t_start, t_end) of a video: the mean of its ``n_frames`` frame vectors."""

    kind: Literal["segment"] = _kind("segment")
    t_start: float = _field(FieldType.FLOAT)
    t_end: float = _field(FieldType.FLOAT)
    n_frames: int = _field()


@dataclass(frozen=True, kw_only=True)
class CuePayload(_VideoPayload):
    """A subtitle or transcript cue [t_start, t_end) of a video; its vector is the text embedding
    of ``text``, which is also full-text indexed for keyword search. ``track`` names its source
    (a sidecar file, or a stream inside the container)."""

    kind: Literal["cue"] = _kind("cue")
    t_start: float = _field(FieldType.FLOAT)
    t_end: float = _field(FieldType.FLOAT)
    text: str = _field(FieldType.TEXT)
    lang: str | None = _field(FieldType.KEYWORD, default=None)
    track: str | None = _field(default=None)


Payload = Union[ImagePayload, ProductPayload, FramePayload, SegmentPayload, CuePayload]
P = TypeVar("P", bound=PointPayload)

_CLASSES: tuple[type[PointPayload], ...] = (ImagePayload, ProductPayload, FramePayload, SegmentPayload, CuePayload)
_KINDS: dict[str, type[PointPayload]] = {cls.kind: cls for cls in _CLASSES}
KINDS: tuple[str, ...] = tuple(_KINDS)
VIDEO_KINDS: tuple[str, ...] = ("frame", "segment", "cue")


def parse_payload(data: Mapping[str, Any]) -> Payload:
    """The typed payload of a stored point, by its ``kind``; PayloadError if it is not ours."""
    cls = _KINDS.get(str(data.get("kind")))
    if cls is None:
        raise PayloadError(f"A point payload of unknown kind {data.get('kind')!r}; known kinds: {', '.join(KINDS)}.")
    return cls.from_payload(data)  # type: ignore[return-value]


def read_payload(data: Mapping[str, Any]) -> Payload | None:
    """Like ``parse_payload``, but None for a point that is not ours (a point fetched by id,
    which another writer may have stored in the same collection)."""
    cls = _KINDS.get(str(data.get("kind")))
    return None if cls is None else cls.from_payload(data)  # type: ignore[return-value]


def normalise_payload(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """``data`` as this version writes it: values checked, derived fields computed (None if
    the point is not ours). What a migration sets on points of an older collection."""
    cls = _KINDS.get(str(data.get("kind")))
    return None if cls is None else cls.from_untrusted(data).to_payload()


def kind_of(data: Mapping[str, Any]) -> str:
    """A stored payload's kind without parsing the rest ("" when it has none)."""
    kind = data.get("kind")
    return kind if isinstance(kind, str) else ""


# -- the collection record ----------------------------------------------------------------------


@dataclass(frozen=True)
class CollectionRecord:
    """What a collection says about itself, stored as a reserved point (see ``search.store.schema``)."""

    schema_version: int
    kind: ClassVar[str] = "collection-record"  # matches no kind filter, should one ever reach it

    def to_payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "schema_version": self.schema_version}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> CollectionRecord:
        version = data.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise PayloadError(f"The collection record holds no usable schema version ({version!r}).")
        return cls(version)


# -- derived fields -------------------------------------------------------------------------------

_FOLDER_WORDS = 4  # innermost folders whose names count as words ("/home/ann" says nothing)
_WORD = re.compile(r"[^\W_]+")  # letters and digits: "IMG_2023_beach-party.jpg" → IMG 2023 beach party jpg
_WORDS_MAX = 4000  # characters: a page of OCR text is plenty for keyword search


def _utc_year(at: float | None) -> int | None:
    """The UTC calendar year of unix seconds ``at`` (None when unknown or out of range)."""
    if at is None or not math.isfinite(at):
        return None
    try:
        return datetime.fromtimestamp(at, timezone.utc).year
    except (OverflowError, OSError, ValueError):
        return None


def searchable_words(texts: typing.Iterable[str | None]) -> str:
    """``texts`` as one line of words, split at anything but letters and digits, so file
    names, SKUs ("BL-1234" → "BL 1234") and captions tokenize alike for documents and
    queries (``search.store.keywords`` splits queries the same way)."""
    words = [" ".join(_WORD.findall(text)) for text in texts if text]
    return " ".join(w for w in words if w)[:_WORDS_MAX]


def _geo(lat: float | None, lon: float | None) -> GeoPoint | None:
    if lat is None or lon is None or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return GeoPoint(lat, lon)


# -- reading values back ----------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _read_str(value: Any) -> str | None:
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def _read_float(value: Any) -> float | None:
    return _number(value)


def _read_int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _read_strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


_READERS: dict[Any, tuple[Callable[[Any], Any], type | None, Any]] = {
    # annotation → (reader, the type a stored value may have to be taken as it is,
    #               the empty value a required field falls back to)
    str: (_read_str, str, ""),
    str | None: (_read_str, str, None),
    float: (_read_float, float, 0.0),
    float | None: (_read_float, float, None),
    int: (_read_int, int, 0),
    int | None: (_read_int, int, None),
    tuple[str, ...]: (_read_strs, None, ()),  # stored as a list: always converted
}


def _stored(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, GeoPoint):
        return value.to_payload()
    return value


@dataclass(frozen=True)
class _Spec:
    """Per kind, precomputed once: its fields, how each is checked, and what is written."""

    kind: str
    own: frozenset[str]  # every contract field of the kind (``extra`` holds the other keys)
    readers: Mapping[str, Callable[[Any], Any]]  # constructor fields → their reader
    plain: frozenset[tuple[str, type]]  # (field, value type) pairs a field may hold as they are
    required: Mapping[str, Any]  # constructor fields without a default → their empty value
    derived: tuple[str, ...]  # computed by ``_derive``, never read back
    tuples: tuple[str, ...]  # tuple fields, which JSON stores as lists
    written: tuple[str, ...]  # contract fields in to_payload order


def _spec(cls: type[PointPayload]) -> _Spec:
    hints = typing.get_type_hints(cls)
    readers: dict[str, Callable[[Any], Any]] = {}
    plain: set[tuple[str, type]] = set()
    required: dict[str, Any] = {}
    contract = [f for f in dataclasses.fields(cls) if f.name != "extra"]
    for f in contract:
        if not f.init:
            continue
        reader, exact, empty = _READERS[hints[f.name]]
        readers[f.name] = reader
        if exact is not None:
            plain.add((f.name, exact))
        if f.default is dataclasses.MISSING:
            required[f.name] = empty
        else:
            plain.add((f.name, type(f.default)))  # the default itself: None, or () for tuples
    return _Spec(
        kind=cls.kind,
        own=frozenset(f.name for f in contract),
        readers=readers,
        plain=frozenset(plain),
        required=required,
        derived=tuple(f.name for f in contract if f.metadata.get(_DERIVED)),
        tuples=tuple(f.name for f in contract if hints[f.name] == tuple[str, ...]),
        written=tuple(f.name for f in contract),
    )


def _declared_indexes() -> dict[str, FieldType]:
    """Every indexed field of every kind; one name with two index types is a contract bug."""
    found: dict[str, FieldType] = {}
    for cls in _KINDS.values():
        for f in dataclasses.fields(cls):
            index = f.metadata.get(_INDEX)
            if index is None:
                continue
            if found.setdefault(f.name, index) != index:
                raise TypeError(f"Payload field {f.name!r} is declared with two index types: {found[f.name]} and {index}.")
    return found


_ALL_CLASSES: tuple[type[PointPayload], ...] = (PointPayload, *_CLASSES)
for _cls in _ALL_CLASSES:
    _cls._spec = _spec(_cls)
    for _name, _empty in _cls._spec.required.items():
        setattr(_cls, _name, _empty)  # what ``from_payload`` reads for a required field it lacks

INDEXED_FIELDS: Mapping[str, FieldType] = _declared_indexes()
FIELD_NAMES: frozenset[str] = frozenset(f.name for cls in _KINDS.values() for f in dataclasses.fields(cls) if f.name != "extra")


def _declared(name: str) -> str:
    if name not in FIELD_NAMES:
        raise TypeError(f"{name!r} is not a payload field.")
    return name


# Field names for filters (``Match(KIND, ...)``), checked against the declarations at import.
KIND = _declared("kind")
MEDIA_ID = _declared("media_id")
SOURCE = _declared("source")
VIDEO_ID = _declared("video_id")
DIRS = _declared("dirs")
CATEGORY = _declared("category")
BRAND = _declared("brand")
TAKEN_AT = _declared("taken_at")
SIZE_BYTES = _declared("size_bytes")
WIDTH = _declared("width")
HEIGHT = _declared("height")
PRICE = _declared("price")
GEO = _declared("geo")
TEXT = _declared("text")
WORDS = _declared("words")
