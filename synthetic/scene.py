"""Scene descriptions: the ground truth of every rendered image and frame.

A ``Scene`` holds every random choice (jitter, rotation, background, noise seed), so rendering is
a pure function of the scene and the output size: the same scene always gives the same pixels.
Sampling takes an explicit ``numpy.random.Generator``; nothing here touches global random state.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from synthetic.vocab import ALL_PAIRS, POSITIONS, SEEN_PAIRS, SIZES

BACKGROUND_KINDS: tuple[str, ...] = ("plain", "stripes", "noise", "gradient")

# Object centres as fractions of width/height, and radius ranges as fractions of the shorter side.
POSITION_CENTRES: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "center": (0.5, 0.5),
}
SIZE_RADII: dict[str, tuple[float, float]] = {"small": (0.085, 0.11), "large": (0.17, 0.21)}
MAX_JITTER = 0.03
MAX_ROTATION = 20.0


@dataclass(frozen=True)
class ObjectSpec:
    """One object: the four named attributes plus the small random perturbations that render it."""

    colour: str
    shape: str
    size: str
    position: str
    dx: float = 0.0  # centre offset, fraction of width
    dy: float = 0.0  # centre offset, fraction of height
    radius: float = 0.0  # fraction of the shorter side; 0 means the middle of the size's range
    rotation: float = 0.0  # degrees
    shade: int = 0  # added to every channel of the colour

    @property
    def pair(self) -> tuple[str, str]:
        return (self.colour, self.shape)

    def centre(self) -> tuple[float, float]:
        cx, cy = POSITION_CENTRES[self.position]
        return (cx + self.dx, cy + self.dy)

    def effective_radius(self) -> float:
        lo, hi = SIZE_RADII[self.size]
        return self.radius if self.radius > 0 else (lo + hi) / 2


@dataclass(frozen=True)
class Background:
    kind: str
    colour_a: tuple[int, int, int]
    colour_b: tuple[int, int, int]
    angle: float = 0.0  # degrees, for stripes and gradients
    period: float = 0.1  # stripe period, fraction of the shorter side
    seed: int = 0  # for the noise texture


@dataclass(frozen=True)
class Scene:
    objects: tuple[ObjectSpec, ...]
    background: Background
    noise: float = 0.0  # std of per-pixel Gaussian noise, in 0..255 units
    noise_seed: int = 0

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple(o.pair for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        bg = data["background"]
        background = Background(
            kind=bg["kind"],
            colour_a=tuple(bg["colour_a"]),
            colour_b=tuple(bg["colour_b"]),
            angle=bg.get("angle", 0.0),
            period=bg.get("period", 0.1),
            seed=bg.get("seed", 0),
        )
        objects = tuple(ObjectSpec(**o) for o in data["objects"])
        return cls(objects, background, data.get("noise", 0.0), data.get("noise_seed", 0))


def muted_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A low-saturation mid-tone, so that no background reads as one of the object colours."""
    h, s, v = rng.random(), rng.uniform(0.0, 0.28), rng.uniform(0.32, 0.8)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def sample_background(rng: np.random.Generator, kind: str | None = None) -> Background:
    kind = kind or str(rng.choice(BACKGROUND_KINDS))
    a = muted_colour(rng)
    b = muted_colour(rng)
    return Background(
        kind=kind,
        colour_a=a,
        colour_b=b,
        angle=float(rng.uniform(0, 180)),
        period=float(rng.uniform(0.06, 0.2)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_object(rng: np.random.Generator, pair: tuple[str, str], position: str, size: str | None = None) -> ObjectSpec:
    size = size or str(rng.choice(SIZES))
    lo, hi = SIZE_RADII[size]
    return ObjectSpec(
        colour=pair[0],
        shape=pair[1],
        size=size,
        position=position,
        dx=float(rng.uniform(-MAX_JITTER, MAX_JITTER)),
        dy=float(rng.uniform(-MAX_JITTER, MAX_JITTER)),
        radius=float(rng.uniform(lo, hi)),
        rotation=float(rng.uniform(-MAX_ROTATION, MAX_ROTATION)),
        shade=int(rng.integers(-14, 15)),
    )


def _overlaps(a: ObjectSpec, b: ObjectSpec) -> bool:
    (ax, ay), (bx, by) = a.centre(), b.centre()
    return math.hypot(ax - bx, ay - by) < a.effective_radius() + b.effective_radius() + 0.02


def sample_scene(
    rng: np.random.Generator,
    pairs: Iterable[tuple[str, str]] | None = None,
    n_objects: int | None = None,
    object_weights: tuple[float, float, float] = (0.5, 0.35, 0.15),
    max_noise: float = 10.0,
) -> Scene:
    """Draw a scene whose objects use only ``pairs`` (all pairs by default), distinct and non-overlapping.

    Objects in one scene never share a colour-shape pair, so "which objects are in the image" is a
    set and captions are unambiguous.
    """
    pool = list(pairs) if pairs is not None else list(ALL_PAIRS)
    if not pool:
        raise ValueError("sample_scene needs at least one colour-shape pair")
    n = n_objects or int(rng.choice([1, 2, 3], p=np.asarray(object_weights) / sum(object_weights)))
    n = min(n, len(pool))
    objects: list[ObjectSpec] = []
    chosen = rng.choice(len(pool), size=n, replace=False)
    free = list(POSITIONS)
    for index in chosen:
        for _attempt in range(12):
            position = str(rng.choice(free))
            size = str(rng.choice(SIZES)) if n == 1 else str(rng.choice(SIZES, p=[0.65, 0.35]))
            candidate = sample_object(rng, pool[int(index)], position, size)
            if not any(_overlaps(candidate, o) for o in objects):
                objects.append(candidate)
                free.remove(position)
                break
    return Scene(
        objects=tuple(objects),
        background=sample_background(rng),
        noise=float(rng.uniform(0, max_noise)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_training_scene(rng: np.random.Generator) -> Scene:
    """A scene drawn only from the seen pairs: held-out pairs never reach training."""
    return sample_scene(rng, pairs=SEEN_PAIRS)
