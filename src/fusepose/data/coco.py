"""COCO-format keypoint data: the index of an annotation file and the two datasets on it.

- :mod:`fusepose.data.coco_index`: :func:`load_coco_keypoints` -> :class:`CocoIndex`,
  :func:`load_detections`;
- :mod:`fusepose.data.bottom_up`: :class:`CocoBottomUpDataset` (whole images, HigherHRNet);
- :mod:`fusepose.data.top_down`: :class:`CocoTopDownDataset` (one person box per sample).

This module gathers their names under the import path they always had, and
:data:`COCO_DATASETS`: the COCO-format dataset of each model family.
"""

from fusepose.data.bottom_up import CocoBottomUpDataset, bottom_up_train_transforms
from fusepose.data.coco_index import (
    CocoIndex,
    PersonAnnotation,
    load_coco_keypoints,
    load_detections,
)
from fusepose.data.samples import to_tensors
from fusepose.data.top_down import CocoTopDownDataset, top_down_sample, top_down_train_transforms
from fusepose.family import BOTTOM_UP, TOP_DOWN

__all__ = [
    "COCO_DATASETS",
    "CocoBottomUpDataset",
    "CocoIndex",
    "CocoTopDownDataset",
    "PersonAnnotation",
    "bottom_up_train_transforms",
    "load_coco_keypoints",
    "load_detections",
    "to_tensors",
    "top_down_sample",
    "top_down_train_transforms",
]

# family -> dataset class; each takes (ann_file, image_dir, codec, geometry=..., ...)
COCO_DATASETS = {BOTTOM_UP: CocoBottomUpDataset, TOP_DOWN: CocoTopDownDataset}
