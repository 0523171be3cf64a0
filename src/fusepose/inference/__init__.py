"""Inference: the Predictor, its sources (image / folder / video / webcam), person boxes, the
one loop over a COCO-format dataset, the loop over many sources (one process or many), and
tracking (ids and smoothing across frames)."""

from fusepose.data.coco_index import load_detections
from fusepose.data.io import read_image
from fusepose.errors import SourceError
from fusepose.evaluation.nms import oks_nms
from fusepose.inference.boxes import DetectionBoxes, ImageIds
from fusepose.inference.dataset import evaluate_dataset, predict_dataset, run_dataset
from fusepose.inference.multi import predict_sources
from fusepose.inference.predictor import Predictor
from fusepose.inference.sources import Frame, iter_frames
from fusepose.inference.tracking import PoseTracker

__all__ = [
    "DetectionBoxes",
    "Frame",
    "ImageIds",
    "PoseTracker",
    "Predictor",
    "SourceError",
    "evaluate_dataset",
    "iter_frames",
    "load_detections",
    "oks_nms",
    "predict_dataset",
    "predict_sources",
    "read_image",
    "run_dataset",
]
