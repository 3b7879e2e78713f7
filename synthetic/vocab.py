"""The closed vocabulary of the procedural world: colours, shapes, sizes, positions.

Everything the world can show is named here once, so the renderer, the caption writer, the
training script and the evaluation all agree on it. The held-out colour-shape pairs are a fixed
list in code (not drawn from a seed) so every training run and every benchmark excludes the same
pairs and "compositional generalisation" means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Colour:
    name: str
    rgb: tuple[int, int, int]
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class Shape:
    name: str
    synonyms: tuple[str, ...]


# Saturated or extreme colours; backgrounds use muted mid tones, so objects stay distinct after JPEG.
COLOURS: tuple[Colour, ...] = (
    Colour("red", (220, 30, 30), ("crimson", "scarlet")),
    Colour("green", (30, 165, 55), ("emerald", "grass-green")),
    Colour("blue", (35, 75, 225), ("azure", "cobalt")),
    Colour("yellow", (245, 220, 30), ("golden", "lemon")),
    Colour("orange", (250, 135, 15), ("tangerine", "amber")),
    Colour("purple", (130, 40, 175), ("violet", "lilac")),
    Colour("pink", (250, 125, 195), ("rose", "magenta")),
    Colour("white", (248, 248, 248), ("snow-white", "ivory")),
    Colour("black", (18, 18, 18), ("jet-black", "ebony")),
    Colour("brown", (115, 65, 25), ("chocolate", "chestnut")),
)

SHAPES: tuple[Shape, ...] = (
    Shape("circle", ("disc", "dot")),
    Shape("square", ("block", "box")),
    Shape("triangle", ("pyramid", "wedge")),
    Shape("star", ("five-pointed star", "starburst")),
    Shape("heart", ("love heart", "valentine")),
    Shape("cross", ("plus sign", "plus")),
    Shape("diamond", ("rhombus", "lozenge")),
    Shape("ring", ("donut", "hoop")),
)

SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "center")

# 8 of the 80 colour-shape pairs (10 %), one per shape, each with a different colour.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "triangle"),
        ("green", "heart"),
        ("blue", "star"),
        ("yellow", "cross"),
        ("orange", "ring"),
        ("purple", "square"),
        ("pink", "diamond"),
        ("white", "circle"),
    }
)

COLOUR_NAMES: tuple[str, ...] = tuple(c.name for c in COLOURS)
SHAPE_NAMES: tuple[str, ...] = tuple(s.name for s in SHAPES)
ALL_PAIRS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOUR_NAMES for s in SHAPE_NAMES)
SEEN_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p not in HELD_OUT)
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p in HELD_OUT)

_COLOURS_BY_NAME = {c.name: c for c in COLOURS}
_SHAPES_BY_NAME = {s.name: s for s in SHAPES}


def colour(name: str) -> Colour:
    """Look a colour up by its canonical name; unknown names are a caller error."""
    try:
        return _COLOURS_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown colour {name!r}; known: {', '.join(COLOUR_NAMES)}") from None


def shape(name: str) -> Shape:
    """Look a shape up by its canonical name; unknown names are a caller error."""
    try:
        return _SHAPES_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPE_NAMES)}") from None
