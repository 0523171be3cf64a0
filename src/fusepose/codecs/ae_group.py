"""Associative-embedding decoding, steps 2-6: peaks -> people (official HigherHRNet
``lib/core/group.py``).

:func:`find_peaks` keeps the pixels equal to their 5x5 maximum above the detection threshold;
:func:`group_joints` matches them joint by joint to people by tag (Hungarian);
:func:`adjust` moves each joint a quarter pixel toward its higher neighbour; :func:`refine`
fills a person's missing joints from the heatmaps and the person's mean tag. Tags may stay
at a lower resolution than the heatmaps: :func:`sample_tags` reads them bilinearly, as if
they had been resized.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from fusepose.codecs.ae_aggregate import resize_maps

__all__ = ["adjust", "find_peaks", "group_joints", "refine", "sample_tags"]


def _axis_coords(
    dst: np.ndarray, src_size: int, dst_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv2 / torch bilinear source index pair and weight for destination pixels ``dst``."""
    sx = (dst + 0.5) * (src_size / dst_size) - 0.5
    x0 = np.floor(sx).astype(np.int64)
    fx = (sx - x0).astype(np.float32)
    low = x0 < 0
    fx[low] = 0.0
    x0[low] = 0
    high = x0 >= src_size - 1
    fx[high] = 0.0
    x0[high] = src_size - 1
    return x0, np.minimum(x0 + 1, src_size - 1), fx


def sample_tags(
    tags: np.ndarray, k: np.ndarray, x: np.ndarray, y: np.ndarray, size_hw
) -> np.ndarray:
    """Tag values at input pixels as if ``tags (L, K, h, w)`` were resized to ``size_hw``.

    ``k, x, y``: ``(M,)`` integer joint and pixel indices. Returns ``(M, L)``.
    """
    L, K, h, w = tags.shape
    H, W = size_hw
    if (h, w) == (H, W):
        return tags[:, k, y, x].T
    x0, x1, fx = _axis_coords(np.asarray(x), w, W)
    y0, y1, fy = _axis_coords(np.asarray(y), h, H)
    top = tags[:, k, y0, x0] * (1 - fx) + tags[:, k, y0, x1] * fx
    bot = tags[:, k, y1, x0] * (1 - fx) + tags[:, k, y1, x1] * fx
    return (top * (1 - fy) + bot * fy).T


