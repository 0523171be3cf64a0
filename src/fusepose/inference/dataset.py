"""One way to run a model over a COCO-format dataset and score it.

:func:`predict_dataset` is what training validation, ``fusepose eval --model / --onnx``, the
perf / INT8 study and the demo call, so their numbers cannot drift apart: every image of the
annotation file, in file order; top-down person boxes by one policy (``boxes``):

- ``"gt"``: HRNet's GT-box protocol (:func:`fusepose.inference.boxes.gt_boxes`);
- ``"det"``: the Predictor's detection file (or its detector);
- ``"auto"``: ``det`` when the Predictor has a detection file or detector, else ``gt``.

The family pipeline rescores and applies the OKS-NMS of the model's description; every person
is kept (no score threshold), as the official protocols score them.

Many processes (torchrun, or any initialised ``torch.distributed`` group): every rank calls the
loop with the same arguments; the images are sharded (rank r takes images r, r + W, ...: each
exactly once, no padding), the results gathered into the one-process order on every rank, and
:func:`evaluate_dataset` scores them once, on rank 0, and gives every rank the same metrics.
``workers`` threads read and prepare images ahead of the network in either case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.data.samples import check_image_size
from fusepose.distributed import all_gather_checked, get_rank, get_world_size, merge_in_order, shard
from fusepose.errors import ConfigError, DataError
from fusepose.evaluation.coco import evaluate_coco
from fusepose.inference.boxes import gt_boxes
from fusepose.inference.sources import Frame, prefetch
from fusepose.skeletons import COCO17

logger = logging.getLogger(__name__)

__all__ = ["BOX_POLICIES", "DatasetRun", "evaluate_dataset", "predict_dataset", "run_dataset",
           "scoring_sigmas"]  # fmt: skip

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


@dataclass
class DatasetRun:
    """What :func:`run_dataset` produced.

    results: COCO keypoint results (original-image pixels, each with ``file_name``) of every
    image, in the one-process order (annotation-file order, people best first), on every rank.
    images_per_rank: how many images each rank predicted (``[n]`` in one process).
    """

    results: list[dict[str, Any]]
    images_per_rank: list[int]

    @property
    def world_size(self) -> int:
        return len(self.images_per_rank)


def run_dataset(
    predictor: Any,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    boxes: str = "auto",
    max_images: int = 0,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 0,
) -> DatasetRun:
    """Run ``predictor`` on every image of ``ann_file`` (the first ``max_images`` when > 0).

    Images are read as the ground truth frames them (EXIF orientation ignored). ``workers``
    > 0: that many threads read and prepare images ahead of the network (the same results).
    ``progress`` is called with ``(done, total)`` after each image of this process.

    In a process group (:func:`fusepose.distributed.init_distributed`, e.g. under torchrun),
    every rank calls this with the same arguments: rank r predicts images ``r, r + W, ...``
    (:func:`fusepose.distributed.shard`), and the results of all ranks are gathered and put
    in the one-process order on every rank. Files are checked on every rank before any work;
    an error on one rank is raised on all of them.
    """
    index = load_coco_keypoints(ann_file)
    policy = _policy(predictor, boxes)
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder not found")
    ids = index.image_ids[:max_images] if max_images else index.image_ids
    paths = [image_dir / str(index.images[iid]["file_name"]) for iid in ids]
    for iid, path in zip(ids, paths, strict=True):
        if not path.is_file():
            raise DataError(f"{path}: image id {iid} of {index.path} not found in {image_dir}")
    rank, world = get_rank(), get_world_size()
    mine = list(shard(len(ids), rank, world))
    # boxes from the GT or a detection file are known before the network: prepare ahead too
    ahead = not predictor.boxes_need_network or policy == "gt"

    resized: list[str] = []  # images not of their declared size: scored, but said so

    def load(pos: int) -> Any:
        iid, path = ids[pos], paths[pos]
        frame = Frame(read_image(path), str(path), pos, path)
        try:
            check_image_size(frame.image, index.images[iid], path, index.path)
        except DataError as e:
            resized.append(str(e))
        kw: dict[str, Any] = {}
        if policy == "gt":
            kw["boxes"], kw["box_scores"] = gt_boxes(index, iid)
        return predictor.prepare_frame(frame, image_id=iid, **kw) if ahead else (frame, kw)

    local: list[tuple[int, list[dict[str, Any]]]] = []
    error: Exception | None = None
    try:
        for n, (pos, item) in enumerate(prefetch(mine, load, workers), 1):
            inp = item if ahead else predictor.prepare_frame(item[0], image_id=ids[pos], **item[1])
            res = predictor.predict_prepared(inp, score_thr=0.0)
            name = paths[pos].name
            local.append((pos, [{**r, "file_name": name} for r in res.to_coco(ids[pos])]))
            if progress is not None:
                progress(n, len(mine))
    except Exception as e:  # noqa: BLE001 - raised below, on every rank at once
        if world == 1:
            raise
        error = e
    if resized:
        logger.warning("%d of %d images are not the size the ground truth declares, so its "
                       "keypoints may not fit them (first: %s)", len(resized), len(mine),
                       resized[0])  # fmt: skip
    if world > 1:
        logger.info("rank %d/%d: %d images predicted", rank, world, len(local))
    parts = all_gather_checked(local, error)
    results = [r for records in merge_in_order(parts) for r in records]
    run = DatasetRun(results, [len(p) for p in parts])
    logger.info("%s: %d people on %d images of %s%s", predictor.model_name, len(results),
                len(ids), Path(ann_file).name,
                f" (images per rank {run.images_per_rank})" if world > 1 else "")  # fmt: skip
    return run


def predict_dataset(
    predictor: Any, ann_file: str | Path, image_dir: str | Path, **options: Any
) -> list[dict[str, Any]]:
    """COCO keypoint results (original-image pixels) of ``predictor`` on every image of
    ``ann_file``, each with ``file_name``: :func:`run_dataset`'s results (its ``options``:
    ``boxes``, ``max_images``, ``progress``, ``workers``; sharded in a process group)."""
    return run_dataset(predictor, ann_file, image_dir, **options).results


def evaluate_dataset(
    predictor: Any,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    backend: str = "pycocotools",
    per_keypoint: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """COCO OKS AP/AR of ``predictor`` on ``ann_file`` (:func:`run_dataset` with ``options``:
    ``boxes``, ``max_images``, ``progress``, ``workers``; then
    :func:`fusepose.evaluation.evaluate_coco`); ``results`` holds the scored results,
    ``world_size`` and ``images_per_rank`` how the images were split.

    In a process group the results are scored once, on rank 0, and every rank returns the
    same metrics."""
    run = run_dataset(predictor, ann_file, image_dir, **options)
    max_images = int(options.get("max_images", 0))
    metrics: dict[str, Any] | None = None
    error: Exception | None = None
    if get_rank() == 0:
        try:
            gt: Any = ann_file
            if max_images:
                gt = _subset(load_coco_keypoints(ann_file).path, max_images)
            metrics = evaluate_coco(gt, run.results, backend=backend,
                                    sigmas=scoring_sigmas(predictor.skeleton),
                                    per_keypoint=per_keypoint)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - raised on every rank below
            if get_world_size() == 1:
                raise
            error = e
    metrics = all_gather_checked(metrics, error)[0]  # rank 0's, on every rank
    return {**metrics, "results": run.results, "world_size": run.world_size,
            "images_per_rank": run.images_per_rank}  # fmt: skip


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
