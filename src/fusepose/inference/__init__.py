"""Inference: the Predictor and its sources (image / folder / video / webcam)."""

from fusepose.inference.predictor import ImageIds, Predictor, load_detections, oks_nms
from fusepose.inference.sources import Frame, SourceError, iter_frames, read_image

__all__ = [
    "Frame",
    "ImageIds",
    "Predictor",
    "SourceError",
    "iter_frames",
    "load_detections",
    "oks_nms",
    "read_image",
]
