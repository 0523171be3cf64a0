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


def draw_poses(
    image: np.ndarray,
    poses: PoseResult | Iterable[PoseInstance],
    skeleton: Skeleton,
    kpt_thr: float = 0.3,
    radius: int | None = None,
    thickness: int | None = None,
    draw_boxes: bool = False,
) -> np.ndarray:
    """A copy of ``image`` ((H, W, 3) uint8 BGR) with every person drawn.

    Keypoints (original-image pixels) with score < ``kpt_thr`` are skipped, and so is every
    limb touching one. Limb ``i`` of ``skeleton.limbs`` always gets colour ``limb_colors[i]``.
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
        for i, (a, b) in enumerate(skeleton.limbs):
            if ok[a] and ok[b]:
                pa = tuple(int(round(v)) for v in kpts[a])
                pb = tuple(int(round(v)) for v in kpts[b])
                cv2.line(canvas, pa, pb, colors[i], thickness, cv2.LINE_AA)
        for k in np.flatnonzero(ok):
            c = tuple(int(round(v)) for v in kpts[k])
            cv2.circle(canvas, c, radius, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(canvas, c, radius, (0, 0, 0), 1, cv2.LINE_AA)
        if draw_boxes and inst.box is not None:
            x, y, bw, bh = (int(round(v)) for v in inst.box)
            cv2.rectangle(canvas, (x, y), (x + bw, y + bh), (0, 255, 0), 1)
    return canvas
