"""Render a scene graph to a small RGB image with PIL.

Each category is a glyph shape; ``size`` scales it within its grid cell; a *faint* object is blended
toward the background with weight ``faint_alpha`` (weak visual evidence, the regime in which a
language prior can override the image, as for small or occluded objects in real photos). Pixel noise
is drawn from a generator seeded by the scene, so rendering is deterministic.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from study.world.scenes import Scene
from study.world.spec import WorldSpec


def _glyph(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    t = max(1.0, w / 4)  # stroke thickness
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=int(round(t)))
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "frame":
        draw.rectangle(box, outline=fill, width=int(round(t)))
    elif shape == "vbar":
        draw.rectangle((cx - t / 2, y0, cx + t / 2, y1), fill=fill)
    elif shape == "hbar":
        draw.rectangle((x0, cy - t / 2, x1, cy + t / 2), fill=fill)
    elif shape == "plus":
        draw.rectangle((cx - t / 2, y0, cx + t / 2, y1), fill=fill)
        draw.rectangle((x0, cy - t / 2, x1, cy + t / 2), fill=fill)
    elif shape == "cross":
        draw.line((x0, y0, x1, y1), fill=fill, width=int(round(t)))
        draw.line((x0, y1, x1, y0), fill=fill, width=int(round(t)))
    elif shape == "tee":
        draw.rectangle((x0, y0, x1, y0 + t), fill=fill)
        draw.rectangle((cx - t / 2, y0, cx + t / 2, y1), fill=fill)
    elif shape == "ell":
        draw.rectangle((x0, y0, x0 + t, y1), fill=fill)
        draw.rectangle((x0, y1 - t, x1, y1), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "inv_triangle":
        draw.polygon([(x0, y0), (x1, y0), (cx, y1)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    elif shape == "hourglass":
        draw.polygon([(x0, y0), (x1, y0), (x0, y1), (x1, y1)], fill=fill)
    elif shape == "bowtie":
        draw.polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)], fill=fill)
    elif shape == "halfdisk":
        draw.pieslice((x0, y0, x1, y1 + h), 180, 360, fill=fill)
    else:  # pragma: no cover - spec validation rejects unknown shapes
        raise ValueError(f"unknown shape {shape!r}")


def render_scene(
    spec: WorldSpec, scene: Scene, faint_alpha: float = 0.3, noise_std: float = 6.0, seed: int = 0
) -> np.ndarray:
    """Return an ``(H, W, 3)`` uint8 image of ``scene``."""
    size = spec.image_size
    bg = np.array(spec.contexts[scene.context].background, dtype=np.float64)
    img = Image.new("RGB", (size, size), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(img)
    cell = size / spec.grid
    for obj in scene.objects:
        scale = spec.sizes[obj.size]
        cx, cy = (obj.col + 0.5) * cell, (obj.row + 0.5) * cell
        half = scale * cell / 2
        color = np.array(spec.colors[obj.color], dtype=np.float64)
        if obj.faint:
            color = bg + faint_alpha * (color - bg)
        _glyph(
            draw,
            spec.categories[obj.category].shape,
            (cx - half, cy - half, cx + half, cy + half),
            tuple(int(round(v)) for v in color),
        )
    arr = np.asarray(img, dtype=np.float64)
    if noise_std > 0:
        idx = int(scene.scene_id.rsplit("-", 1)[-1])
        rng = np.random.default_rng([seed, 7919, hash_split(scene.split), idx])
        arr = arr + rng.normal(0.0, noise_std, size=arr.shape)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def hash_split(split: str) -> int:
    """A stable small integer for a split name (Python's ``hash`` is salted per process)."""
    return sum(ord(ch) * (i + 1) for i, ch in enumerate(split))
