"""Evaluation of results files: COCO OKS AP/AR (pycocotools / faster-coco-eval), MPII PCKh,
OKS-NMS. Takes prediction dicts or arrays; never imports ``fusepose.models``."""

from fusepose.evaluation.coco import (
    COCO_KEYS,
    CROWD_KEYS,
    bootstrap_ap,
    evaluate_coco,
    per_keypoint_summary,
)
from fusepose.evaluation.nms import oks_iou, oks_nms, rescore_topdown, topdown_postprocess
from fusepose.evaluation.pckh import (
    PCKH_KEYS,
    MpiiGT,
    evaluate_pckh,
    load_mpii_gt,
    load_pckh_predictions,
)
from fusepose.evaluation.results import load_results, validate_results, write_results

__all__ = [
    "COCO_KEYS",
    "CROWD_KEYS",
    "PCKH_KEYS",
    "MpiiGT",
    "bootstrap_ap",
    "evaluate_coco",
    "evaluate_pckh",
    "load_mpii_gt",
    "load_pckh_predictions",
    "load_results",
    "oks_iou",
    "oks_nms",
    "per_keypoint_summary",
    "rescore_topdown",
    "topdown_postprocess",
    "validate_results",
    "write_results",
]