def find_peaks(
    heatmaps: np.ndarray,
    tags: np.ndarray,
    *,
    max_num_people: int = 30,
    detection_threshold: float = 0.1,
    nms_kernel: int = 5,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per joint: candidates that equal their ``nms_kernel`` neighbourhood maximum.

    Args:
        heatmaps: ``(K, H, W)``; tags: ``(L, K, H, W)`` or at a lower resolution (sampled
            bilinearly, see :func:`sample_tags`).

    Returns:
        K tuples ``(xy (M, 2) int, score (M,), tag (M, L))`` sorted by score, ``M <=
        max_num_people``, only scores > ``detection_threshold`` (the official top-k keeps
        lower ones too but drops them before grouping, so the result is the same).
    """
    K, H, W = heatmaps.shape
    kernel = np.ones((nms_kernel, nms_kernel), np.uint8)
    flat_hm = heatmaps.reshape(-1)
    cand = np.flatnonzero(flat_hm > detection_threshold)  # few pixels: sparse from here on
    dil = np.empty_like(heatmaps)
    ks_with = np.nonzero(np.bincount(cand // (H * W), minlength=K))[0]
    for k in ks_with:  # cv2.dilate = max-pool with -inf padding
        cv2.dilate(heatmaps[k], kernel, dst=dil[k])
    cand = cand[flat_hm[cand] == dil.reshape(-1)[cand]]
    vals = flat_hm[cand]
    ks = cand // (H * W)
    order = np.lexsort((-vals, ks))  # by joint, then descending score (raster order on ties)
    cand, vals, ks = cand[order], vals[order], ks[order]
    bounds = np.searchsorted(ks, np.arange(K + 1))
    keep = np.concatenate(
        [np.arange(bounds[k], min(bounds[k + 1], bounds[k] + max_num_people)) for k in range(K)]
    ).astype(np.int64)
    cand, vals, ks = cand[keep], vals[keep], ks[keep]
    rem = cand - ks * H * W
    xs, ys = rem % W, rem // W
    tag_vals = sample_tags(tags, ks, xs, ys, (H, W)).astype(np.float32)
    bounds = np.searchsorted(ks, np.arange(K + 1))
    out = []
    for k in range(K):
        sl = slice(bounds[k], bounds[k + 1])
        out.append((np.stack([xs[sl], ys[sl]], -1), vals[sl].astype(np.float32), tag_vals[sl]))
    return out


def group_joints(
    candidates: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    joint_order: Sequence[int],
    tag_threshold: float = 1.0,
    max_num_people: int = 30,
    ignore_too_much: bool = False,
    use_detection_val: bool = True,
) -> np.ndarray:
    """Greedy joint-by-joint Hungarian grouping (official ``match_by_tag``).

    Args:
        candidates: output of :func:`find_peaks`.

    Returns:
        ``(N, K, 3 + L)`` float32 ``[x, y, score, tag...]`` per person (zeros = missing).
    """
    K = len(candidates)
    L = next((t.shape[1] for _, _, t in candidates if t.ndim == 2), 1)
    # Official bookkeeping: persons are keyed by the first tag value of the joint that started
    # them, so a new candidate whose tag equals an existing key (e.g. a tied duplicate peak on a
    # constant tag region) lands in that person instead of starting another one.
    people: dict[float, np.ndarray] = {}
    people_tags: dict[float, list[np.ndarray]] = {}

    def start(joint: np.ndarray, t: np.ndarray, k: int) -> None:
        key = float(t[0])
        people.setdefault(key, np.zeros((K, 3 + L), np.float32))[k] = joint
        people_tags[key] = [t]

    for k in joint_order:
        xy, val, tag = candidates[k]
        if len(val) == 0:
            continue
        joints = np.concatenate([xy.astype(np.float32), val[:, None], tag], axis=1)
        if not people:
            for j in range(len(val)):
                start(joints[j], tag[j], k)
            continue
        keys = list(people)[:max_num_people]
        if ignore_too_much and len(keys) == max_num_people:
            continue
        means = np.stack([np.mean(people_tags[key], axis=0) for key in keys])
        dist = np.linalg.norm(tag[:, None, :] - means[None, :, :], axis=2)
        cost = np.round(dist) * 100 - val[:, None] if use_detection_val else dist
        # rectangular problem = official padding of extra rows with 1e10 columns
        rows, cols = linear_sum_assignment(cost)
        assigned = np.full(len(val), -1)
        ok = dist[rows, cols] < tag_threshold
        assigned[rows[ok]] = cols[ok]
        for j in range(len(val)):
            c = assigned[j]
            if c >= 0:
                people[keys[c]][k] = joints[j]
                people_tags[keys[c]].append(tag[j])
            else:
                start(joints[j], tag[j], k)
    if not people:
        return np.zeros((0, K, 3 + L), np.float32)
    return np.stack(list(people.values())).astype(np.float32)


def adjust(people: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Quarter-pixel shift toward the higher neighbour, then + 0.5 (official ``adjust``).

    Args:
        people: ``(N, K, 3 + L)`` from :func:`group_joints` (integer pixel locations).
        heatmaps: ``(K, H, W)`` aggregated heatmaps (before NMS).
    """
    out = people.copy()
    if len(out) == 0:
        return out
    K, H, W = heatmaps.shape
    n, k = np.nonzero(out[:, :, 2] > 0)
    x = out[n, k, 0].astype(np.int64)
    y = out[n, k, 1].astype(np.int64)
    out[n, k, 0] = (
        x
        + 0.5
        + _shift(heatmaps[k, y, np.minimum(x + 1, W - 1)], heatmaps[k, y, np.maximum(x - 1, 0)])
    )
    out[n, k, 1] = (
        y
        + 0.5
        + _shift(heatmaps[k, np.minimum(y + 1, H - 1), x], heatmaps[k, np.maximum(y - 1, 0), x])
    )
    return out


def _shift(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """+0.25 where the next neighbour is higher, else -0.25 (ties included, as official)."""
    return np.where(after > before, 0.25, -0.25)


def _refine_argmax(hm: np.ndarray, tag: np.ndarray, mean: np.ndarray, buf) -> int:
    """Flat argmax of ``hm - round(|tag - mean|)``; ``tag (L, H, W)``, in-place float32 passes."""
    a, b = buf
    np.subtract(tag[0], np.float32(mean[0]), out=a)
    if len(tag) == 1:
        np.abs(a, out=a)
    else:
        np.square(a, out=a)
        for lt, m in zip(tag[1:], mean[1:], strict=True):
            np.subtract(lt, np.float32(m), out=b)
            np.square(b, out=b)
            a += b
        np.sqrt(a, out=a)
    np.rint(a, out=a)  # = np.round (half to even)
    np.subtract(hm, a, out=a)
    return int(np.argmax(a))


def refine(people: np.ndarray, heatmaps: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """Fill missing joints (official ``refine``) on a copy of ``people``.

    Each missing joint k of a person goes to the argmax of
    ``heatmap_k - round(|tag_k - mean tag of the person|)`` (quarter-pixel adjusted, + 0.5),
    if the heatmap value there is > 0.

    Args:
        people: ``(N, K, 3 + L)`` after :func:`adjust`.
        heatmaps: ``(K, H, W)``; tags: ``(L, K, H, W)`` or lower resolution (resized per
            joint when needed).
    """
    out = people.copy()
    K, H, W = heatmaps.shape
    full: dict[int, np.ndarray] = {}  # tag maps resized to (H, W) on demand
    buf = (np.empty((H, W), np.float32), np.empty((H, W), np.float32))
    for p in out:
        have = p[:, 2] > 0
        if have.all() or not have.any():
            continue
        kk = np.nonzero(have)[0]
        xi = np.clip(p[kk, 0].astype(np.int64), 0, W - 1)
        yi = np.clip(p[kk, 1].astype(np.int64), 0, H - 1)
        mean_tag = sample_tags(tags, kk, xi, yi, (H, W)).mean(axis=0)  # (L,)
        for k in np.nonzero(~have)[0]:
            if k not in full:
                full[k] = (
                    resize_maps(tags[:, k], (H, W)) if tags.shape[2:] != (H, W) else tags[:, k]
                )
            y, x = divmod(_refine_argmax(heatmaps[k], full[k], mean_tag, buf), W)
            val = heatmaps[k, y, x]
            if not val > 0:
                continue
            hk = heatmaps[k]
            p[k, 0] = x + 0.5 + _shift(hk[y, min(x + 1, W - 1)], hk[y, max(x - 1, 0)])
            p[k, 1] = y + 0.5 + _shift(hk[min(y + 1, H - 1), x], hk[max(y - 1, 0), x])
            p[k, 2] = val
    return out
