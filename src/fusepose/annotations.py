"""COCO-format keypoint annotations, validated up front: :func:`load_coco_keypoints` ->
:class:`CocoIndex`; person detections: :func:`load_detections`.

The one validator of COCO-format files: training, inference and evaluation read ground truth
through it, so a file one of them accepts the others accept too.

Works for COCO, CrowdPose (14 keypoints), OCHuman and custom JSON. Keypoints are COCO
``[x, y, v]`` in original-image pixels (0-based).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.errors import DataError
from fusepose.files import read_json

logger = logging.getLogger(__name__)

__all__ = ["CocoIndex", "PersonAnnotation", "load_coco_keypoints", "load_detections"]


@dataclass
class PersonAnnotation:
    """One validated person annotation.

    keypoints: ``(K, 3)`` float64 ``[x, y, v]`` original-image pixels; bbox ``[x, y, w, h]``.
    """

    id: int | None
    image_id: int
    keypoints: np.ndarray
    bbox: np.ndarray
    iscrowd: bool
    area: float | None
    segmentation: Any = None

    @property
    def num_labelled(self) -> int:
        """Number of keypoints with ``v > 0``."""
        return int((self.keypoints[:, 2] > 0).sum())


@dataclass
class CocoIndex:
    """A validated COCO-format keypoint file.

    ``images`` maps image id -> image entry; ``image_ids`` keeps file order;
    ``annotations[image_id]`` lists that image's people (crowd regions included, flagged).
    ``data`` is the parsed JSON, unchanged (hand it to pycocotools for evaluation).
    """

    path: Path
    data: dict[str, Any]
    images: dict[int, dict[str, Any]]
    image_ids: list[int]
    annotations: dict[int, list[PersonAnnotation]]
    num_keypoints: int
    keypoint_names: tuple[str, ...] | None = None
    limbs: tuple[tuple[int, int], ...] = ()
    categories: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def all_annotations(self) -> list[PersonAnnotation]:
        return [a for iid in self.image_ids for a in self.annotations[iid]]

    @property
    def num_annotations(self) -> int:
        return sum(len(v) for v in self.annotations.values())

    @property
    def num_people_with_keypoints(self) -> int:
        return sum(1 for a in self.all_annotations() if a.num_labelled > 0)

    @property
    def num_labelled_keypoints(self) -> int:
        return sum(a.num_labelled for a in self.all_annotations())

    def keypoints(self, image_id: int, include_crowd: bool = False) -> np.ndarray:
        """``(N, K, 3)`` keypoints of one image in original pixels."""
        anns = [a for a in self.annotations[image_id] if include_crowd or not a.iscrowd]
        if not anns:
            return np.zeros((0, self.num_keypoints, 3))
        return np.stack([a.keypoints for a in anns])


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_coco_keypoints(
    ann_file: str | Path | dict[str, Any],
    num_keypoints: int | None = None,
    *,
    source: str = "<ground-truth dict>",
) -> CocoIndex:
    """Load and validate a COCO-format keypoint annotation file (or its parsed dict).

    Raises :class:`DataError` naming the file for: unreadable or malformed JSON, missing
    ``images`` / ``annotations``, images without ``id`` / ``file_name``, duplicate image ids,
    annotations without ``image_id`` / ``keypoints`` / ``bbox``, keypoint arrays whose length is
    not ``3 * K`` (K from ``num_keypoints``, else the category's keypoint names, else the first
    annotation), a category naming a different number of keypoints, non-finite values, negative
    or zero box sizes, negative or non-finite areas, duplicate annotation ids, and
    annotations pointing at image ids not in ``images``.
    Only annotations of keypoint categories (categories with a ``keypoints`` list; all
    annotations when no category has one) are kept.
    """
    if isinstance(ann_file, dict):
        path, data = Path(source), ann_file
    else:
        path = Path(ann_file)
        data = read_json(path)
    _check_top_level(path, data)
    categories, keep_cat_ids, names, limbs_raw = _keypoint_categories(path, data, num_keypoints)
    images, image_ids = _images(path, data["images"])
    K = num_keypoints if num_keypoints is not None else (len(names) if names else None)
    annotations, K = _annotations(path, data["annotations"], images, keep_cat_ids, K)
    if K is None:
        K = len(names) if names else 0
    if names is not None and len(names) != K:
        raise DataError(
            f"{path}: category lists {len(names)} keypoint names but annotations have {K} "
            "keypoints each; keypoint count mismatch"
        )
    index = CocoIndex(
        path=path,
        data=data,
        images=images,
        image_ids=image_ids,
        annotations=annotations,
        num_keypoints=K,
        keypoint_names=names,
        limbs=_limbs(path, limbs_raw, K),
        categories=categories,
    )
    logger.debug(
        "%s: %d images, %d annotations (%d with keypoints), K=%d",
        path,
        index.num_images,
        index.num_annotations,
        index.num_people_with_keypoints,
        K,
    )
    return index


def _check_top_level(path: Path, data: Any) -> None:
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected a JSON object with 'images' and 'annotations', "
            f"got a {type(data).__name__}"
        )
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"{path}: missing required key '{key}'")
        if not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' must be a list, got {type(data[key]).__name__}")


def _keypoint_categories(
    path: Path, data: dict[str, Any], num_keypoints: int | None
) -> tuple[list, set | None, tuple[str, ...] | None, list]:
    """``(categories, ids of the keypoint categories or None for all, keypoint names or None,
    the raw 1-based skeleton links)``."""
    categories = data.get("categories") or []
    if not isinstance(categories, list):
        raise DataError(f"{path}: 'categories' must be a list")
    kp_cats = [c for c in categories if isinstance(c, dict) and "keypoints" in c]
    keep_cat_ids = {c.get("id") for c in kp_cats} if kp_cats else None
    names: tuple[str, ...] | None = None
    limbs_raw: list = []
    if kp_cats:
        names = tuple(str(n) for n in kp_cats[0]["keypoints"])
        limbs_raw = kp_cats[0].get("skeleton") or []
        for c in kp_cats[1:]:
            if len(c["keypoints"]) != len(names):
                raise DataError(
                    f"{path}: categories name different keypoint counts "
                    f"({len(names)} and {len(c['keypoints'])})"
                )
    if num_keypoints is not None and names is not None and len(names) != num_keypoints:
        raise DataError(
            f"{path}: category lists {len(names)} keypoint names but {num_keypoints} "
            "keypoints were expected"
        )
    return categories, keep_cat_ids, names, limbs_raw


def _images(path: Path, entries: list) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """Image id -> entry, and the ids in file order."""
    images: dict[int, dict[str, Any]] = {}
    image_ids: list[int] = []
    for i, im in enumerate(entries):
        if not isinstance(im, dict):
            raise DataError(f"{path}: images[{i}] is not an object")
        for key in ("id", "file_name"):
            if key not in im:
                raise DataError(f"{path}: images[{i}] is missing required key '{key}'")
        iid = im["id"]
        if iid in images:
            raise DataError(f"{path}: duplicate image id {iid!r} (images[{i}])")
        for key in ("width", "height"):
            if key in im and not (_is_number(im[key]) and im[key] > 0):
                raise DataError(f"{path}: images[{i}] (id {iid}) has invalid {key} {im[key]!r}")
        images[iid] = im
        image_ids.append(iid)
    return images, image_ids


def _annotations(
    path: Path,
    entries: list,
    images: dict[int, dict[str, Any]],
    keep_cat_ids: set | None,
    K: int | None,
) -> tuple[dict[int, list[PersonAnnotation]], int | None]:
    """Each image's validated people, and K (from the first annotation when not known)."""
    annotations: dict[int, list[PersonAnnotation]] = {iid: [] for iid in images}
    ann_ids: set[Any] = set()
    contradictions: list[str] = []
    for i, ann in enumerate(entries):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise DataError(f"{path}: {where} is not an object")
        if "id" in ann:
            where += f" (id {ann['id']})"
            if ann["id"] in ann_ids:
                raise DataError(f"{path}: duplicate annotation id {ann['id']!r} ({where})")
            ann_ids.add(ann["id"])
        if (
            keep_cat_ids is not None
            and "category_id" in ann
            and ann["category_id"] not in keep_cat_ids
        ):
            continue
        for key in ("image_id", "keypoints", "bbox"):
            if key not in ann:
                raise DataError(f"{path}: {where} is missing required key '{key}'")
        K = _keypoint_count(path, where, ann["keypoints"], K)
        person = _person(path, where, ann, K, images)
        annotations[person.image_id].append(person)
        # the COCO tools ignore a person whose num_keypoints is 0, whatever it has labelled
        # (other counts may differ on purpose: CrowdPose's leave out the head and neck)
        if ann.get("num_keypoints") == 0 and person.num_labelled and not person.iscrowd:
            contradictions.append(f"{where}: num_keypoints 0, {person.num_labelled} labelled")
    if contradictions:
        logger.warning("%s: %d people have labelled keypoints but num_keypoints 0, so COCO "
                       "scoring ignores them (first %s); set num_keypoints to the count of "
                       "labelled joints to score them", path, len(contradictions),
                       contradictions[0])  # fmt: skip
    return annotations, K


