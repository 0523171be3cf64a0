"""Result objects returned by the Predictor and consumed by visualisation and evaluation.

Coordinates are original-image pixels in the COCO annotation frame (0-based, x right, y down).

A result draws and saves itself (:meth:`PoseResult.plot`, :meth:`PoseResult.save`) through
the drawing functions that :mod:`fusepose.visualization` registers here when it is imported
(:func:`register_drawing`), so this module imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# {"draw": draw(image, result, skeleton, **options) -> image, "save": save(path, image) -> Path}
_DRAWING: dict[str, Callable[..., Any]] = {}


def register_drawing(draw: Callable[..., np.ndarray], save: Callable[..., Path]) -> None:
    """Set the functions :meth:`PoseResult.plot` and :meth:`PoseResult.save` call
    (:mod:`fusepose.visualization.writer` registers OpenCV's on import)."""
    _DRAWING.update(draw=draw, save=save)


def _drawing(name: str) -> Callable[..., Any]:
    if name not in _DRAWING:
        raise RuntimeError(
            f"PoseResult.{'plot' if name == 'draw' else 'save'}: no drawing functions "
            "registered; import fusepose.visualization first"
        )
    return _DRAWING[name]


@dataclass
class PoseInstance:
    """One person.

    keypoints: (K, 2) float, original-image pixels.
    keypoint_scores: (K,) float in [0, 1] (heatmap peak values, not calibrated probabilities).
    score: instance score.
    box: (4,) float ``[x, y, w, h]`` in original-image pixels.
    track_id: the person's id across the frames of a video (:class:`fusepose.PoseTracker`),
        None when not tracked.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    score: float
    box: np.ndarray | None = None
    track_id: int | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(-1, 2)
        self.keypoint_scores = np.asarray(self.keypoint_scores, dtype=np.float64).reshape(-1)
        if len(self.keypoint_scores) != len(self.keypoints):
            raise ValueError(
                f"{len(self.keypoints)} keypoints but {len(self.keypoint_scores)} keypoint scores"
            )
        if self.box is None:
            self.box = box_from_keypoints(self.keypoints, self.keypoint_scores)
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
        self.score = float(self.score)
        if self.track_id is not None:
            self.track_id = int(self.track_id)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "keypoints": self.keypoints.tolist(),
            "keypoint_scores": self.keypoint_scores.tolist(),
            "score": self.score,
            "box": self.box.tolist(),
        }
        if self.track_id is not None:
            out["track_id"] = self.track_id
        return out


@dataclass
class PoseResult:
    """All people found in one image (or video frame)."""

    instances: list[PoseInstance] = field(default_factory=list)
    image_size: tuple[int, int] | None = None  # (H, W) of the original image
    image_id: int | None = None
    source: str | None = None  # path, or "frame:N" for video/webcam

    def __len__(self) -> int:
        return len(self.instances)

    def __iter__(self):
        return iter(self.instances)

    def to_coco(self, image_id: int | None = None, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results: one dict per person with ``keypoints`` as [x, y, score] * K
        (and ``track_id`` when the person is tracked)."""
        iid = self.image_id if image_id is None else image_id
        if iid is None:
            raise ValueError("to_coco() needs an image_id (none was attached to this result)")
        out = []
        for inst in self.instances:
            kpts = np.concatenate([inst.keypoints, inst.keypoint_scores[:, None]], axis=1)
            item = {
                "image_id": int(iid),
                "category_id": int(category_id),
                "keypoints": [round(float(v), 3) for v in kpts.reshape(-1)],
                "score": float(inst.score),
            }
            if inst.track_id is not None:
                item["track_id"] = inst.track_id
            out.append(item)
        return out

    def plot(self, image: np.ndarray, skeleton: Any, **options: Any) -> np.ndarray:
        """A copy of ``image`` ((H, W, 3) uint8 BGR, the frame these people were found in)
        with them drawn for ``skeleton`` (a :class:`~fusepose.skeletons.Skeleton`);
        ``options``: :func:`~fusepose.visualization.skeleton.draw_poses`' (``kpt_thr``,
        ``by_track``, ``draw_boxes``...)."""
        return _drawing("draw")(image, self, skeleton, **options)

    def save(self, path: str | Path, image: np.ndarray, skeleton: Any, **options: Any) -> Path:
        """Draw (:meth:`plot`) and write the drawing to ``path`` (format from the suffix)."""
        return _drawing("save")(path, self.plot(image, skeleton, **options))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "image_id": self.image_id,
            "image_size": list(self.image_size) if self.image_size else None,
            "instances": [i.to_dict() for i in self.instances],
        }


def box_from_keypoints(keypoints: np.ndarray, scores: np.ndarray, thr: float = 0.0) -> np.ndarray:
    """Tight ``[x, y, w, h]`` around keypoints with score > thr (all keypoints if none pass)."""
    pts = keypoints[scores > thr] if np.any(scores > thr) else keypoints
    if len(pts) == 0:
        return np.zeros(4)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float64)
