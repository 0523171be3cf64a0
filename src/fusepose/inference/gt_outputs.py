"""Network outputs rendered from ground truth, for a Predictor's ``output_hook``.

A perfect network would output, for the *warped* input it was given, the codec-encoded
heatmaps of the people in it (and, bottom-up, tag maps constant per person). Rendering those
from original-image ground truth and the Predictor's own affine lets the preprocess, decode
and inverse mapping be checked end to end without a trained model, and gives the bottom-up
decoder a realistic number of peaks when timing it with random weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.data.transforms import affine_points
from fusepose.errors import ConfigError
from fusepose.evaluation.coco import evaluate_coco
from fusepose.family import BOTTOM_UP, TOP_DOWN


def _flip_keypoints(kp: np.ndarray, width: int, flip_index: Sequence[int]) -> np.ndarray:
    """Keypoints (N, K, 3) of an input mirrored about x -> width - 1 - x, joints permuted."""
    out = kp[:, list(flip_index)].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


def bottom_up_gt_hook(predictor, keypoints: np.ndarray):
    """``output_hook`` replacing bottom-up outputs by ideal ones for ``keypoints``.

    keypoints: (N, K, 3) ``[x, y, v]`` original-image pixels (v > 0 = labelled).
    The hook receives the network outputs ``[out_q (B, 2K, h, w), out_h (B, K, 2h, 2w)]`` of one
    scale (B = 2 with flip: original then mirrored input) and that scale's affine.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    codec = predictor.codec

    def hook(outputs: list[np.ndarray], matrices: list[np.ndarray]) -> list[np.ndarray]:
        out_q = outputs[0]
        stride = codec.strides[0]
        size = (out_q.shape[2] * stride, out_q.shape[3] * stride)
        kp_in = affine_points(kp, matrices[0])
        qs, hs = [], []
        for b in range(out_q.shape[0]):
            pts = kp_in if b == 0 else _flip_keypoints(kp_in, size[1], predictor.flip_index)
            q, h = codec.ideal_outputs(pts, input_size=size)
            qs.append(q)
            hs.append(h)
        return [np.stack(qs).astype(np.float32), np.stack(hs).astype(np.float32)]

    return hook


def top_down_gt_hook(predictor, boxes: np.ndarray, keypoints: np.ndarray):
    """``output_hook`` replacing top-down heatmaps of each crop by the encoded GT person.

    boxes: (N, 4) ``[x, y, w, h]`` and keypoints (N, K, 3): the person of each box, original
    pixels, in the order the boxes are given to the Predictor.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    mats = [predictor.crop_matrix(b) for b in np.asarray(boxes, dtype=np.float64)]
    codec = predictor.codec

    def person_of(m: np.ndarray) -> int:
        for i, ref in enumerate(mats):
            if np.allclose(ref, m):
                return i
        raise KeyError("crop matrix of an unknown box")

    def hook(outputs: list[np.ndarray], matrices: list[np.ndarray]) -> list[np.ndarray]:
        out = outputs[0]
        n = len(matrices)
        width = codec.input_size[1]
        hms = []
        for b in range(out.shape[0]):
            m = matrices[b % n]
            pts = affine_points(kp[person_of(m)], m)[None]
            if b >= n:
                pts = _flip_keypoints(pts, width, predictor.flip_index)
            hms.append(codec.ideal_outputs(pts[0])[0][0])
        return [np.stack(hms).astype(np.float32)]

    return hook


def gt_hook(predictor, keypoints: np.ndarray, boxes: np.ndarray | None = None):
    """The ``output_hook`` of the predictor's family: :func:`bottom_up_gt_hook` (``boxes``
    unused) or :func:`top_down_gt_hook` (``boxes`` (N, 4): one per person of ``keypoints``)."""
    return _GT_HOOKS[predictor.family](predictor, keypoints, boxes)


_GT_HOOKS = {
    BOTTOM_UP: lambda predictor, keypoints, _boxes: bottom_up_gt_hook(predictor, keypoints),
    TOP_DOWN: lambda predictor, keypoints, boxes: top_down_gt_hook(predictor, boxes, keypoints),
}

ORACLE_PARTS = ("none", "tags", "heatmaps", "both")


def oracle_ap(predictor, ann_file, image_dir, replace: str = "both", backend: str = "faster"):
    """COCO AP of a bottom-up ``predictor`` on a COCO-format set with part of its outputs
    replaced by the ideal ones for each image's ground truth: where a model's AP goes.

    ``replace``: ``"none"`` (the network alone), ``"tags"`` (ideal tags, the network's
    heatmaps: what perfect grouping would give), ``"heatmaps"`` (ideal heatmaps, the network's
    tags), ``"both"`` (the decoder's ceiling on this set). Every person is scored (score
    threshold 0), as in evaluation. Returns :func:`fusepose.evaluation.evaluate_coco`'s stats.
    """
    if replace not in ORACLE_PARTS:
        raise ConfigError(f"replace={replace!r}: choose from {', '.join(ORACLE_PARTS)}")
    if not predictor.description.family.tags:
        raise ConfigError(f"{predictor.description.model}: oracle_ap needs a bottom-up model")
    k = predictor.description.num_keypoints
    idx = load_coco_keypoints(ann_file)
    results: list[dict] = []
    saved = predictor.output_hook
    try:
        for iid in idx.image_ids:
            people = [a.keypoints for a in idx.annotations[iid] if not a.iscrowd]
            ideal = bottom_up_gt_hook(predictor, np.stack(people) if people else
                                      np.zeros((0, k, 3)))  # fmt: skip

            def mixed(outputs, matrices, ideal=ideal):
                q, h = ideal(outputs, matrices)
                out_q = outputs[0].copy()
                if replace == "tags":
                    out_q[:, k:] = q[:, k:]
                    return [out_q, outputs[1]]
                out_q[:, :k] = q[:, :k]  # heatmaps: the network's tags kept
                return [out_q, h]

            hooks = {"none": None, "both": ideal}
            predictor.output_hook = hooks.get(replace, mixed)
            img = read_image(Path(image_dir) / idx.images[iid]["file_name"])
            results += predictor.predict_frame(img, image_id=iid, score_thr=0.0).to_coco(iid)
    finally:
        predictor.output_hook = saved
    return evaluate_coco(str(ann_file), results, backend=backend, per_keypoint=False)
