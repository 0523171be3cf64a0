"""The INT8 study of ``fusepose perf``: quantized copies of exported networks, the keypoint
change they cause, and the COCO AP of a trained checkpoint in fp32 and INT8.

Every AP here comes from :func:`fusepose.inference.dataset.evaluate_dataset`, the loop that
training validation and ``fusepose eval`` use, with the checkpoint's own description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusepose.benchmark.latency import default_image
from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.errors import ConfigError, DataError
from fusepose.evaluation.compare import (
    match_keypoint_error,
    matched_keypoint_distances,
    results_by_image,
)
from fusepose.export.cache import export_cached
from fusepose.export.metadata import read_metadata
from fusepose.export.package import default_dynamic
from fusepose.export.quantize import calibration_inputs, int8_scope, quantize_int8
from fusepose.geometry import warp_image
from fusepose.inference.boxes import whole_image_box
from fusepose.inference.dataset import evaluate_dataset
from fusepose.inference.predictor import Predictor
from fusepose.modelfile import load_model

__all__ = ["int8_checkpoint_ap", "int8_keypoint_change", "int8_model"]


def int8_model(fp32_path: Path, hw: tuple[int, int], calibration: int, seed: int = 0
               ) -> tuple[Path, dict]:  # fmt: skip
    """INT8 QDQ file next to ``fp32_path`` calibrated on the shared COCO images (+ synthetic
    ones up to ``calibration`` inputs)."""
    q_path = fp32_path.with_name(fp32_path.stem + "_int8.onnx")
    img = default_image()
    images = sorted(img.parent.glob("*.jpg")) if img is not None else []
    n_syn = max(calibration - len(images), 0)
    scope = int8_scope(read_metadata(fp32_path).get("model_name"))
    nodes = f"nodes under {scope}" if scope else "all ops but attention"
    calib = {"images": [p.name for p in images], "synthetic": n_syn, "method": "minmax",
             "format": f"QDQ u8 activations / s8 7-bit per-channel weights, {nodes}"}  # fmt: skip
    if not q_path.is_file():
        inputs = calibration_inputs(hw, images, num_synthetic=n_syn, seed=seed)
        quantize_int8(fp32_path, q_path, inputs)
    return q_path, calib


def int8_keypoint_change(fp32: Predictor, int8: Predictor, weights: str) -> dict[str, Any]:
    """Decoded keypoints of the INT8 predictor against the fp32 one on the shared COCO images
    (network outputs, no GT rendering), plus the max relative change of the raw outputs."""
    img = default_image()
    paths = sorted(img.parent.glob("*.jpg")) if img is not None else []
    hw = fp32.geometry.size
    per_image, dists, joints = [], [], 0
    out_diff = 0.0
    x = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
    for p in paths:
        im = read_image(p)
        boxes = whole_image_box(im)
        ra = fp32.predict_frame(im, boxes=boxes, score_thr=0.0)
        rb = int8.predict_frame(im, boxes=boxes, score_thr=0.0)
        err = match_keypoint_error(ra, rb)
        per_image.append({"image": p.name, **err})
        if err["joints"]:
            dists.append(err["mean_px"] * err["joints"])
            joints += err["joints"]
    if fp32.runner is not None and int8.runner is not None:
        ya, yb = fp32.runner(x), int8.runner(x)
        scale = max(float(np.abs(ya[0]).max()), 1e-12)
        out_diff = max(float(np.abs(u - v).max()) for u, v in zip(ya, yb, strict=True)) / scale
    return {
        "weights": weights,
        "mean_px": round(sum(dists) / joints, 3) if joints else None,
        "joints": joints,
        "per_image": per_image,
        "max_rel_output_change": round(out_diff, 5),
    }


def int8_checkpoint_ap(
    checkpoint: str | Path,
    ann_file: str | Path,
    workdir: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """COCO AP of a trained bottom-up checkpoint in eager fp32, ONNX fp32 (optimized) and ONNX
    INT8 on the images of ``ann_file``, plus the decoded keypoint change INT8 vs fp32.

    Everything runs with the checkpoint's description (its validation geometry and test
    settings); a letterboxed checkpoint is exported at its fixed shape, a short-side one with
    dynamic H, W. Calibration uses the same images, warped the same way."""
    model, desc = load_model(checkpoint)
    if desc.kind != "bottom_up":
        raise ConfigError(f"{checkpoint}: --int8-checkpoint supports bottom-up models only")
    ann_file = Path(ann_file)
    index = load_coco_keypoints(ann_file)
    paths = [ann_file.parent / str(index.images[i]["file_name"]) for i in index.image_ids]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{ann_file}: images not found beside it: {missing[:3]}")
    workdir = Path(workdir)
    fp32 = export_cached(model, f"{desc.model}_ckpt", desc.geometry.size, workdir, "opt",
                         desc=desc, dynamic=default_dynamic(desc))  # fmt: skip
    preds = {
        "torch_fp32": Predictor(model, description=desc, num_threads=threads),
        "onnx_fp32": Predictor(fp32, num_threads=threads),
    }
    int8 = fp32.with_name(fp32.stem + "_int8.onnx")
    if not int8.is_file():
        calib = []
        for p in paths:
            img = read_image(p)
            m, size = preds["onnx_fp32"].warp_matrix(img.shape[:2])
            calib.append(warp_image(img, m, size)[None])
        quantize_int8(fp32, int8, calib)
    preds["onnx_int8"] = Predictor(int8, num_threads=threads)
    out: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "input_size": list(desc.geometry.size),
        "resize": desc.geometry.mode,
        "int8_scope": int8_scope(desc.model) or "whole graph but attention",
    }
    per_image: dict[str, Any] = {}
    for k, pred in preds.items():
        m = evaluate_dataset(pred, ann_file, ann_file.parent)
        out[f"AP_{k}"] = round(float(m["AP"]), 4)
        per_image[k] = results_by_image(m["results"])
    # people matched once per image; over all joints: mean, max, and (the mean is dominated by
    # the few joints grouped into another person or moved to another peak) median, 90th
    # percentile and the share of joints moved by more than 10 px
    a, b = per_image["onnx_fp32"], per_image["onnx_int8"]
    dists = np.asarray([d for iid in a if iid in b
                        for d in matched_keypoint_distances(a[iid], b[iid])[0]])  # fmt: skip
    out["int8_mean_px"] = round(float(dists.mean()), 3) if dists.size else None
    out["int8_max_px"] = round(float(dists.max()), 3) if dists.size else 0.0
    out["joints"] = int(dists.size)
    if dists.size:
        out["int8_median_px"] = round(float(np.median(dists)), 3)
        out["int8_p90_px"] = round(float(np.percentile(dists, 90)), 3)
        out["int8_share_over_10px"] = round(float(np.mean(dists > 10.0)), 4)
    return out
