"""Datasets (COCO-format, MPII), transforms and batching.

Submodules are imported on use; the names below are the public API.
"""

from fusepose.data.collate import collate
from fusepose.data.io import read_image, read_json

__all__ = [
    "COCO_DATASETS",
    "CocoBottomUpDataset",
    "CocoIndex",
    "CocoTopDownDataset",
    "MpiiDataset",
    "collate",
    "load_coco_keypoints",
    "load_mpii",
    "read_image",
    "read_json",
]

_LAZY = {
    "COCO_DATASETS": "fusepose.data.coco",
    "CocoBottomUpDataset": "fusepose.data.bottom_up",
    "CocoIndex": "fusepose.data.coco_index",
    "CocoTopDownDataset": "fusepose.data.top_down",
    "load_coco_keypoints": "fusepose.data.coco_index",
    "MpiiDataset": "fusepose.data.mpii",
    "load_mpii": "fusepose.data.mpii",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fusepose.data' has no attribute {name!r}")
