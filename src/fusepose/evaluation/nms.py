"""OKS non-maximum suppression and the HRNet top-down rescoring.

Definitions follow HRNet (``lib/nms/nms.py``) and MMPose (``mmpose.evaluation.functional.nms``):

- OKS between two people a, b: ``mean_j exp(-d_j^2 / (2 * s^2 * k_j^2))`` with ``k_j = 2 sigma_j``
  and ``s^2 = (area_a + area_b) / 2`` (eps added), averaged over all K keypoints, or with
  ``vis_thr`` over the keypoints whose score is above ``vis_thr`` in *both* people (MMPose;
  HRNet's ``list(a) and list(b)`` quirk effectively tests only the second person). HRNet calls
  it without ``vis_thr``, where both agree.
- OKS-NMS: visit people by descending score (stable for ties); keep one, drop every remaining
  person whose OKS with it is > ``thr``.
- Top-down rescoring: ``score = box_score x mean(keypoint scores > thr)`` (the mean is 0 when no
  keypoint passes), HRNet ``IN_VIS_THRE = 0.2``, followed by OKS-NMS with ``OKS_THRE = 0.9``.

Keypoints are (K, 3) ``[x, y, score]`` in original-image pixels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from fusepose.errors import ResultsError
from fusepose.skeletons import COCO17


def _sigmas(sigmas: Any, k: int) -> np.ndarray:
    if sigmas is None:
        if k != COCO17.num_keypoints:
            raise ResultsError(
                f"oks_nms: {k} keypoints per person; pass sigmas= (one per keypoint)"
            )
        sigmas = COCO17.sigmas
    s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if len(s) != k:
        raise ResultsError(f"oks_nms: {len(s)} sigmas for {k} keypoints")
    return s


def oks_iou(
    ref: np.ndarray,
    others: np.ndarray,
    ref_area: float,
    other_areas: np.ndarray,
    sigmas: Any = None,
    vis_thr: float | None = None,
) -> np.ndarray:
    """OKS of one person against M others.

    ref: (K, 3); others: (M, K, 3); ref_area: scalar; other_areas: (M,) pixel^2. Returns (M,).
    """
    ref = np.asarray(ref, dtype=np.float64).reshape(-1, 3)
    others = np.asarray(others, dtype=np.float64).reshape(-1, ref.shape[0], 3)
    k2 = (2 * _sigmas(sigmas, ref.shape[0])) ** 2
    d2 = ((others[:, :, :2] - ref[None, :, :2]) ** 2).sum(axis=2)  # (M, K)
    scale = (ref_area + np.asarray(other_areas, dtype=np.float64))[:, None] / 2 + np.spacing(1)
    sim = np.exp(-d2 / k2 / scale / 2)
    if vis_thr is None:
        return sim.mean(axis=1)
    mask = (ref[None, :, 2] > vis_thr) & (others[:, :, 2] > vis_thr)
    n = mask.sum(axis=1)
    return np.where(n > 0, (sim * mask).sum(axis=1) / np.maximum(n, 1), 0.0)


def _instance_arrays(instances: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints (N, K, 3), scores (N,), areas (N,)) from result dicts or PoseInstance objects."""
    kpts, scores, areas = [], [], []
    for i, inst in enumerate(instances):
        if isinstance(inst, dict):
            try:
                kp = np.asarray(inst["keypoints"], dtype=np.float64).reshape(-1, 3)
                score = float(inst["score"])
            except (KeyError, ValueError, TypeError) as e:
                raise ResultsError(
                    f"oks_nms: instance {i} needs 'keypoints' (K x 3) and 'score' ({e})"
                ) from None
            if "area" in inst:
                area = float(inst["area"])
            elif "bbox" in inst:
                area = float(inst["bbox"][2]) * float(inst["bbox"][3])
            else:
                area = float(np.ptp(kp[:, 0]) * np.ptp(kp[:, 1]))
        else:  # PoseInstance
            kp = np.concatenate([inst.keypoints, inst.keypoint_scores[:, None]], axis=1)
            score = float(inst.score)
            area = float(inst.box[2] * inst.box[3])
        kpts.append(kp)
        scores.append(score)
        areas.append(area)
    if len({k.shape for k in kpts}) > 1:
        raise ResultsError("oks_nms: instances have different keypoint counts")
    return np.asarray(kpts), np.asarray(scores), np.asarray(areas)


def oks_nms(
    instances: Sequence[Any], thr: float, sigmas: Any = None, vis_thr: float | None = None
) -> list[int]:
    """Indices of the people OKS-NMS keeps, highest score first.

    instances: dicts with ``keypoints`` ((K, 3) or flat 3K), ``score`` and ``area`` (else
    ``bbox`` w x h, else the keypoints' extent), or :class:`~fusepose.structures.PoseInstance`.
    sigmas: (K,) (COCO's for K=17 when None).
    """
    if len(instances) == 0:
        return []
    kpts, scores, areas = _instance_arrays(instances)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        ovr = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas, vis_thr)
        order = rest[ovr <= thr]
    return keep


def rescore_topdown(box_scores: Any, keypoint_scores: Any, thr: float = 0.2) -> np.ndarray:
    """HRNet top-down person score: box_scores (N,) x mean of keypoint_scores (N, K) above thr."""
    box = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    ks = np.asarray(keypoint_scores, dtype=np.float64).reshape(len(box), -1)
    valid = ks > thr
    n = valid.sum(axis=1)
    mean = np.where(n > 0, (ks * valid).sum(axis=1) / np.maximum(n, 1), 0.0)
    return box * mean


def topdown_postprocess(
    results: Sequence[dict],
    *,
    vis_thr: float = 0.2,
    oks_thr: float = 0.9,
    sigmas: Any = None,
) -> list[dict]:
    """HRNet's top-down post-processing of COCO results whose ``score`` is the box score.

    Per image: rescore with :func:`rescore_topdown`, then :func:`oks_nms` at ``oks_thr``.
    Returns new result dicts (``score`` replaced), images in first-seen order.
    """
    by_image: dict[Any, list[dict]] = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    out: list[dict] = []
    for people in by_image.values():
        kpts, box_scores, _ = _instance_arrays(people)
        new_scores = rescore_topdown(box_scores, kpts[:, :, 2], vis_thr)
        rescored = [dict(p, score=float(s)) for p, s in zip(people, new_scores, strict=True)]
        out.extend(rescored[i] for i in oks_nms(rescored, oks_thr, sigmas))
    return out
