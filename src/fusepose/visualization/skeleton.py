"""Draw people (keypoints + limbs) on a BGR image, for any :class:`~fusepose.skeletons.Skeleton`."""

from __future__ import annotations

import colorsys
from collections.abc import Iterable

import cv2
import numpy as np

from fusepose.skeletons import Skeleton
from fusepose.structures import PoseInstance, PoseResult


def limb_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct BGR colours (evenly spaced hues), one per limb."""
    out = []
    for i in range(max(n, 1)):
        r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.85, 1.0)
        out.append((int(b * 255), int(g * 255), int(r * 255)))
    return out


def track_color(track_id: int) -> tuple[int, int, int]:
    """The BGR colour of a track: hues a golden-ratio step apart, so neighbouring ids differ."""
    r, g, b = colorsys.hsv_to_rgb((int(track_id) * 0.618033988749895) % 1.0, 0.9, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_poses(
    image: np.ndarray,
    poses: PoseResult | Iterable[PoseInstance],
    skeleton: Skeleton,
    kpt_thr: float = 0.3,
    radius: int | None = None,
    thickness: int | None = None,
    draw_boxes: bool = False,
    by_track: bool = False,
) -> np.ndarray:
    """A copy of ``image`` ((H, W, 3) uint8 BGR) with every person drawn.

    Keypoints (original-image pixels) with score < ``kpt_thr`` are skipped, and so is every
    limb touching one. Limb ``i`` of ``skeleton.limbs`` always gets colour ``limb_colors[i]``.
    ``by_track``: a tracked person (``track_id`` set) is drawn in its track's colour
    (:func:`track_color`) instead, with ``id N`` written above it.
    """
    canvas = np.ascontiguousarray(image.copy())
    h, w = canvas.shape[:2]
    scale = max(h, w) / 640.0
    radius = radius or max(2, int(round(3 * scale)))
    thickness = thickness or max(1, int(round(2 * scale)))
    colors = limb_colors(len(skeleton.limbs))
    instances = poses.instances if isinstance(poses, PoseResult) else list(poses)
    for inst in instances:
        kpts = np.asarray(inst.keypoints, dtype=np.float64)
        scores = np.asarray(inst.keypoint_scores, dtype=np.float64)
        if len(kpts) != skeleton.num_keypoints:
            raise ValueError(
                f"pose has {len(kpts)} keypoints, skeleton {skeleton.name!r} has "
                f"{skeleton.num_keypoints}"
            )
        ok = (scores >= kpt_thr) & np.all(np.isfinite(kpts), axis=1)
        tracked = by_track and inst.track_id is not None
        for i, (a, b) in enumerate(skeleton.limbs):
            if ok[a] and ok[b]:
                pa = tuple(int(round(v)) for v in kpts[a])
                pb = tuple(int(round(v)) for v in kpts[b])
                color = track_color(inst.track_id) if tracked else colors[i]
                cv2.line(canvas, pa, pb, color, thickness, cv2.LINE_AA)
        for k in np.flatnonzero(ok):
            c = tuple(int(round(v)) for v in kpts[k])
            cv2.circle(canvas, c, radius, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(canvas, c, radius, (0, 0, 0), 1, cv2.LINE_AA)
        if draw_boxes and inst.box is not None:
            x, y, bw, bh = (int(round(v)) for v in inst.box)
            color = track_color(inst.track_id) if tracked else (0, 255, 0)
            cv2.rectangle(canvas, (x, y), (x + bw, y + bh), color, 1)
        if tracked:
            _label(canvas, f"id {inst.track_id}", kpts[ok] if ok.any() else kpts,
                   track_color(inst.track_id), scale)  # fmt: skip
    return canvas


def _label(canvas: np.ndarray, text: str, points: np.ndarray, color, scale: float) -> None:
    """``text`` on a filled box of ``color`` just above ``points`` (N, 2), inside the image."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, 0.5 * scale)
    weight = max(1, int(round(scale)))
    (tw, th), base = cv2.getTextSize(text, font, size, weight)
    pts = points[np.all(np.isfinite(points), axis=1)]
    if len(pts) == 0:
        return
    h, w = canvas.shape[:2]
    x = int(np.clip(pts[:, 0].min(), 0, max(w - tw - 4, 0)))
    y = int(np.clip(pts[:, 1].min() - 6, th + base + 2, h - 1))
    cv2.rectangle(canvas, (x, y - th - base - 2), (x + tw + 4, y), color, -1)
    cv2.putText(canvas, text, (x + 2, y - base), font, size, (0, 0, 0), weight, cv2.LINE_AA)
