"""The INT8 study of ``fusepose perf``: quantized copies of exported networks, the keypoint
change they cause, and the COCO AP of a trained checkpoint in fp32 and INT8.

Every AP here comes from :func:`fusepose.inference.dataset.evaluate_dataset`, the loop that
training validation and ``fusepose eval`` use, with the checkpoint's own description (a
top-down model on the GT boxes). ``openvino_int8_nncf`` is the INT8 IR that NNCF's accuracy
control makes of the checkpoint (:func:`fusepose.inference.int8_export.quantize_ir`, cached in
the work folder: the first run takes minutes to an hour on 2 cores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusepose.benchmark.latency import default_image
from fusepose.cpu import unavailable_bf16
from fusepose.data.coco_index import load_coco_keypoints
from fusepose.errors import DataError
from fusepose.evaluation.compare import keypoint_change, results_by_image
from fusepose.export.cache import export_cached
from fusepose.export.metadata import read_metadata
from fusepose.export.openvino_runtime import openvino_unavailable
from fusepose.export.optimize import optimize_for_inference
from fusepose.export.package import default_dynamic, export_model
from fusepose.export.quantize import (
    calibration_inputs,
    default_reduce_range,
    int8_scope,
    quantize_int8,
)
from fusepose.inference.boxes import gt_boxes
from fusepose.inference.dataset import evaluate_dataset
from fusepose.inference.guard import guard_verdict
from fusepose.inference.int8_export import calibration_set, quantize_ir
from fusepose.inference.predictor import Predictor
from fusepose.modelfile import load_model

__all__ = ["int8_checkpoint_ap", "int8_model"]


def int8_model(fp32_path: Path, hw: tuple[int, int], calibration: int, seed: int = 0,
               scope: str = "auto") -> tuple[Path, dict]:  # fmt: skip
    """INT8 QDQ file next to ``fp32_path`` calibrated on the shared COCO images (+ synthetic
    ones up to ``calibration`` inputs). ``scope``: "auto" (the model's default) or "whole";
    weights 7-bit on CPUs without VNNI (:func:`~fusepose.export.quantize.default_reduce_range`)."""
    rr = default_reduce_range()
    tag = ("whole" if scope == "whole" else "") + ("_r7" if rr else "_r8")
    q_path = fp32_path.with_name(f"{fp32_path.stem}_int8{tag}.onnx")
    img = default_image()
    images = sorted(img.parent.glob("*.jpg")) if img is not None else []
    n_syn = max(calibration - len(images), 0)
    name_scope = None if scope == "whole" else int8_scope(read_metadata(fp32_path).get("model_name"))
    nodes = f"nodes under {name_scope}" if name_scope else "all ops but attention"
    calib = {"images": [p.name for p in images], "synthetic": n_syn, "method": "minmax",
             "format": f"QDQ u8 activations / s8 {7 if rr else 8}-bit per-channel weights, "
             f"{nodes}"}  # fmt: skip
    if not q_path.is_file():
        inputs = calibration_inputs(hw, images, num_synthetic=n_syn, seed=seed)
        quantize_int8(fp32_path, q_path, inputs, scope=scope, reduce_range=rr)
    return q_path, calib


def int8_checkpoint_ap(
    checkpoint: str | Path,
    ann_file: str | Path,
    workdir: str | Path,
    threads: int | None = None,
    nncf: bool = False,
) -> dict[str, Any]:
    """COCO AP of a trained checkpoint in eager fp32, ONNX fp32 (optimized) and ONNX INT8 on
    the images of ``ann_file`` (top-down: its GT boxes), plus the other paths of
    :func:`_extra_paths` and the decoded keypoint change of each against ONNX fp32.

    Everything runs with the checkpoint's description (its validation geometry and test
    settings); a letterboxed checkpoint is exported at its fixed shape, a short-side one with
    dynamic H, W. Calibration uses the same images, made into network inputs the same way.
    ``nncf``: add ``openvino_int8_nncf``, the INT8 IR of NNCF's accuracy control (needs a
    fixed-shape model; cached in ``workdir``)."""
    model, desc = load_model(checkpoint)
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
    rr = "_r7" if default_reduce_range() else "_r8"
    int8 = fp32.with_name(f"{fp32.stem}_int8{rr}.onnx")
    boxes = [gt_boxes(index, i)[0] for i in index.image_ids] if desc.family.needs_boxes else []
    calib = calibration_set(preds["onnx_fp32"], paths, num_synthetic=0, boxes=boxes)
    if not int8.is_file():
        quantize_int8(fp32, int8, calib)
    preds["onnx_int8"] = Predictor(int8, num_threads=threads)
    extra = _extra_paths(model, desc, fp32, int8, calib, threads=threads)
    if nncf:
        extra["openvino_int8_nncf"] = _nncf_ir(model, desc, fp32, ann_file, threads)
    preds.update({k: v for k, v in extra.items() if not isinstance(v, str)})
    out: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "input_size": list(desc.geometry.size),
        "resize": desc.geometry.mode,
        "int8_scope": int8_scope(desc.model) or "whole graph but attention",
        "unavailable": {k: v for k, v in extra.items() if isinstance(v, str)},
    }
    per_image: dict[str, Any] = {}
    for k, pred in preds.items():
        m = evaluate_dataset(pred, ann_file, ann_file.parent,
                             boxes="gt" if desc.family.needs_boxes else "auto")  # fmt: skip
        out[f"AP_{k}"] = round(float(m["AP"]), 4)
        per_image[k] = results_by_image(m["results"])
    # people matched once per image; over all joints: mean, max, and (the mean is dominated by
    # the few joints grouped into another person or moved to another peak) median, 90th
    # percentile and the share of joints moved by more than 10 px
    a = per_image["onnx_fp32"]
    guards: dict[str, Any] = {}
    for k in preds:
        if k == "onnx_fp32":
            continue
        b = per_image[k]
        change = keypoint_change([(a[iid], b[iid]) for iid in a if iid in b])
        passed, why = guard_verdict(change, out[f"AP_{k}"], out["AP_onnx_fp32"])
        guards[k] = {**change, "AP": out[f"AP_{k}"], "passed": passed, "why": why,
                     "emulated": k == "torch_bf16" and unavailable_bf16() is not None}  # fmt: skip
    out["paths"] = guards
    g = guards["onnx_int8"]
    out["int8_mean_px"] = g["mean_px"]
    out["int8_max_px"] = g["max_px"] if g["max_px"] is not None else 0.0
    out["joints"] = g["joints"]
    if g["joints"]:
        out["int8_median_px"] = g["median_px"]
        out["int8_p90_px"] = g["p90_px"]
        out["int8_share_over_10px"] = g["share_over_10px"]
    return out


def _nncf_ir(model: Any, desc: Any, fp32: Path, ann_file: Path,
             threads: int | None) -> Predictor | str:  # fmt: skip
    """A Predictor on the checkpoint's NNCF INT8 IR (made once into ``fp32``'s folder), or why
    there is none."""
    reason = openvino_unavailable("int8")
    if reason or default_dynamic(desc) is True:
        return reason or "NNCF INT8 IR: a dynamic-size (short-side) model; export it fixed"
    ir = fp32.with_name(f"{fp32.stem}_nncf.xml")
    if not ir.is_file():
        fp32_ir = fp32.with_suffix(".xml")
        if not fp32_ir.is_file():
            net = optimize_for_inference(model)
            net.info = model.info
            export_model(net, fp32_ir, desc.geometry.size, desc=desc, dynamic=default_dynamic(desc))
        quantize_ir(fp32_ir, ir, ann_file, ann_file.parent, threads=threads)
    return Predictor(ir, num_threads=threads)


def _extra_paths(model: Any, desc: Any, fp32: Path, int8: Path, calib: list[np.ndarray],
                 threads: int | None) -> dict[str, Any]:  # fmt: skip
    """Predictors of the other paths of the checkpoint (or the reason one is unavailable):
    ONNX INT8 over the whole graph, OpenVINO fp32 / bf16 / INT8 on the same files, PyTorch bf16
    (emulated on a CPU without bf16: its accuracy, not its speed)."""
    out: dict[str, Any] = {}
    whole = int8.with_name(int8.stem.replace("_int8", "_int8whole") + ".onnx")
    if int8_scope(desc.model) is not None:
        if not whole.is_file():
            quantize_int8(fp32, whole, calib, scope="whole")
        out["onnx_int8_whole"] = Predictor(whole, num_threads=threads)
        out["openvino_int8_whole"] = openvino_unavailable("int8") or Predictor(
            whole, backend="openvino", precision="int8", num_threads=threads)
    for prec, file in (("fp32", fp32), ("bf16", fp32), ("int8", int8)):
        reason = openvino_unavailable(prec)
        key = f"openvino_{prec}"
        out[key] = reason or Predictor(file, backend="openvino", precision=prec,
                                       num_threads=threads)  # fmt: skip
    out["torch_bf16"] = Predictor(model, description=desc, num_threads=threads, precision="bf16",
                                  emulate_bf16=True)  # fmt: skip
    return out
