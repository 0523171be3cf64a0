"""Heatmap and associative-embedding tag-map overlays on the network input image."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def _resize(maps: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(K, h, w) -> (K, H, W) bilinear."""
    h, w = hw
    return np.stack([cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                     for m in maps])  # fmt: skip


def _label(img: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def colorize(
    values: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    colormap: int = cv2.COLORMAP_JET,
) -> np.ndarray:
    """(H, W) float -> (H, W, 3) uint8 BGR through an OpenCV colour map."""
    v = np.asarray(values, dtype=np.float32)
    lo = float(np.min(v)) if vmin is None else vmin
    hi = float(np.max(v)) if vmax is None else vmax
    norm = np.clip((v - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return cv2.applyColorMap((norm * 255).astype(np.uint8), colormap)


def overlay(image: np.ndarray, values: np.ndarray, alpha: float = 0.5, **kw) -> np.ndarray:
    """Blend a colour-mapped (h, w) map, resized to the image, over (H, W, 3) uint8 BGR."""
    h, w = image.shape[:2]
    vals = cv2.resize(np.asarray(values, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(image, 1.0 - alpha, colorize(vals, **kw), alpha, 0.0)


def tile(images: Sequence[np.ndarray], cols: int = 6) -> np.ndarray:
    """Grid of equally sized (H, W, 3) uint8 images, padded with black."""
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    cols = min(cols, len(images))
    grid = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = im
    return grid


def heatmap_grid(
    image: np.ndarray, heatmaps: np.ndarray, names: Sequence[str] | None = None, cols: int = 6
) -> np.ndarray:
    """All-keypoint max plus one panel per keypoint, each over ``image``.

    image: (H, W, 3) uint8 BGR, the network input (the heatmaps' frame, any stride).
    heatmaps: (K, h, w) float, values ~[0, 1].
    """
    heatmaps = np.asarray(heatmaps, np.float32)
    k = len(heatmaps)
    names = list(names) if names else [str(i) for i in range(k)]
    panels = [_label(overlay(image, heatmaps.max(0), vmin=0.0, vmax=1.0), "max")]
    for i in range(k):
        panels.append(_label(overlay(image, heatmaps[i], vmin=0.0, vmax=1.0), names[i]))
    return tile(panels, cols)


def tag_map_image(
    image: np.ndarray, heatmaps: np.ndarray, tags: np.ndarray, heat_thr: float = 0.1
) -> np.ndarray:
    """Associative-embedding tags where keypoints are: hue = tag value, shown where heat > thr.

    image: (H, W, 3) uint8 BGR network input; heatmaps, tags: (K, h, w) on the same grid.
    At each pixel the tag of the keypoint with the strongest heatmap is shown, so people with
    well-separated tags appear in different colours.
    """
    h, w = image.shape[:2]
    heat = _resize(np.asarray(heatmaps, np.float32), (h, w))
    tag = _resize(np.asarray(tags, np.float32), (h, w))
    best = heat.argmax(0)
    peak = np.take_along_axis(heat, best[None], 0)[0]
    val = np.take_along_axis(tag, best[None], 0)[0]
    mask = peak > heat_thr
    if mask.any():
        lo, hi = np.percentile(val[mask], [2, 98])
    else:
        lo, hi = float(val.min()), float(val.max())
    # HSV is cyclic: stretch the range so the lowest and highest tags do not share a hue
    col = colorize(val, vmin=lo, vmax=hi + 0.25 * (hi - lo), colormap=cv2.COLORMAP_HSV)
    alpha = np.clip(peak / max(float(peak.max()), 1e-6), 0, 1)[..., None] * mask[..., None]
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return (grey * (1 - alpha) + col * alpha).astype(np.uint8)


def tag_grid(
    image: np.ndarray, heatmaps: np.ndarray, tags: np.ndarray,
    names: Sequence[str] | None = None, cols: int = 6,
) -> np.ndarray:  # fmt: skip
    """Combined tag image plus one raw tag-map panel per keypoint (blue low, red high)."""
    k = len(tags)
    names = list(names) if names else [str(i) for i in range(k)]
    panels = [_label(tag_map_image(image, heatmaps, tags), "tags @ peaks")]
    for i in range(k):
        panels.append(_label(overlay(image, tags[i], alpha=0.6), names[i]))
    return tile(panels, cols)
