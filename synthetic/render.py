"""Rendering a ``Scene`` to pixels with Pillow and numpy.

Rendering is deterministic: every random choice lives in the scene, and the pixel noise is drawn
from a generator seeded by the scene. Objects are drawn as alpha masks at twice (or more) the
output resolution and downsampled, which gives clean anti-aliased edges at any size.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from synthetic.scene import Background, ObjectSpec, Scene
from synthetic.vocab import colour as colour_of


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices of a shape of radius 1 centred on the origin (y grows downwards)."""
    if shape == "square":
        h = 0.8
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if shape == "triangle":
        return [(math.cos(a), math.sin(a) + 0.15) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "star":
        points = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.45
            a = -math.pi / 2 + k * math.pi / 5
            points.append((r * math.cos(a), r * math.sin(a) + 0.05))
        return points
    if shape == "heart":
        points = []
        for k in range(48):
            t = 2 * math.pi * k / 48
            x = 16 * math.sin(t) ** 3
            y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
            points.append((x / 16.5, y / 16.5 + 0.05))
        return points
    if shape == "cross":
        w = 0.33
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
    if shape == "diamond":
        return [(0, -1), (0.62, 0), (0, 1), (-0.62, 0)]
    raise ValueError(f"shape {shape!r} has no polygon")


_POLYGONS = {s: _unit_polygon(s) for s in ("square", "triangle", "star", "heart", "cross", "diamond")}


def _draw_mask(obj: ObjectSpec, width: int, height: int, scale: int) -> Image.Image:
    """An 8-bit alpha mask of one object at ``scale`` times the output resolution."""
    w, h = width * scale, height * scale
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    fx, fy = obj.centre()
    cx, cy = fx * w, fy * h
    r = obj.effective_radius() * min(w, h)
    if obj.shape in ("circle", "ring"):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        if obj.shape == "ring":
            ri = r * 0.55
            draw.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=0)
        return mask
    a = math.radians(obj.rotation)
    ca, sa = math.cos(a), math.sin(a)
    points = [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in _POLYGONS[obj.shape]]
    draw.polygon(points, fill=255)
    return mask


def render_background(bg: Background, width: int, height: int) -> np.ndarray:
    """The background as a float32 (height, width, 3) array in 0..255."""
    a = np.asarray(bg.colour_a, dtype=np.float32)
    b = np.asarray(bg.colour_b, dtype=np.float32)
    if bg.kind == "plain":
        return np.broadcast_to(a, (height, width, 3)).copy()
    side = min(width, height)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = math.radians(bg.angle)
    proj = (xs * math.cos(theta) + ys * math.sin(theta)) / side
    if bg.kind == "stripes":
        t = (np.floor(proj / bg.period) % 2)[..., None]
        return a * (1 - t) + b * t
    if bg.kind == "gradient":
        t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
        return a * (1 - t[..., None]) + b * t[..., None]
    if bg.kind == "noise":
        rng = np.random.default_rng(bg.seed)
        coarse = rng.random((6, 6), dtype=np.float32)
        t = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC))
        t = (t.astype(np.float32) / 255.0)[..., None]
        return a * (1 - t) + b * t
    raise ValueError(f"unknown background kind {bg.kind!r}")


def composite_objects(canvas: np.ndarray, objects, width: int, height: int, scale: int) -> np.ndarray:
    """Alpha-blend each object's anti-aliased mask onto a float (height, width, 3) canvas."""
    for obj in objects:
        mask = _draw_mask(obj, width, height, scale).resize((width, height), Image.Resampling.BOX)
        alpha = (np.asarray(mask, dtype=np.float32) / 255.0)[..., None]
        rgb = np.clip(np.asarray(colour_of(obj.colour).rgb, dtype=np.float32) + obj.shade, 0, 255)
        canvas = canvas * (1 - alpha) + rgb * alpha
    return canvas


def finish(canvas: np.ndarray, noise: float, noise_seed: int) -> Image.Image:
    """Add the scene's pixel noise and quantise to an RGB image."""
    if noise > 0:
        rng = np.random.default_rng(noise_seed)
        canvas = canvas + rng.normal(0.0, noise, size=canvas.shape).astype(np.float32)
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), "RGB")


def default_supersample(width: int, height: int) -> int:
    return 4 if max(width, height) <= 96 else 2


def render_scene(
    scene: Scene, width: int, height: int | None = None, supersample: int = 0, background: np.ndarray | None = None
) -> Image.Image:
    """Render ``scene`` as an RGB image of ``width`` x ``height`` pixels (square by default).

    ``background`` may pass a precomputed ``render_background`` array (videos reuse one per shot).
    """
    height = height or width
    if width < 8 or height < 8:
        raise ValueError(f"image size {width}x{height} is too small to render (minimum 8x8)")
    scale = supersample or default_supersample(width, height)
    canvas = render_background(scene.background, width, height) if background is None else background
    canvas = composite_objects(canvas, scene.objects, width, height, scale)
    return finish(canvas, scene.noise, scene.noise_seed)
