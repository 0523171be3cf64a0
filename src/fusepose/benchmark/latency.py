"""End-to-end latency split into preprocess / network / decode, through the real Predictor.

``benchmark`` warms up, then runs every predictor on the same image, interleaved run by run
(so a slow-down of the shared machine hits all models alike), and reports the median and the
minimum of each stage in milliseconds.

Decode time of a bottom-up model depends on how many heatmap peaks pass the NMS and the
detection threshold: random weights give near-constant maps and an unrealistic decode. With
``gt_outputs=True`` the network still runs (and is timed), but its outputs are replaced,
outside the timed stages, by maps rendered from the image's ground-truth people (codec-encoded
heatmaps and ideal tags), so the decode sees a realistic number of peaks.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.data.synth import synthetic_image
from fusepose.progress import track

logger = logging.getLogger(__name__)

__all__ = ["LatencyResult", "benchmark", "default_image", "gt_people", "synthetic_image"]

STAGES = ("preprocess_ms", "network_ms", "decode_ms", "total_ms")


def default_image() -> Path | None:
    """The multi-person COCO image of the shared sample data, if present."""
    import os

    root = os.environ.get("FUSEPOSE_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    path = base / "mmpose_coco" / "000000196141.jpg"
    return path if path.is_file() else None


@dataclass
class LatencyResult:
    """Per-run timings of one predictor (ms) and their summary."""

    label: str
    runs: list[dict[str, float]] = field(default_factory=list)
    people: int = 0

    def median(self, stage: str) -> float:
        return float(statistics.median(r[stage] for r in self.runs))

    def min(self, stage: str) -> float:
        return float(min(r[stage] for r in self.runs))

    def summary(self) -> dict[str, Any]:
        """``preprocess_ms network_ms decode_ms total_ms`` medians, ``*_min`` minima."""
        out: dict[str, Any] = {s: round(self.median(s), 3) for s in STAGES}
        out.update({f"{s[:-3]}_min_ms": round(self.min(s), 3) for s in STAGES})
        out["runs"] = len(self.runs)
        out["people"] = self.people
        return out


def gt_people(image_path: str | Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    """GT keypoints (N, K, 3) and boxes (N, 4) of ``image_path`` from a COCO JSON beside it
    (``*.json`` with an ``images`` entry of that file name), or None."""
    if image_path is None:
        return None
    import json

    image_path = Path(image_path)
    for ann in sorted(image_path.parent.glob("*.json")):
        try:
            data = json.loads(ann.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            continue
        ids = [im["id"] for im in data["images"] if im.get("file_name") == image_path.name]
        if not ids:
            continue
        anns = [a for a in data["annotations"] if a["image_id"] == ids[0] and not a.get("iscrowd")]
        anns = [a for a in anns if a.get("num_keypoints", 0) > 0]
        if not anns:
            return None
        kpts = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float64)
        return kpts, boxes
    return None


def benchmark(
    predictors: Sequence[tuple[str, Any]],
    image: np.ndarray,
    boxes: np.ndarray | None = None,
    runs: int = 20,
    warmup: int = 3,
    progress: bool = False,
) -> list[LatencyResult]:
    """Time ``predictor.predict_frame(image)`` for each ``(label, predictor)``, interleaved.

    image: (H, W, 3) uint8 BGR. boxes: (N, 4) ``[x, y, w, h]`` person boxes for top-down
    predictors (bottom-up pipelines ignore them). A compiled predictor (``compiled`` True) compiles on
    its first call, so at least one warmup run is made whenever one is present. ``progress``:
    show the rounds (:class:`fusepose.progress.Progress`, between rounds, outside the timings).
    """
    if any(getattr(pred, "compiled", False) for _label, pred in predictors):
        warmup = max(warmup, 1)
    results = [LatencyResult(label) for label, _ in predictors]
    for i in track(range(warmup + runs), desc="timing", unit="rounds", enabled=progress):
        for res, (_label, pred) in zip(results, predictors, strict=True):
            out = pred.predict_frame(image, boxes=boxes)
            if i >= warmup:
                res.runs.append(dict(pred.timings))
                res.people = len(out)
    for res in results:
        logger.info("%s: %s", res.label, res.summary())
    return results
