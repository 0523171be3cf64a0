"""Bottom-up heatmap + associative-embedding codec (HigherHRNet, Cheng et al. CVPR 2020).

Encoding follows the official target generators: at each output stride ``s`` a joint at
input pixel ``(x, y)`` goes to heatmap pixel ``(int(x / s), int(y / s))`` (truncation, as
official), where an *unnormalised* Gaussian of ``sigma`` output pixels spanning ``6 sigma + 3``
pixels is written; persons are merged by element-wise max and joints outside the map are
skipped. ``tag_joints`` lists, per person and joint, ``[k * h * w + y * w + x, 1]`` at the
first stride (1/4) for the joints that were written, ``[0, 0]`` otherwise.

Decoding follows ``tools/valid.py`` / ``lib/core/inference.py`` / ``lib/core/group.py``:

1. :func:`aggregate_outputs`: upsample the 1/4 heatmaps to 1/2 (bilinear, half-pixel centres)
   and average with the 1/2 heatmaps; with flip, un-flip + permute the flipped outputs and
   average the two heatmap estimates, while the un-flipped tags are *concatenated* as a
   second tag dimension; project heatmaps and tags bilinearly to the input size.
   Multi-scale: :func:`merge_scales` averages heatmaps and concatenates tags.
2. :func:`find_peaks`: keep pixels equal to their 5x5 maximum (``cv2.dilate``, the same
   result as the official max-pool), top ``max_num_people`` per joint above
   ``detection_threshold``.
3. :func:`group_joints`: joints in ``joint_order``; Hungarian matching
   (``scipy.optimize.linear_sum_assignment``) with cost ``round(dist) * 100 - score``;
   a match needs ``dist < tag_threshold``, otherwise the candidate starts a new person
   (persons are keyed by their first tag value, as official).
4. :func:`adjust`: 0.25 px toward the higher neighbour, then + 0.5.
5. Person score = mean of its K joint scores (missing joints count 0), taken before refine.
6. :func:`refine`: each missing joint is put at the argmax of
   ``heatmap - round(|tag - person mean tag|)`` (with the same adjustment) if its value > 0.

Output poses are ``(N, K, 3)`` ``[x, y, score]`` in input pixels (the ``+0.5`` of step 4
included, as official).

Layouts: aggregated heatmaps ``(K, H, W)``, tags ``(L, K, H, W)`` (``L`` = 1, 2 with flip,
more with multi-scale). :meth:`AssociativeEmbeddingCodec.decode` keeps the tags at the 1/2
resolution and samples them bilinearly at the peaks (:func:`sample_tags`), which gives the
values of the official projected maps without resizing all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from fusepose.codecs.heatmap import check_finite, to_numpy
from fusepose.errors import ConfigError, DataError

__all__ = [
    "AssociativeEmbeddingCodec",
    "HIGHERHRNET_COCO_JOINT_ORDER",
    "aggregate_outputs",
    "merge_scales",
    "find_peaks",
    "sample_tags",
    "group_joints",
    "adjust",
    "refine",
]

# lib/core/group.py: head, shoulders, hips, then the limbs.
HIGHERHRNET_COCO_JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


def _resize(maps: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
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


def _as_chw(x, name: str) -> np.ndarray:
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
    q = _as_chw(out_q, "out_q")
    if q.shape[0] != 2 * K:
        raise DataError(f"out_q has {q.shape[0]} channels, expected 2K = {2 * K}")

    def one(q_chw: np.ndarray, h_chw) -> tuple[np.ndarray, np.ndarray]:
        if h_chw is None:
            return q_chw[:K], q_chw[K:]
        h_chw = _as_chw(h_chw, "out_h")
        if h_chw.shape[0] != K:
            raise DataError(f"out_h has {h_chw.shape[0]} channels, expected K = {K}")
        up = _resize(q_chw, h_chw.shape[1:])
        return (up[:K] + h_chw) * 0.5, up[K:]

    hm, tag = one(q, out_h)
    tags = [tag]
    if flip_out_q is not None:
        if flip_index is None:
            raise ConfigError("flip outputs given without flip_index")
        fq = _as_chw(flip_out_q, "flip_out_q")
        fh = None if flip_out_h is None else _as_chw(flip_out_h, "flip_out_h")
        fhm, ftag = one(fq, fh)
        perm = list(flip_index)
        hm = (hm + fhm[perm, :, ::-1]) * 0.5
        tags.append(ftag[perm, :, ::-1])
    size = hm.shape[1:] if project_size is None else project_size
    hm = _resize(hm, size)
    if project_tags:
        return hm, np.stack([_resize(t, size) for t in tags])
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
            t = np.stack([_resize(t_l, size) for t_l in t])
        tags.append(t)
    return np.mean(hms, axis=0, dtype=np.float32), np.concatenate(tags, 0)


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
                full[k] = _resize(tags[:, k], (H, W)) if tags.shape[2:] != (H, W) else tags[:, k]
            y, x = divmod(_refine_argmax(heatmaps[k], full[k], mean_tag, buf), W)
            val = heatmaps[k, y, x]
            if not val > 0:
                continue
            hk = heatmaps[k]
            p[k, 0] = x + 0.5 + _shift(hk[y, min(x + 1, W - 1)], hk[y, max(x - 1, 0)])
            p[k, 1] = y + 0.5 + _shift(hk[min(y + 1, H - 1), x], hk[max(y - 1, 0), x])
            p[k, 2] = val
    return out


class AssociativeEmbeddingCodec:
    """HigherHRNet targets and grouping.

    Args:
        num_keypoints: K.
        input_size: network input ``(H, W)`` or a square side (default target size; the
            decoder takes the size from the outputs).
        strides: output strides of the heatmap resolutions, first = the tag resolution.
        sigma: Gaussian sigma in output pixels (same at every stride).
        max_people: persons kept in ``tag_joints``.
        flip_index: joint permutation of a horizontal flip (needed for flip decoding).
        tag_threshold, detection_threshold, max_num_people: grouping parameters (official
            ``TAG_THRESHOLD``, ``DETECTION_THRESHOLD``, ``MAX_NUM_PEOPLE``).
        joint_order: grouping order; default HigherHRNet's for K = 17, else 0..K-1.
        adjust, refine: the official post-processing switches.
    """

    def __init__(
        self,
        num_keypoints: int,
        input_size: int | Sequence[int] = 512,
        strides: Sequence[int] = (4, 2),
        sigma: float = 2.0,
        max_people: int = 30,
        flip_index: Sequence[int] | None = None,
        tag_threshold: float = 1.0,
        detection_threshold: float = 0.1,
        max_num_people: int = 30,
        joint_order: Sequence[int] | None = None,
        nms_kernel: int = 5,
        adjust: bool = True,
        refine: bool = True,
    ) -> None:
        K = int(num_keypoints)
        self.num_keypoints = K
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.strides = tuple(int(s) for s in strides)
        self.sigma = float(sigma)
        self.max_people = int(max_people)
        if flip_index is not None and sorted(flip_index) != list(range(K)):
            raise ConfigError(
                f"flip_index must be a permutation of 0..{K - 1}, got {list(flip_index)}"
            )
        self.flip_index = None if flip_index is None else list(flip_index)
        self.tag_threshold = float(tag_threshold)
        self.detection_threshold = float(detection_threshold)
        self.max_num_people = int(max_num_people)
        if joint_order is None:
            joint_order = HIGHERHRNET_COCO_JOINT_ORDER if K == 17 else tuple(range(K))
        if sorted(joint_order) != list(range(K)):
            raise ConfigError(f"joint_order must be a permutation of 0..{K - 1}")
        self.joint_order = tuple(int(j) for j in joint_order)
        self.nms_kernel = int(nms_kernel)
        self.do_adjust = bool(adjust)
        self.do_refine = bool(refine)
        # official Gaussian patch: size 6 sigma + 3, centre 3 sigma + 1
        self._radius = int(round(3 * self.sigma + 1))

    # ------------------------------------------------------------------ encode
    def encode(
        self,
        keypoints: np.ndarray,
        valid_mask: np.ndarray | None = None,
        input_size: Sequence[int] | None = None,
        *,
        flipped: bool = False,
        official_flip: bool = False,
        official_mask: bool = False,
    ) -> dict[str, object]:
        """Training targets for one image.

        Output pixel ``j`` of stride ``s`` stands for input pixels ``s j .. s j + s - 1``
        (joints: ``int(x / s)``). The official HigherHRNet conventions, as options:

        - ``official_flip`` (with ``flipped``: the sample was mirrored at input resolution):
          the official code mirrors the targets at each output resolution (``res - 1 - x``),
          which puts a flipped sample's joints at ``int((x - (s - 1)) / s)``: (s - 1) / s
          output px left of the image content (0.75 at 1/4, 0.5 at 1/2).
        - ``official_mask``: the official code warps the mask straight to each output
          resolution, i.e. samples it at input pixel ``s j`` (``s j + s - 1`` in x for an
          officially flipped sample); the default is the bilinear downsampling of
          ``valid_mask`` thresholded at 0.5 (the centre of each ``s x s`` block).

        Args:
            keypoints: ``(N, K, 3)`` ``[x, y, v]`` in input pixels (``v > 0`` = labelled).
            valid_mask: ``(H, W)`` uint8 in input pixels, 0 where the loss is ignored (crowd,
                persons without keypoints), or None (all valid). Fixes the input size.
            input_size: ``(H, W)`` if there is no mask (default: the codec's).

        Returns:
            ``heatmaps``: list of ``(K, H/s, W/s)`` float32 per stride; ``masks``: list of
            ``(H/s, W/s)`` float32; ``tag_joints``: ``(max_people, K, 2)`` int64.
        """
        K = self.num_keypoints
        kp = (
            np.asarray(keypoints, dtype=np.float64).reshape(-1, K, 3)
            if len(keypoints)
            else np.zeros((0, K, 3))
        )
        if kp.ndim != 3 or kp.shape[1:] != (K, 3):
            raise DataError(f"keypoints: expected (N, {K}, 3), got {kp.shape}")
        if valid_mask is not None:
            H, W = valid_mask.shape[:2]
        else:
            H, W = (
                self.input_size if input_size is None else (int(input_size[0]), int(input_size[1]))
            )
        heatmaps, masks = [], []
        tag_joints = np.zeros((self.max_people, K, 2), np.int64)
        for i, s in enumerate(self.strides):
            h, w = H // s, W // s
            off = s - 1 if (official_flip and flipped) else 0  # input px, official_flip
            finite = np.isfinite(kp[..., :2]).all(-1) & (np.abs(kp[..., :2]) < 1e9).all(-1)
            safe = np.where(finite[..., None], kp[..., :2], -1.0)  # non-finite: not labelled
            xi = np.trunc((safe[..., 0] - off) / s).astype(np.int64)
            yi = np.trunc(safe[..., 1] / s).astype(np.int64)
            ok = finite & (kp[..., 2] > 0) & (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h)
            heatmaps.append(self._render(xi, yi, ok, h, w))
            if valid_mask is None:
                masks.append(np.ones((h, w), np.float32))
            elif official_mask:
                m = np.zeros((h, w), np.float32)
                picked = valid_mask[::s, off::s][:h, :w]
                m[: picked.shape[0], : picked.shape[1]] = picked > 0
                masks.append(m)
            else:
                m = cv2.resize(
                    valid_mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR
                )
                masks.append((m > 0.5).astype(np.float32))
            if i == 0:
                n = min(len(kp), self.max_people)
                flat = np.arange(K)[None, :] * h * w + yi * w + xi
                tag_joints[:n, :, 0] = np.where(ok[:n], flat[:n], 0)
                tag_joints[:n, :, 1] = ok[:n]
        return {"heatmaps": heatmaps, "masks": masks, "tag_joints": tag_joints}

    def _render(self, xi: np.ndarray, yi: np.ndarray, ok: np.ndarray, h: int, w: int) -> np.ndarray:
        """Max-merged unnormalised Gaussian patches, ``(K, h, w)``; no loop over pixels."""
        K = self.num_keypoints
        out = np.zeros(K * h * w, np.float32)
        n, k = np.nonzero(ok)
        if len(n):
            r = self._radius
            d = np.arange(-r, r + 1)
            g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * self.sigma**2)).astype(
                np.float32
            )
            px = xi[n, k][:, None, None] + d[None, None, :]
            py = yi[n, k][:, None, None] + d[None, :, None]
            inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
            flat = k[:, None, None] * h * w + py * w + px
            vals = np.broadcast_to(g, inside.shape)
            np.maximum.at(out, flat[inside], vals[inside])
        return out.reshape(K, h, w)

    # ------------------------------------------------------------------ helpers
    def ideal_outputs(
        self, keypoints: np.ndarray, tag_values: Sequence[float] | None = None, input_size=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Outputs of a perfect network for ``keypoints (N, K, 3)`` input pixels.

        Heatmaps are the encoded targets; the tag map of joint k carries, at every pixel,
        the tag value of the person whose Gaussian is highest there (0 where none), person n
        having the constant tag ``tag_values[n]`` (default ``n + 1``). Returns
        ``out_q (2K, H/4, W/4)`` and ``out_h (K, H/2, W/2)`` (for two strides).
        """
        K = self.num_keypoints
        kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, K, 3)
        N = len(kp)
        tv = (
            np.arange(1, N + 1, dtype=np.float32)
            if tag_values is None
            else np.asarray(tag_values, np.float32)
        )
        enc = self.encode(kp, input_size=input_size)
        hms = enc["heatmaps"]
        s = self.strides[0]
        h, w = hms[0].shape[1:]
        best = np.zeros((K, h, w), np.float32)
        tagmap = np.zeros((K, h, w), np.float32)
        for n in range(N):  # loop over persons only
            one = self.encode(kp[n : n + 1], input_size=(h * s, w * s))["heatmaps"][0]
            better = one > best
            tagmap[better] = tv[n]
            best = np.maximum(best, one)
        out_q = np.concatenate([hms[0], tagmap], 0)
        out_h = hms[1] if len(hms) > 1 else None
        return out_q, out_h

    # ------------------------------------------------------------------ decode
    def decode(
        self, out_q, out_h=None, flip_out_q=None, flip_out_h=None, project_size=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Poses from one image's outputs (numpy or torch, no batch dim).

        Args:
            out_q: ``(2K, H/4, W/4)``; out_h: ``(K, H/2, W/2)`` or None; flip_*: the outputs
                of the flipped image or None.
            project_size: ``(H, W)`` input size (default ``4 * out_q`` size).

        Returns:
            poses ``(N, K, 3)`` ``[x, y, score]`` in input pixels, scores ``(N,)``.
        """
        hm, tags = self.aggregate(out_q, out_h, flip_out_q, flip_out_h, project_size)
        return self.group(hm, tags)

    def aggregate(
        self,
        out_q,
        out_h=None,
        flip_out_q=None,
        flip_out_h=None,
        project_size=None,
        project_tags=False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`aggregate_outputs` with this codec's K and flip_index; ``project_size``
        defaults to ``stride * out_q`` size. For multi-scale, aggregate each scale with the 1x
        ``project_size``, :func:`merge_scales`, then :meth:`group`."""
        q = _as_chw(out_q, "out_q")
        if project_size is None:
            project_size = (q.shape[1] * self.strides[0], q.shape[2] * self.strides[0])
        return aggregate_outputs(
            q,
            out_h,
            flip_out_q,
            flip_out_h,
            num_keypoints=self.num_keypoints,
            flip_index=self.flip_index,
            project_size=project_size,
            project_tags=project_tags,
        )

    def group(self, heatmaps: np.ndarray, tags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Peaks -> grouping -> adjust -> score -> refine on ``heatmaps (K, H, W)``, ``tags (L, K, H, W)``."""
        cands = find_peaks(
            heatmaps,
            tags,
            max_num_people=self.max_num_people,
            detection_threshold=self.detection_threshold,
            nms_kernel=self.nms_kernel,
        )
        people = group_joints(
            cands,
            joint_order=self.joint_order,
            tag_threshold=self.tag_threshold,
            max_num_people=self.max_num_people,
        )
        if self.do_adjust:
            people = adjust(people, heatmaps)
        scores = people[:, :, 2].mean(axis=1) if len(people) else np.zeros(0, np.float32)
        if self.do_refine and len(people):
            people = refine(people, heatmaps, tags)
        return people[:, :, :3].copy(), scores.astype(np.float32)

    def decode_batch(self, out_q, out_h=None, flip_out_q=None, flip_out_h=None, project_size=None):
        """:meth:`decode` over a batch ``(B, ...)``; returns a list of (poses, scores)."""
        q = to_numpy(out_q)
        res = []
        for b in range(q.shape[0]):
            res.append(
                self.decode(
                    q[b],
                    None if out_h is None else out_h[b],
                    None if flip_out_q is None else flip_out_q[b],
                    None if flip_out_h is None else flip_out_h[b],
                    project_size,
                )
            )
        return res
