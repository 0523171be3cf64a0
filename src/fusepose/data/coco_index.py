"""COCO-format annotations under the data package's import path: the validator itself lives in
:mod:`fusepose.annotations` (below evaluation, which validates ground truth with it too)."""

from fusepose.annotations import CocoIndex, PersonAnnotation, load_coco_keypoints, load_detections

__all__ = ["CocoIndex", "PersonAnnotation", "load_coco_keypoints", "load_detections"]
