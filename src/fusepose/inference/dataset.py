"""One way to run a model over a COCO-format dataset and score it.

:func:`predict_dataset` is what training validation, ``fusepose eval --model / --onnx``, the
perf / INT8 study and the demo call, so their numbers cannot drift apart: every image of the
annotation file, in file order; top-down person boxes by one policy (``boxes``):

- ``"gt"``: HRNet's GT-box protocol (:func:`fusepose.inference.boxes.gt_boxes`);
- ``"det"``: the Predictor's detection file (or its detector);
- ``"auto"``: ``det`` when the Predictor has a detection file or detector, else ``gt``.

The family pipeline rescores and applies the OKS-NMS of the model's description; every person
is kept (no score threshold), as the official protocols score them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.data.samples import check_image_size
from fusepose.errors import ConfigError, DataError
from fusepose.evaluation.coco import evaluate_coco
from fusepose.inference.boxes import gt_boxes
from fusepose.inference.sources import Frame
from fusepose.skeletons import COCO17

logger = logging.getLogger(__name__)

__all__ = ["BOX_POLICIES", "evaluate_dataset", "predict_dataset", "scoring_sigmas"]

BOX_POLICIES = ("auto", "gt", "det")


def _policy(predictor: Any, boxes: str) -> str | None:
    if boxes not in BOX_POLICIES:
        raise ConfigError(f"boxes {boxes!r}: use one of {BOX_POLICIES}")
    if not predictor.family.needs_boxes:
        if boxes == "gt":
            raise ConfigError(
                f"GT boxes: {predictor.model_name} is a bottom-up model (it finds people itself)"
            )
        return None
    has_det = predictor.detections is not None or predictor.detector is not None
    if boxes == "auto":
        return "det" if has_det else "gt"
    if boxes == "det" and not has_det:
        raise ConfigError(
            f"{predictor.model_name} is top-down: give a detection file, a detector, or GT boxes"
        )
    return boxes


def predict_dataset(
    predictor: Any,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    boxes: str = "auto",
    max_images: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """COCO keypoint results (original-image pixels) of ``predictor`` on every image of
    ``ann_file`` (the first ``max_images`` when > 0); each result also carries ``file_name``.

    Images are read as the ground truth frames them (EXIF orientation ignored). ``progress``
    is called with ``(done, total)`` after each image.
    """
    index = load_coco_keypoints(ann_file)
    policy = _policy(predictor, boxes)
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder not found")
    ids = index.image_ids[:max_images] if max_images else index.image_ids
    results: list[dict[str, Any]] = []
    resized: list[str] = []  # images not of their declared size: scored, but said so
    for n, iid in enumerate(ids, 1):
        name = str(index.images[iid]["file_name"])
        path = image_dir / name
        if not path.is_file():
            raise DataError(f"{path}: image id {iid} of {index.path} not found in {image_dir}")
        frame = Frame(read_image(path), str(path), n - 1, path)
        try:
            check_image_size(frame.image, index.images[iid], path, index.path)
        except DataError as e:
            resized.append(str(e))
        kw: dict[str, Any] = {}
        if policy == "gt":
            kw["boxes"], kw["box_scores"] = gt_boxes(index, iid)
        res = predictor.predict_frame(frame, image_id=iid, score_thr=0.0, **kw)
        for r in res.to_coco(iid):
            r["file_name"] = name
            results.append(r)
        if progress is not None:
            progress(n, len(ids))
    if resized:
        logger.warning("%d of %d images are not the size the ground truth declares, so its "
                       "keypoints may not fit them (first: %s)", len(resized), len(ids),
                       resized[0])  # fmt: skip
    logger.info("%s: %d people on %d images of %s", predictor.model_name, len(results),
                len(ids), Path(ann_file).name)  # fmt: skip
    return results


def evaluate_dataset(
    predictor: Any,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    boxes: str = "auto",
    max_images: int = 0,
    backend: str = "pycocotools",
    per_keypoint: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """COCO OKS AP/AR of ``predictor`` on ``ann_file`` (:func:`predict_dataset`, then
    :func:`fusepose.evaluation.evaluate_coco`); ``results`` holds the scored results."""
    results = predict_dataset(predictor, ann_file, image_dir, boxes=boxes,
                              max_images=max_images, progress=progress)  # fmt: skip
    gt = ann_file
    if max_images:
        gt = _subset(load_coco_keypoints(ann_file).path, max_images)
    metrics = evaluate_coco(gt, results, backend=backend, sigmas=scoring_sigmas(predictor.skeleton),
                            per_keypoint=per_keypoint)  # fmt: skip
    metrics["results"] = results
    return metrics


def scoring_sigmas(skeleton: Any) -> list[float] | None:
    """OKS sigmas to score a skeleton's results with: None for COCO-17 (the tools' own table,
    bit for bit), else the skeleton's."""
    return None if tuple(skeleton.sigmas) == COCO17.sigmas else list(skeleton.sigmas)


def _subset(ann_file: Path, n: int) -> dict[str, Any]:
    """The first ``n`` images of a COCO file and their annotations, as a dict."""
    import json

    data = json.loads(Path(ann_file).read_text())
    keep = [im["id"] for im in data["images"][:n]]
    ids = set(keep)
    return {**data, "images": data["images"][:n],
            "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}  # fmt: skip
