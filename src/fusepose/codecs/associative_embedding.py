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
from typing import Any

import cv2
import numpy as np

from fusepose.codecs.ae_aggregate import aggregate_outputs, as_chw, merge_scales
from fusepose.codecs.ae_group import adjust, find_peaks, group_joints, refine, sample_tags
from fusepose.codecs.base import KeypointCodec, to_numpy
from fusepose.errors import ConfigError, DataError

# the decoding steps live in ae_aggregate (step 1) and ae_group (steps 2-6); their names stay
# importable from here
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


class AssociativeEmbeddingCodec(KeypointCodec):
    """HigherHRNet targets and grouping (the :class:`~fusepose.codecs.base.KeypointCodec`
    protocol: ``encode(keypoints (N, K, 3), valid_mask) -> {heatmaps, masks, tag_joints}``,
    ``decode(out_q, out_h, ...) -> (poses (N, K, 3), scores (N,))``).

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

    target_keys = ("heatmaps", "masks", "tag_joints")

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

    @classmethod
    def spec_kwargs(cls, kwargs, *, num_keypoints, flip_index, input_size) -> dict[str, Any]:
        """The stored parameters with the description's K, flip pairs and input size."""
        return {**kwargs, "num_keypoints": int(num_keypoints), "flip_index": list(flip_index),
                "input_size": tuple(input_size)}  # fmt: skip

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
        q = as_chw(out_q, "out_q")
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
        with np.errstate(over="ignore"):
            scores = people[:, :, 2].mean(axis=1) if len(people) else np.zeros(0, np.float32)
        if not np.isfinite(scores).all():  # finite joint scores near float32's max: the sum
            scores = people[:, :, 2].mean(axis=1, dtype=np.float64)  # overflows, not the mean
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
