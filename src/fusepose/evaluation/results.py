"""COCO-format keypoint results: load, validate against the ground truth, write.

A result is one dict per detected person::

    {"image_id": int, "category_id": int, "keypoints": [x1, y1, s1, ..., xK, yK, sK], "score": float}

with ``keypoints`` a flat list of ``3 * K`` numbers in original-image pixels (COCO annotation
frame, 0-based). Extra keys (``bbox``, ``center``, ``scale``...) are allowed and passed through;
note that pycocotools takes a result's area from its ``bbox`` when one is present and from the
keypoints' extent otherwise.

Validation runs before any metric so a malformed file fails with one readable
:class:`~fusepose.errors.ResultsError` instead of a KeyError deep inside pycocotools.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.annotations import load_coco_keypoints
from fusepose.errors import DataError, ResultsError
from fusepose.files import write_json_atomic

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("image_id", "category_id", "keypoints", "score")
# Stop listing problems after this many entries: the first few are enough to fix a file.
_MAX_REPORTED = 5


def load_gt(gt: str | os.PathLike | dict) -> tuple[dict, str]:
    """Read a COCO-format ground-truth file (or accept a dict). Returns ``(dataset, name)``.

    Validated as strictly as training reads it (:func:`fusepose.annotations.load_coco_keypoints`:
    finite numbers, positive box sizes, non-negative areas, unique image and annotation ids,
    annotations of known images), plus what the COCO tools need (``categories``, a
    ``category_id`` per annotation) and at least one person with labelled keypoints (AP is
    undefined otherwise). ``name`` is the path (or ``"<gt dict>"``) used in error messages.
    """
    if isinstance(gt, dict):
        name = "<gt dict>"
        data = load_coco_keypoints(gt, source=name).data
    else:
        name = str(gt)
        if not Path(gt).is_file():
            raise DataError(f"{name}: ground-truth file not found")
        data = load_coco_keypoints(gt).data
    if not isinstance(data.get("categories"), list):
        raise DataError(f"{name}: missing or non-list 'categories' (not a COCO keypoint file?)")
    for i, ann in enumerate(data["annotations"]):
        if "category_id" not in ann:
            raise DataError(f"{name}: annotations[{i}] (id {ann.get('id')}) has no 'category_id'")
    if not any(
        not a.get("iscrowd", 0) and any(v > 0 for v in a["keypoints"][2::3])
        for a in data["annotations"]
    ):
        raise DataError(
            f"{name}: no person with labelled keypoints: there is nothing to score (AP is "
            "undefined on an empty ground truth)"
        )
    return data, name


def gt_num_keypoints(gt: dict, name: str = "<gt>") -> int:
    """K from the GT: the category's ``keypoints`` name list, else the first annotation."""
    for cat in gt.get("categories", []):
        names = cat.get("keypoints") if isinstance(cat, dict) else None
        if names:
            return len(names)
    for ann in gt.get("annotations", []):
        kp = ann.get("keypoints")
        if isinstance(kp, list) and kp and len(kp) % 3 == 0:
            return len(kp) // 3
    raise DataError(
        f"{name}: cannot tell the keypoint count (no category 'keypoints' list and no annotations)"
    )


def load_results(results: str | os.PathLike | list) -> tuple[Any, str]:
    """Read a results JSON file (or accept a list). Returns ``(results, name)`` unvalidated."""
    if isinstance(results, (str, os.PathLike)):
        name = str(results)
        path = Path(results)
        if not path.is_file():
            raise ResultsError(f"{name}: results file not found")
        try:
            with path.open("rb") as f:
                return json.load(f), name
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ResultsError(f"{name}: not a readable JSON file ({e})") from None
    return results, "<results>"


def _finite_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _all_finite(values: list | tuple) -> bool:
    # Fast path for the common all-numeric list; the per-item check names the first bad value.
    arr = np.asarray(values)
    if arr.dtype.kind in "fiu" and arr.ndim == 1:
        return bool(np.isfinite(arr).all())
    return all(_finite_number(v) for v in values)


def validate_results(
    results: Any,
    gt: str | os.PathLike | dict,
    num_keypoints: int | None = None,
    *,
    source: str = "<results>",
) -> list[dict]:
    """Check COCO keypoint results against the GT; raise ResultsError naming every problem kind.

    Checks: a list of dicts; the fields ``image_id, category_id, keypoints, score``; ``keypoints``
    a flat list of ``3 * num_keypoints`` finite numbers (K from the GT when None); a finite
    score; every ``image_id`` an image of the GT and every ``category_id`` one of its categories.
    Returns ``results`` unchanged.
    """
    gt_data, gt_name = load_gt(gt)
    if num_keypoints is None:
        num_keypoints = gt_num_keypoints(gt_data, gt_name)
    if not isinstance(results, list):
        raise ResultsError(
            f"{source}: results must be a JSON list of per-person dicts, got {type(results).__name__}"
        )
    image_ids = {img["id"] for img in gt_data["images"]}
    cat_ids = {cat.get("id") for cat in gt_data["categories"] if isinstance(cat, dict)}
    problems: list[str] = []

    def add(msg: str) -> None:
        problems.append(msg)

    for i, r in enumerate(results):
        if len(problems) >= _MAX_REPORTED:
            break
        if not isinstance(r, dict):
            add(f"entry {i} is a {type(r).__name__}, not an object")
            continue
        missing = [k for k in REQUIRED_FIELDS if k not in r]
        if missing:
            add(f"entry {i} is missing field(s) {missing}")
            continue
        kp = r["keypoints"]
        if isinstance(kp, np.ndarray) and kp.ndim == 1:
            kp = kp.tolist()
        if not isinstance(kp, (list, tuple)):
            add(
                f"entry {i}: 'keypoints' must be a flat list of 3*K numbers, got {type(kp).__name__}"
            )
        elif len(kp) != 3 * num_keypoints:
            nested = (
                " (nested lists: flatten to [x1, y1, s1, x2, ...])"
                if kp and isinstance(kp[0], (list, tuple))
                else ""
            )
            add(
                f"entry {i}: wrong keypoint count: {len(kp)} values, expected "
                f"{3 * num_keypoints} (3 x {num_keypoints} keypoints of {gt_name}){nested}"
            )
        elif not _all_finite(kp):
            bad = next(j for j, v in enumerate(kp) if not _finite_number(v))
            add(
                f"entry {i}: 'keypoints'[{bad}] = {kp[bad]!r} is not a finite number (NaN/inf/non-number)"
            )
        if not _finite_number(r["score"]):
            add(f"entry {i}: 'score' = {r['score']!r} is not a finite number")
        if r["image_id"] not in image_ids:
            add(f"entry {i}: image_id {r['image_id']!r} is not an image id in {gt_name}")
        if r["category_id"] not in cat_ids:
            add(
                f"entry {i}: category_id {r['category_id']!r} is not a category of {gt_name} ({sorted(cat_ids)})"
            )
    if problems:
        more = " (first problems only)" if len(problems) >= _MAX_REPORTED else ""
        raise ResultsError(f"{source}: invalid results{more}: " + "; ".join(problems))
    return results


def write_results(path: str | os.PathLike, results: Sequence[dict]) -> Path:
    """Write COCO keypoint results as JSON (numpy arrays/scalars converted), atomically.

    The file is written next to ``path`` under a temporary name and moved into place, so a
    crash never leaves a half-written results file.
    """
    path = write_json_atomic(path, list(results))
    logger.info("wrote %d results to %s", len(results), path)
    return path
