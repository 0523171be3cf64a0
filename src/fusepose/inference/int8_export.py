"""INT8 OpenVINO IR of a trained model with NNCF's accuracy control, judged by the guard.

:func:`quantize_ir` takes the fp32 IR of a trained model (``fusepose export --format openvino``)
and writes its INT8 IR:

1. the fp32 IR runs over the validation set through :func:`~fusepose.inference.dataset.
   evaluate_dataset` (the project's one evaluation loop): the reference AP and people;
2. calibration inputs: the calibration images (default: the validation images) and rendered
   synthetic people (:mod:`fusepose.data.synth`), made into network inputs by the model's own
   pipeline (top-down: one crop per person box);
3. ``nncf.quantize_with_accuracy_control`` (:func:`fusepose.export.nncf_int8.quantize_openvino`)
   with the metric :func:`guarded_ap`: a candidate's AP on the same loop, lowered below the
   allowed drop whenever its keypoints move more than the guard allows (median
   :data:`~fusepose.inference.guard.GUARD_MEDIAN_PX`, p90 :data:`~fusepose.inference.guard.
   GUARD_P90_PX`), so NNCF keeps reverting operations to float until the whole guard passes;
4. the INT8 IR is written with the fp32 file's metadata plus ``fusepose.int8`` (what NNCF
   did, what stayed in float, the AP before / after and the guard's verdict on the written
   file, run again through a fresh Predictor).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.data.synth import SynthConfig, render_image
from fusepose.errors import ConfigError, DataError
from fusepose.evaluation.compare import keypoint_change, results_by_image
from fusepose.export.ir import ir_op_types, is_ir, openvino_module, read_ir_props, write_ir
from fusepose.export.nncf_int8 import Int8Settings, quantize_openvino
from fusepose.export.openvino_runtime import OpenVinoRunner
from fusepose.files import json_safe
from fusepose.inference.boxes import gt_boxes, whole_image_box
from fusepose.inference.dataset import evaluate_dataset
from fusepose.inference.guard import GUARD_AP_DROP, GUARD_MEDIAN_PX, GUARD_P90_PX, guard_verdict
from fusepose.inference.predictor import Predictor
from fusepose.structures import PoseResult

logger = logging.getLogger(__name__)

__all__ = ["calibration_set", "guarded_ap", "quantize_ir"]


def guarded_ap(ap: float, change: dict[str, Any]) -> float:
    """The accuracy-control metric: ``ap`` when the keypoint change passes the guard's median
    and p90 limits, else ``ap`` minus more than the allowed drop (more the further the
    joints moved; -1 when nothing could be compared)."""
    if not change.get("joints"):
        return ap - 1.0
    excess = (max(change["median_px"] - GUARD_MEDIAN_PX, 0.0) / GUARD_MEDIAN_PX
              + max(change["p90_px"] - GUARD_P90_PX, 0.0) / GUARD_P90_PX)  # fmt: skip
    if excess == 0:
        return ap
    return ap - 2 * GUARD_AP_DROP - GUARD_AP_DROP * math.log1p(excess)


def _inputs(pred: Predictor, image: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
    """All network inputs of one image as one ``(N, 3, H, W)`` batch (top-down: its crops)."""
    if pred.pipeline.needs_boxes and (boxes is None or not len(boxes)):
        boxes = whole_image_box(image)
    prepared = pred.pipeline.prepare(image, boxes, None if boxes is None else np.ones(len(boxes)))
    return np.concatenate(prepared.batches)


def calibration_set(pred: Predictor, images: Sequence[Any], num_synthetic: int = 8,
                    seed: int = 0, boxes: Sequence[np.ndarray | None] = ()) -> list[np.ndarray]:  # fmt: skip
    """INT8 calibration inputs ``(1, 3, H, W)``: ``images`` (paths or BGR arrays; top-down:
    the crops of ``boxes[i]``, else the whole image) and ``num_synthetic`` rendered images of
    synthetic people (top-down: a crop per person), each made by ``pred``'s pipeline."""
    out: list[np.ndarray] = []
    for i, item in enumerate(images):
        img = item if isinstance(item, np.ndarray) else read_image(item)
        out += list(_inputs(pred, img, boxes[i] if i < len(boxes) else None)[:, None])
    rng = np.random.default_rng(seed)
    size = int(max(pred.description.geometry.size))
    for _ in range(num_synthetic):
        img, anns = render_image(rng, SynthConfig(size=max(size, 128), max_people=4))
        person_boxes = np.array(
            [_box(a["keypoints"]) for a in anns if (a["keypoints"][:, 2] > 0).sum() >= 2]
        )
        out += list(_inputs(pred, img, person_boxes if len(person_boxes) else None)[:, None])
    if not out:
        raise ConfigError("INT8 calibration needs at least one image")
    return out


def _box(kpts: np.ndarray) -> list[float]:
    """``[x, y, w, h]`` around the labelled joints (input of a synthetic person's crop)."""
    p = kpts[kpts[:, 2] > 0, :2]
    (x0, y0), (x1, y1) = p.min(0), p.max(0)
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


