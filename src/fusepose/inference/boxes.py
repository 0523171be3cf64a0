"""Where top-down person boxes come from, and which image id a result gets.

- :class:`DetectionBoxes`: a COCO detection results file (``bbox``, ``score``), looked up by
  image id or file name;
- :func:`boxes_from_people`: the people of a bottom-up "detector" run, as tight boxes;
- :func:`gt_boxes`: the ground-truth boxes of a COCO-format image (HRNet's GT-box protocol);
- :class:`ImageIds`: image ids of results, from a COCO JSON, numeric file names or a counter.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.data.coco_index import CocoIndex, load_detections
from fusepose.data.io import read_json
from fusepose.errors import DataError
from fusepose.inference.sources import Frame
from fusepose.structures import PoseResult, box_from_keypoints

logger = logging.getLogger(__name__)

__all__ = ["DetectionBoxes", "ImageIds", "boxes_from_people", "gt_boxes", "whole_image_box"]


def whole_image_box(image: np.ndarray) -> np.ndarray:
    """``(1, 4)``: one ``[x, y, w, h]`` box over the whole image (original pixels)."""
    h, w = image.shape[:2]
    return np.array([[0.0, 0.0, w - 1.0, h - 1.0]])


class DetectionBoxes:
    """Person boxes of a COCO detection file, keyed by image id and by file name.

    Entries need ``bbox`` ``[x, y, w, h]`` (original pixels) and ``image_id`` and / or
    ``file_name`` (``image_name``); ``score`` defaults to 1; only ``category_id == 1`` (when
    given) and ``score >= thr`` are kept (:func:`fusepose.data.coco.load_detections`).
    """

    def __init__(self, det_file: str | Path, thr: float = 0.0) -> None:
        self.path = Path(det_file)
        self.by_key: dict[Any, list[tuple[np.ndarray, float]]] = {}
        for d in load_detections(self.path, score_thr=thr):
            box = (np.asarray(d["bbox"], dtype=np.float64), float(d.get("score", 1.0)))
            for key in ("image_id", "file_name", "image_name"):
                if key in d:
                    self.by_key.setdefault(d[key], []).append(box)

    def __call__(self, frame: Frame, image_id: int | None) -> tuple[np.ndarray, np.ndarray]:
        keys: list[Any] = [image_id]
        if frame.path is not None:
            keys += [frame.path.name, str(frame.path)]
            if frame.path.stem.isdigit():
                keys.append(int(frame.path.stem))
        for key in keys:
            if key is not None and key in self.by_key:
                dets = self.by_key[key]
                return np.stack([d[0] for d in dets]), np.array([d[1] for d in dets])
        logger.info("%s: no detections in %s", frame.name, self.path)
        return np.zeros((0, 4)), np.zeros(0)


# A box around a person's joints is smaller than the person (no head top, no feet, no hands):
# on the COCO samples the GT boxes are a median 1.26 x (width) and 1.21 x (height) the extent of
# the labelled keypoints. Detector boxes made from joints are grown by this factor so a
# top-down model sees crops like the GT boxes it was trained on.
KEYPOINT_BOX_PADDING = 1.2


def boxes_from_people(
    result: PoseResult, kpt_thr: float = 0.1, padding: float = KEYPOINT_BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes around each person's joints scored above ``kpt_thr``, grown ``padding`` times
    about their centre and clipped to the image; the person scores become the box scores.
    Boxes of 1 px or less are dropped."""
    h, w = result.image_size or (np.inf, np.inf)
    boxes, scores = [], []
    for inst in result.instances:
        b = box_from_keypoints(inst.keypoints, inst.keypoint_scores, thr=kpt_thr)
        centre, size = b[:2] + b[2:] / 2, b[2:] * padding
        x0, y0 = np.clip(centre - size / 2, 0, [w - 1, h - 1])
        x1, y1 = np.clip(centre + size / 2, 0, [w - 1, h - 1])
        if x1 - x0 > 1 and y1 - y0 > 1:
            boxes.append([x0, y0, x1 - x0, y1 - y0])
            scores.append(inst.score)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, np.float64)


def gt_boxes(index: CocoIndex, image_id: Any) -> tuple[np.ndarray, np.ndarray]:
    """HRNet's GT-box protocol: the boxes of the image's non-crowd people with at least one
    labelled keypoint and a box larger than 1 px, each scored 1."""
    anns = [
        a for a in index.annotations[image_id]
        if not a.iscrowd and a.num_labelled > 0 and a.bbox[2] > 1 and a.bbox[3] > 1
    ]  # fmt: skip
    boxes = np.asarray([a.bbox for a in anns], dtype=np.float64).reshape(-1, 4)
    return boxes, np.ones(len(boxes))


class ImageIds:
    """Image ids for results: from a COCO JSON (file name -> id), else numeric file names
    (``000000196141.jpg`` -> 196141), else sequential from 0.

    With a COCO JSON, a file it does not list is an error (ids must not be made up for files
    the ground truth does not know)."""

    def __init__(self, ann_file: str | Path | None = None) -> None:
        self.by_name: dict[str, int] = {}
        self.next_id = 0
        self.path = Path(ann_file) if ann_file is not None else None
        if self.path is not None:
            data = read_json(self.path)
            images = data.get("images") if isinstance(data, dict) else None
            if not isinstance(images, list):
                raise DataError(f"{self.path}: no 'images' list (not a COCO annotation file)")
            for i, img in enumerate(images):
                if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
                    raise DataError(f"{self.path}: images[{i}] needs 'id' and 'file_name'")
                self.by_name[Path(str(img["file_name"])).name] = int(img["id"])

    def check(self, paths: list[Path]) -> None:
        """With a COCO JSON: every file must be listed (checked before any work)."""
        if self.path is None:
            return
        missing = [p.name for p in paths if p.name not in self.by_name]
        if missing:
            raise DataError(
                f"{self.path}: does not list {len(missing)} of the {len(paths)} images "
                f"(e.g. {missing[0]}): no image id for them"
            )

    def fixed(self, frame: Frame) -> int | None:
        """The id the frame's file name gives (the COCO JSON, else a numeric name), or None
        where the id is sequential (known only in frame order)."""
        if frame.path is not None:
            name = frame.path.name
            if name in self.by_name:
                return self.by_name[name]
            if self.path is not None:
                raise DataError(f"{frame.path}: not listed in {self.path} (no image id for it)")
            if re.fullmatch(r"\d+", frame.path.stem):
                return int(frame.path.stem)
        return None

    def __call__(self, frame: Frame) -> int:
        iid = self.fixed(frame)
        if iid is not None:
            return iid
        iid = self.next_id
        self.next_id += 1
        return iid
