"""Comparing the people of two predictions of one image (INT8 / bf16 / ONNX vs fp32)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from fusepose.structures import PoseInstance, PoseResult

__all__ = ["keypoint_change", "match_keypoint_error", "matched_keypoint_distances",
           "results_by_image"]  # fmt: skip


def matched_keypoint_distances(a, b, min_score: float = 0.1) -> tuple[list[float], int, int]:
    """Pixel distances of the joints of two PoseResults of one image, people matched one to
    one (Hungarian, on the mean distance over the joints both score above ``min_score``).
    Returns ``(distances of the joints both score above min_score, people_a, people_b)``."""
    pa = [(i.keypoints, i.keypoint_scores) for i in a.instances]
    pb = [(i.keypoints, i.keypoint_scores) for i in b.instances]
    if not pa or not pb:
        return [], len(pa), len(pb)
    cost = np.full((len(pa), len(pb)), 1e9)
    for i, (ka, sa) in enumerate(pa):
        for j, (kb, sb) in enumerate(pb):
            ok = (sa > min_score) & (sb > min_score)
            if ok.any():
                cost[i, j] = float(np.linalg.norm(ka[ok] - kb[ok], axis=1).mean())
    rows, cols = linear_sum_assignment(cost)
    d: list[float] = []
    for i, j in zip(rows, cols, strict=True):
        ok = (pa[i][1] > min_score) & (pb[j][1] > min_score)
        d.extend(np.linalg.norm(pa[i][0][ok] - pb[j][0][ok], axis=1).tolist())
    return d, len(pa), len(pb)


def match_keypoint_error(a, b, min_score: float = 0.1) -> dict[str, float]:
    """Mean / max pixel distance between the keypoints of two PoseResults of one image.

    People are matched one to one (Hungarian, on the mean distance over the joints both score
    above ``min_score``). Returns ``mean_px``, ``max_px``, ``joints`` compared and the person
    counts ``people_a`` / ``people_b``.
    """
    d, n_a, n_b = matched_keypoint_distances(a, b, min_score)
    out = {"people_a": n_a, "people_b": n_b, "joints": 0, "mean_px": 0.0, "max_px": 0.0}
    if d:
        out.update(joints=len(d), mean_px=float(np.mean(d)), max_px=float(np.max(d)))
    return out


def keypoint_change(pairs: Sequence[tuple[PoseResult, PoseResult]], min_score: float = 0.1
                    ) -> dict[str, Any]:  # fmt: skip
    """How far the joints of the second result of each pair moved from the first (the same
    image predicted twice, e.g. fp32 and INT8), people matched one to one per image
    (:func:`matched_keypoint_distances`), over all images together.

    Returns ``joints`` (compared), ``median_px``, ``p90_px``, ``mean_px``, ``max_px`` (None when
    no joint was compared), ``share_over_10px`` and the person counts ``people_ref`` /
    ``people_got`` summed over the images. The mean is dominated by the few joints grouped into
    another person or moved to another peak; the median and 90th percentile are not."""
    dists: list[float] = []
    n_ref = n_got = 0
    for ref, got in pairs:
        d, a, b = matched_keypoint_distances(ref, got, min_score)
        dists += d
        n_ref += a
        n_got += b
    out: dict[str, Any] = {"joints": len(dists), "people_ref": n_ref, "people_got": n_got,
                           "median_px": None, "p90_px": None, "mean_px": None, "max_px": None,
                           "share_over_10px": None}  # fmt: skip
    if dists:
        v = np.asarray(dists)
        out.update(median_px=round(float(np.median(v)), 3),
                   p90_px=round(float(np.percentile(v, 90)), 3),
                   mean_px=round(float(v.mean()), 3), max_px=round(float(v.max()), 3),
                   share_over_10px=round(float(np.mean(v > 10.0)), 4))  # fmt: skip
    return out


def results_by_image(results: Sequence[dict[str, Any]]) -> dict[Any, PoseResult]:
    """COCO keypoint results grouped into one :class:`PoseResult` per ``image_id``."""
    people: dict[Any, list[PoseInstance]] = defaultdict(list)
    for r in results:
        kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)
        people[r["image_id"]].append(PoseInstance(kp[:, :2], kp[:, 2], float(r["score"])))
    return {iid: PoseResult(p, image_id=iid) for iid, p in people.items()}