def _keypoint_count(path: Path, where: str, kps: Any, K: int | None) -> int:
    """K after checking one annotation's keypoint list (K from it when not known yet)."""
    if not isinstance(kps, list) or not all(_is_number(v) for v in kps):
        raise DataError(f"{path}: {where}: 'keypoints' must be a list of finite numbers")
    if K is None:
        if len(kps) == 0 or len(kps) % 3:
            raise DataError(
                f"{path}: {where}: keypoints has {len(kps)} values, not a positive "
                "multiple of 3 ([x, y, v] per keypoint)"
            )
        K = len(kps) // 3
    if len(kps) != 3 * K:
        raise DataError(
            f"{path}: {where}: keypoints has {len(kps)} values, expected {3 * K} "
            f"(3 x {K} keypoints); keypoint count mismatch"
        )
    return K


def _person(
    path: Path, where: str, ann: dict[str, Any], K: int, images: dict[int, dict[str, Any]]
) -> PersonAnnotation:
    """One annotation's box, image id, visibilities and area checked."""
    box = ann["bbox"]
    if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
        raise DataError(
            f"{path}: {where}: 'bbox' must be 4 finite numbers [x, y, w, h], got {box!r}"
        )
    if box[2] < 0 or box[3] < 0:
        raise DataError(f"{path}: {where}: negative box size w={box[2]}, h={box[3]}")
    if box[2] == 0 or box[3] == 0:
        raise DataError(f"{path}: {where}: degenerate box size w={box[2]}, h={box[3]}")
    iid = ann["image_id"]
    if iid not in images:
        raise DataError(f"{path}: {where} refers to image id {iid!r}, which is not in 'images'")
    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(K, 3)
    if np.any(kp[:, 2] < 0):
        raise DataError(f"{path}: {where}: negative keypoint visibility")
    area = ann.get("area")
    if area is not None and not (_is_number(area) and area >= 0):
        raise DataError(f"{path}: {where}: 'area' must be a finite number >= 0, got {area!r}")
    return PersonAnnotation(
        id=ann.get("id"),
        image_id=iid,
        keypoints=kp,
        bbox=np.asarray(box, dtype=np.float64),
        iscrowd=bool(ann.get("iscrowd", 0)),
        area=float(area) if _is_number(area) else None,
        segmentation=ann.get("segmentation"),
    )


