"""Associative-embedding decoding, step 1: one image's network outputs -> heatmaps and tags.

:func:`aggregate_outputs` upsamples the 1/4 heatmaps to 1/2 (bilinear, half-pixel centres) and
averages them with the 1/2 heatmaps; with flip, it un-flips and permutes the flipped outputs and
averages the two heatmap estimates, while the un-flipped tags are *concatenated* as a second
tag dimension; heatmaps and tags are projected bilinearly to the input size. Multi-scale:
:func:`merge_scales` averages heatmaps and concatenates tags (official HigherHRNet,
``lib/core/inference.py``). The grouping that follows: :mod:`fusepose.codecs.ae_group`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fusepose.codecs.base import check_finite, to_numpy
from fusepose.errors import ConfigError, DataError

__all__ = ["aggregate_outputs", "as_chw", "merge_scales", "resize_maps"]


def resize_maps(maps: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with half-pixel centres (= torch ``align_corners=False``).

    maps: ``(C, h, w)`` -> ``(C, H, W)`` float32, one contiguous 2-D cv2 call per channel.
    """
    h, w = int(size_hw[0]), int(size_hw[1])
    if maps.shape[1:] == (h, w):
        return np.ascontiguousarray(maps, dtype=np.float32)
    src = np.ascontiguousarray(maps, dtype=np.float32)
    out = np.empty((src.shape[0], h, w), np.float32)
    for c in range(src.shape[0]):
        cv2.resize(src[c], (w, h), dst=out[c], interpolation=cv2.INTER_LINEAR)
    return out


def as_chw(x, name: str) -> np.ndarray:
    a = to_numpy(x)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise DataError(f"{name}: expected (C, h, w) for one image, got {tuple(a.shape)}")
    check_finite(a, name)
    return a


def aggregate_outputs(
    out_q,
    out_h=None,
    flip_out_q=None,
    flip_out_h=None,
    *,
    num_keypoints: int,
    flip_index: Sequence[int] | None = None,
    project_size: tuple[int, int] | None = None,
    project_tags: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Combine one image's network outputs at one scale.

    Args:
        out_q: ``(2K, h, w)`` = K heatmaps then K tag maps at the tag (1/4) resolution.
        out_h: ``(K, 2h, 2w)`` heatmaps at 1/2 resolution, or None.
        flip_out_q, flip_out_h: the same for the horizontally flipped input, or None.
        flip_index: joint permutation, required with flip outputs.
        project_size: ``(H, W)`` to resize to (the network input size), or None to stay at
            the finest output resolution.
        project_tags: resize the tags too (official). With False they stay at the finest
            output resolution ``(L, K, H', W')``; :func:`find_peaks` and :func:`refine` then
            sample them bilinearly where needed, which gives the same values and saves
            ``L * K`` full-size resizes.

    Returns:
        heatmaps ``(K, H, W)`` float32 and tags ``(L, K, H, W)`` float32, ``L`` = 1, or 2
        with flip (original tags first).
    """
    K = num_keypoints
    q = as_chw(out_q, "out_q")
    if q.shape[0] != 2 * K:
        raise DataError(f"out_q has {q.shape[0]} channels, expected 2K = {2 * K}")

    def one(q_chw: np.ndarray, h_chw) -> tuple[np.ndarray, np.ndarray]:
        if h_chw is None:
            return q_chw[:K], q_chw[K:]
        h_chw = as_chw(h_chw, "out_h")
        if h_chw.shape[0] != K:
            raise DataError(f"out_h has {h_chw.shape[0]} channels, expected K = {K}")
        up = resize_maps(q_chw, h_chw.shape[1:])
        return (up[:K] + h_chw) * 0.5, up[K:]

    hm, tag = one(q, out_h)
    tags = [tag]
    if flip_out_q is not None:
        if flip_index is None:
            raise ConfigError("flip outputs given without flip_index")
        fq = as_chw(flip_out_q, "flip_out_q")
        fh = None if flip_out_h is None else as_chw(flip_out_h, "flip_out_h")
        fhm, ftag = one(fq, fh)
        perm = list(flip_index)
        hm = (hm + fhm[perm, :, ::-1]) * 0.5
        tags.append(ftag[perm, :, ::-1])
    size = hm.shape[1:] if project_size is None else project_size
    hm = resize_maps(hm, size)
    if project_tags:
        return hm, np.stack([resize_maps(t, size) for t in tags])
    return hm, np.stack([np.ascontiguousarray(t, dtype=np.float32) for t in tags])


def merge_scales(
    per_scale: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-scale test: average heatmaps ``(K, H, W)``, concatenate tags ``(L_i, K, H, W)``.

    All heatmaps must already be projected to the same size (``project_size`` of the 1x
    scale); tags at a lower resolution are resized to it. The official code concatenates only
    the 1x scale's tags; pass only the tags you want.
    """
    hms = [h for h, _ in per_scale]
    size = hms[0].shape[1:]
    if any(h.shape != hms[0].shape for h in hms):
        raise DataError(f"merge_scales: heatmap shapes differ: {[h.shape for h in hms]}")
    tags = []
    for _, t in per_scale:  # tags kept at output resolution: project them (official)
        if t.shape[2:] != size:
            t = np.stack([resize_maps(t_l, size) for t_l in t])
        tags.append(t)
    return np.mean(hms, axis=0, dtype=np.float32), np.concatenate(tags, 0)
