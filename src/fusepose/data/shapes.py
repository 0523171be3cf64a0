"""The drawn-shapes classification set (ImageFolder layout): the ``fusepose pretrain`` smoke
data, written by ``fusepose synth OUT --shapes``."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

from fusepose.data.synth_draw import _ONE, _SHIFT, _pts
from fusepose.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["SHAPES", "generate_shapes", "render_shape"]

# the classes of the drawn-shapes set; all of them keep their class under a horizontal flip
SHAPES = (
    "circle", "ring", "square", "frame", "triangle_up", "triangle_down", "plus", "cross",
    "bar", "diamond",
)  # fmt: skip


def render_shape(rng: np.random.Generator, shape: str, size: int = 48) -> np.ndarray:
    """One ``(size, size, 3)`` BGR uint8 image of ``shape`` (one of :data:`SHAPES`): random
    extent (60-80 % of the side), position (within 5 % of the centre), line width and tints
    (a dark shape on a light flat background), with pixel noise."""
    if shape not in SHAPES:
        raise DataError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    # a light background and a dark shape, each of a random tint
    img = np.empty((size, size, 3), np.uint8)
    img[:] = rng.integers(150, 256, 3).astype(np.uint8)
    colour = rng.uniform(0, 90, 3)
    col = tuple(float(c) for c in colour)
    r = rng.uniform(0.3, 0.4) * size  # half the shape's extent
    c = size / 2 + rng.uniform(-1, 1, 2) * min(0.05 * size, size / 2 - r - 1)
    t = max(1, int(round(r * rng.uniform(0.25, 0.4))))  # stroke width
    cx, cy = c

    def poly(points: list[tuple[float, float]]) -> None:
        cv2.fillPoly(img, [_pts(np.asarray(points))], col, cv2.LINE_AA, _SHIFT)

    if shape == "circle":
        cv2.circle(img, tuple(_pts(c)[0]), int(r * _ONE), col, -1, cv2.LINE_AA, _SHIFT)
    elif shape == "ring":
        cv2.circle(img, tuple(_pts(c)[0]), int((r - t / 2) * _ONE), col, t, cv2.LINE_AA, _SHIFT)
    elif shape == "square":
        poly([(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)])
    elif shape == "frame":
        a, b = _pts(c - r + t / 2)[0], _pts(c + r - t / 2)[0]
        cv2.rectangle(img, tuple(a), tuple(b), col, t, cv2.LINE_AA, _SHIFT)
    elif shape == "triangle_up":
        poly([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)])
    elif shape == "triangle_down":
        poly([(cx - r, cy - r), (cx + r, cy - r), (cx, cy + r)])
    elif shape in ("plus", "cross"):
        h = t / 2
        for w, hh in ((r, h), (h, r)):
            corners = np.array([(-w, -hh), (w, -hh), (w, hh), (-w, hh)])
            if shape == "cross":  # the plus turned by 45 degrees
                corners = corners @ np.array([[1, 1], [-1, 1]]) / math.sqrt(2)
            poly([tuple(p) for p in corners + c])
    elif shape == "bar":
        poly([(cx - r, cy - t), (cx + r, cy - t), (cx + r, cy + t), (cx - r, cy + t)])
    else:  # diamond
        poly([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)])
    noise = rng.integers(-6, 7, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def generate_shapes(
    out_dir: str | Path,
    *,
    train_per_class: int = 40,
    val_per_class: int = 10,
    size: int = 48,
    seed: int = 0,
    num_classes: int = len(SHAPES),
) -> dict[str, Path]:
    """Write an ImageFolder classification set of drawn shapes: ``out_dir/{train,val}/<shape>/
    NNNNN.png`` for the first ``num_classes`` of :data:`SHAPES` (the ``fusepose pretrain``
    smoke set). Image ``i`` of class ``k`` in split ``s`` uses
    ``np.random.default_rng([seed, s, k, i])``. Returns ``{"train": dir, "val": dir}``."""
    if not 2 <= num_classes <= len(SHAPES):
        raise DataError(f"--classes: between 2 and {len(SHAPES)}, got {num_classes}")
    if size < 16:
        raise DataError(f"--size: shape images must be at least 16 px, got {size}")
    out = Path(out_dir)
    paths = {}
    for s, (split, n) in enumerate((("train", train_per_class), ("val", val_per_class))):
        for k, shape in enumerate(SHAPES[:num_classes]):
            folder = out / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = render_shape(np.random.default_rng([seed, s, k, i]), shape, size)
                if not cv2.imwrite(str(folder / f"{i:05d}.png"), img):
                    raise DataError(f"{folder / f'{i:05d}.png'}: cannot write image")
        paths[split] = out / split
    logger.info("%s: %d classes, %d + %d images per class", out, num_classes,
                train_per_class, val_per_class)  # fmt: skip
    return paths
