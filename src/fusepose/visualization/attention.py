"""Attention maps of CBAM and HSA modules, recorded during one forward pass.

Uses the ``record_maps`` / ``last_maps`` contract (docs/design.md): CBAM stores ``channel
(B, C, 1, 1)`` and ``spatial (B, 1, H, W)``; HSA stores ``first`` and ``second`` ``(B, 1, H, W)``.
HSA panels show the first- and second-order maps side by side, as in the SFM poster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from fusepose.models import attention_modules
from fusepose.visualization.heatmaps import _label, overlay


def iter_attention_modules(model: Any) -> Iterator[tuple[str, Any]]:
    """``(qualified_name, module)`` for every CBAM / HSA module (the record_maps contract)."""
    yield from attention_modules(model)


def record_attention(model: Any, x: Any) -> dict[str, dict[str, np.ndarray]]:
    """Run ``model(x)`` once with recording on; ``{module name: {map name: array}}``.

    x: (B, 3, H, W) normalised input tensor. Arrays keep the module's shapes (batch included).
    Recording is switched off again afterwards.
    """
    import torch

    mods = list(iter_attention_modules(model))
    for _, m in mods:
        m.record_maps = True
    try:
        with torch.inference_mode():
            model(x)
        return {
            name: {k: v.float().cpu().numpy() for k, v in m.last_maps.items()}
            for name, m in mods
            if m.last_maps
        }
    finally:
        for _, m in mods:
            m.record_maps = False
            m.last_maps = {}


def channel_strip(weights: np.ndarray, width: int, height: int = 40) -> np.ndarray:
    """Bar chart of per-channel weights in [0, 1] ((C,) array) as an (height, width, 3) image."""
    w = np.clip(np.asarray(weights, np.float64).reshape(-1), 0.0, 1.0)
    img = np.full((height, width, 3), 32, np.uint8)
    n = len(w)
    for i, v in enumerate(w):
        x0 = int(i * width / n)
        x1 = max(int((i + 1) * width / n), x0 + 1)
        y0 = height - int(round(v * (height - 2)))
        img[y0:height, x0:x1] = (80, 200, 255)
    return img


def attention_panels(
    image: np.ndarray, maps: dict[str, np.ndarray], name: str, index: int = 0
) -> np.ndarray:
    """One row of panels for one module: spatial maps over ``image`` side by side.

    image: (H, W, 3) uint8 BGR network input. maps: the module's ``last_maps`` (numpy, batched);
    ``index`` selects the batch element. Spatial maps are shown on a fixed 0..1 scale (they are
    sigmoid outputs) so first- and second-order maps are comparable.
    """
    panels = []
    order = [k for k in ("first", "second", "spatial") if k in maps]
    order += [k for k in maps if k not in order and k != "channel"]
    for key in order:
        m = maps[key][index]
        m = m.reshape(m.shape[-2], m.shape[-1])
        lo, hi = (0.0, 1.0) if m.min() >= 0 and m.max() <= 1 else (None, None)
        panel = overlay(image, m, alpha=0.6, vmin=lo, vmax=hi)
        panels.append(_label(panel, f"{key} [{m.min():.2f}, {m.max():.2f}]"))
    row = np.concatenate(panels, axis=1) if panels else image.copy()
    if "channel" in maps:
        strip = channel_strip(maps["channel"][index], row.shape[1])
        _label(strip, "channel weights")
        row = np.concatenate([row, strip], axis=0)
    title = np.zeros((20, row.shape[1], 3), np.uint8)
    cv2.putText(title, name, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)  # fmt: skip
    return np.concatenate([title, row], axis=0)
