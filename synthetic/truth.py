"""Ground-truth records of generated artefacts, and their JSON form (``truth.json``).

Paths are absolute in memory and relative to the corpus root on disk, so a corpus folder can be
moved or copied and its truth file still resolves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthetic.scene import Scene
from synthetic.vocab import HELD_OUT

TRUTH_VERSION = 1


@dataclass(frozen=True)
class ImageTruth:
    path: Path
    width: int
    height: int
    format: str  # "jpeg", "png" or "webp"
    scene: Scene
    caption: str  # canonical description, e.g. "a red circle and a blue star"

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return self.scene.pairs

    @property
    def has_held_out(self) -> bool:
        return any(p in HELD_OUT for p in self.pairs)

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {
            "path": _rel(self.path, root),
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "caption": self.caption,
            "held_out": self.has_held_out,
            "scene": self.scene.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], root: Path) -> ImageTruth:
        return cls(root / d["path"], d["width"], d["height"], d["format"], Scene.from_dict(d["scene"]), d["caption"])


@dataclass(frozen=True)
class VideoMoment:
    """One object on screen from ``start`` to ``end`` seconds (end exclusive)."""

    colour: str
    shape: str
    start: float
    end: float
    position: str
    size: str

    @property
    def pair(self) -> tuple[str, str]:
        return (self.colour, self.shape)

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


CUE_KINDS = ("describes", "mentions", "chatter")


@dataclass(frozen=True)
class VideoCue:
    """One subtitle cue of a video's sidecar ``.srt``, and what it says about the pictures.

    ``describes``: it names the appearance on screen while it runs ("a red star appears", timed
    over the appearance); ``mentions``: it names a colour-shape pair the video never shows;
    ``chatter``: it names no pair at all.
    """

    start: float
    end: float
    text: str
    kind: str  # one of CUE_KINDS
    colour: str | None = None  # the pair it names (describes, mentions)
    shape: str | None = None

    @property
    def pair(self) -> tuple[str, str] | None:
        return (self.colour, self.shape) if self.colour and self.shape else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "kind": self.kind,
            "colour": self.colour,
            "shape": self.shape,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoCue:
        return cls(d["start"], d["end"], d["text"], d["kind"], d.get("colour"), d.get("shape"))


@dataclass(frozen=True)
class VideoTruth:
    path: Path
    duration: float  # seconds
    fps: int
    width: int
    height: int
    moments: tuple[VideoMoment, ...]
    background_changes: tuple[float, ...]  # times (s) at which the background switches
    cues: tuple[VideoCue, ...] = ()  # what its sidecar subtitles say, in time order
    subtitles: Path | None = None  # the sidecar .srt holding ``cues``; None: the video has none

    def moments_at(self, t: float) -> list[VideoMoment]:
        return [m for m in self.moments if m.contains(t)]

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {
            "path": _rel(self.path, root),
            "duration": self.duration,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "background_changes": list(self.background_changes),
            "moments": [m.__dict__ | {"held_out": m.pair in HELD_OUT} for m in self.moments],
            "subtitles": _rel(self.subtitles, root) if self.subtitles is not None else None,
            "cues": [c.to_dict() for c in self.cues],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], root: Path) -> VideoTruth:
        moments = tuple(
            VideoMoment(m["colour"], m["shape"], m["start"], m["end"], m["position"], m["size"]) for m in d["moments"]
        )
        return cls(
            root / d["path"],
            d["duration"],
            d["fps"],
            d["width"],
            d["height"],
            moments,
            tuple(d.get("background_changes", ())),
            tuple(VideoCue.from_dict(c) for c in d.get("cues", ())),  # truth files older than subtitles have none
            root / d["subtitles"] if d.get("subtitles") else None,
        )


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    category: str
    brand: str
    price: float
    colour: str
    shape: str
    accent: str  # colour of the small dot that tells products of the same colour and shape apart
    images: tuple[Path, ...]  # the product's own photos (near-duplicates are listed separately)

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "brand": self.brand,
            "price": self.price,
            "colour": self.colour,
            "shape": self.shape,
            "accent": self.accent,
            "images": [_rel(p, root) for p in self.images],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], root: Path) -> Product:
        return cls(
            d["id"],
            d["title"],
            d["category"],
            d["brand"],
            d["price"],
            d["colour"],
            d["shape"],
            d["accent"],
            tuple(root / p for p in d["images"]),
        )


@dataclass(frozen=True)
class NearDuplicate:
    """A re-encoded, slightly cropped copy of one product photo."""

    path: Path
    original: Path
    product_id: str


@dataclass(frozen=True)
class ProductTruth:
    csv_path: Path
    manifest_path: Path
    products: tuple[Product, ...]
    near_duplicates: tuple[NearDuplicate, ...]

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {
            "csv": _rel(self.csv_path, root),
            "manifest": _rel(self.manifest_path, root),
            "products": [p.to_dict(root) for p in self.products],
            "near_duplicates": [
                {"path": _rel(n.path, root), "original": _rel(n.original, root), "product_id": n.product_id}
                for n in self.near_duplicates
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], root: Path) -> ProductTruth:
        return cls(
            root / d["csv"],
            root / d["manifest"],
            tuple(Product.from_dict(p, root) for p in d["products"]),
            tuple(NearDuplicate(root / n["path"], root / n["original"], n["product_id"]) for n in d["near_duplicates"]),
        )


@dataclass(frozen=True)
class CorpusTruth:
    root: Path
    seed: int
    images: tuple[ImageTruth, ...] = ()
    videos: tuple[VideoTruth, ...] = ()
    products: ProductTruth | None = None
    held_out: tuple[tuple[str, str], ...] = field(default_factory=lambda: tuple(sorted(HELD_OUT)))


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError as exc:
        raise ValueError(f"{path} is not inside the corpus folder {root}") from exc