class _Validation:
    """The validation set, the fp32 reference's people on it, and the guarded metric of a
    compiled candidate (:func:`guarded_ap` through :func:`evaluate_dataset`)."""

    def __init__(self, fp32_ir: Path, ann_file: Path, image_dir: Path, threads: int | None):
        self.fp32_ir, self.ann, self.images = fp32_ir, ann_file, image_dir
        self.pred = Predictor(fp32_ir, backend="openvino", precision="fp32", num_threads=threads)
        self.boxes = "gt" if self.pred.description.family.needs_boxes else "auto"
        ref = evaluate_dataset(self.pred, ann_file, image_dir, boxes=self.boxes)
        self.ap_ref = float(ref["AP"])
        self.people = results_by_image(ref["results"])
        index = load_coco_keypoints(ann_file)
        self.ids = list(index.image_ids)
        self.paths = [image_dir / str(index.images[i]["file_name"]) for i in self.ids]
        self.gt = [gt_boxes(index, i)[0] for i in index.image_ids]
        self.inputs = [
            _inputs(self.pred, read_image(p), b) for p, b in zip(self.paths, self.gt, strict=True)
        ]

    def score(self, pred: Predictor, max_images: int = 0) -> tuple[float, dict[str, Any]]:
        """``(AP, keypoint change against fp32)`` of ``pred`` on the first ``max_images``."""
        m = evaluate_dataset(pred, self.ann, self.images, boxes=self.boxes, max_images=max_images)
        got = results_by_image(m["results"])
        ids = [i for i in self.ids[: max_images or None] if i in self.people]
        change = keypoint_change([(self.people[i], got.get(i, PoseResult([], image_id=i)))
                                  for i in ids])  # fmt: skip
        return float(m["AP"]), change

    def metric(self, compiled: Any, n: int) -> float:
        """:func:`guarded_ap` of a compiled candidate on the first ``n`` validation images."""
        self.pred.replace_network(OpenVinoRunner(self.fp32_ir, compiled=compiled))
        ap, change = self.score(self.pred, max_images=n)
        value = guarded_ap(ap, change)
        logger.info("candidate on %d images: AP %.4f, median %.2f px, p90 %.2f px -> %.4f", n, ap,
                    change.get("median_px") or 0.0, change.get("p90_px") or 0.0, value)  # fmt: skip
        return value


def quantize_ir(
    fp32_ir: str | Path,
    output: str | Path,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    calibration: Sequence[Any] | None = None,
    num_synthetic: int = 8,
    accuracy_control: bool = True,
    settings: Int8Settings | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Write the INT8 IR ``output`` of the trained model's fp32 IR ``fp32_ir`` (see the module
    docstring) and return its ``fusepose.int8`` report.

    ann_file / image_dir: the validation set (COCO format; a top-down model runs on its GT
    boxes). calibration: images (paths or BGR arrays), default the validation images (with
    their GT boxes for a top-down model); plus ``num_synthetic`` rendered ones.
    ``accuracy_control`` False: plain ``nncf.quantize`` (the report still holds the guard's
    verdict). settings: NNCF's options (:class:`~fusepose.export.nncf_int8.Int8Settings`).
    """
    fp32_ir, output = Path(fp32_ir), Path(output)
    if not is_ir(fp32_ir) or not is_ir(output):
        raise ConfigError(f"{output}: the INT8 IR is written from an fp32 IR, both FILE.xml")
    if "FakeQuantize" in ir_op_types(fp32_ir):
        raise ConfigError(f"{fp32_ir}: already quantized")
    ann_file, image_dir = Path(ann_file), Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: validation image folder not found")
    val = _Validation(fp32_ir, ann_file, image_dir, threads)
    if accuracy_control and not val.ap_ref > 0:
        raise ConfigError(f"{fp32_ir}: AP {val.ap_ref:.3f} on {ann_file.name}; accuracy control "
                          "needs a trained model that finds the people of its validation set")  # fmt: skip
    if calibration is None:
        calib = calibration_set(val.pred, val.paths, num_synthetic, boxes=val.gt)
    else:
        calib = calibration_set(val.pred, calibration, num_synthetic)
    settings = settings or Int8Settings(max_drop=GUARD_AP_DROP)
    model = openvino_module().Core().read_model(str(fp32_ir))
    quantized, report = quantize_openvino(
        model, calib, metric=val.metric if accuracy_control else None,
        validation=val.inputs, settings=settings,
    )  # fmt: skip
    info = report.to_dict()
    info.update(calibration={"images": [_name(c) for c in (calibration or val.paths)],
                             "synthetic": num_synthetic, "inputs": len(calib)},
                validation=str(ann_file))  # fmt: skip
    props = read_ir_props(fp32_ir)
    props["fusepose.int8"] = json.dumps(json_safe(info))
    write_ir(quantized, output, props)
    # the guard's verdict on the file as every verb will run it
    pred = Predictor(output, backend="openvino", num_threads=threads)
    ap, change = val.score(pred)
    passed, why = guard_verdict(change, ap, val.ap_ref)
    info["guard"] = {"AP": round(ap, 4), "AP_fp32": round(val.ap_ref, 4), "passed": passed,
                     "why": why, **{k: change.get(k) for k in ("median_px", "p90_px", "joints")}}  # fmt: skip
    props["fusepose.int8"] = json.dumps(json_safe(info))
    write_ir(quantized, output, props)
    logger.info("%s: %s; guard %s (%s)", output, report.summary(),
                "passed" if passed else "FAILED", why)  # fmt: skip
    return info


def _name(item: Any) -> str:
    return "<array>" if isinstance(item, np.ndarray) else Path(item).name