def _limbs(path: Path, limbs_raw: list, K: int) -> tuple[tuple[int, int], ...]:
    """0-based limbs of the category skeleton; out-of-range links dropped with a warning."""
    limbs, dropped = [], []
    for link in limbs_raw:
        # COCO skeletons are 1-based. Out-of-range links (e.g. CrowdPose files that carry the
        # COCO-17 skeleton) are dropped with a warning; the keypoint set itself is what matters.
        if (
            isinstance(link, list)
            and len(link) == 2
            and all(isinstance(v, int) for v in link)
            and 1 <= link[0] <= K
            and 1 <= link[1] <= K
        ):
            limbs.append((link[0] - 1, link[1] - 1))
        else:
            dropped.append(link)
    if dropped:
        logger.warning(
            "%s: %d category skeleton links out of range for %d keypoints ignored (e.g. %r)",
            path,
            len(dropped),
            K,
            dropped[0],
        )
    return tuple(limbs)


def load_detections(
    det_file: str | Path, index: CocoIndex | None = None, score_thr: float = 0.0
) -> list[dict[str, Any]]:
    """Person detections (COCO results format: ``image_id`` (or ``file_name``), ``bbox``
    xywh, ``score``).

    Keeps ``category_id == 1`` (when present) and ``score >= score_thr``; validates every
    entry and, with ``index``, that each ``image_id`` exists in the ground truth.
    """
    path = Path(det_file)
    dets = read_json(path, what="detection file")
    if not isinstance(dets, list):
        raise DataError(
            f"{path}: detection file must be a JSON list of {{image_id, bbox, score}}, "
            f"got a {type(dets).__name__}"
        )
    out = []
    for i, d in enumerate(dets):
        if not isinstance(d, dict):
            raise DataError(f"{path}: detection [{i}] is not an object")
        for key in ("bbox", "score"):
            if key not in d:
                raise DataError(f"{path}: detection [{i}] is missing required key '{key}'")
        if not any(k in d for k in ("image_id", "file_name", "image_name")):
            raise DataError(
                f"{path}: detection [{i}] is missing required key 'image_id' (or 'file_name')"
            )
        box = d["bbox"]
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise DataError(f"{path}: detection [{i}]: 'bbox' must be 4 finite numbers")
        if box[2] < 0 or box[3] < 0:
            raise DataError(f"{path}: detection [{i}]: negative box size w={box[2]}, h={box[3]}")
        if not _is_number(d["score"]):
            raise DataError(f"{path}: detection [{i}]: 'score' must be a finite number")
        if index is not None and d.get("image_id") not in index.images:
            raise DataError(
                f"{path}: detection [{i}] refers to image id {d['image_id']!r}, "
                f"which is not in {index.path}"
            )
        if d.get("category_id", 1) != 1 or d["score"] < score_thr:
            continue
        if box[2] == 0 or box[3] == 0:
            continue
        out.append(d)
    return out
