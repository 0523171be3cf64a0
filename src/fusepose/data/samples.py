"""What the COCO-format datasets share: tensors from numpy, the skeleton check, crowd /
ignore region masks, skipping bad samples, the image size check."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from fusepose.data.coco_index import CocoIndex, PersonAnnotation
from fusepose.errors import DataError
from fusepose.skeletons import Skeleton, SkeletonError, get_skeleton

logger = logging.getLogger(__name__)

__all__ = ["SkipBadMixin", "check_image_size", "region_mask", "resolve_skeleton", "to_tensors"]


def to_tensors(obj: Any) -> Any:
    """numpy arrays -> torch tensors, recursively through dicts, lists and tuples."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: to_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_tensors(v) for v in obj)
    return obj


def resolve_skeleton(skeleton: str | Path | Skeleton, index: CocoIndex) -> Skeleton:
    try:
        skel = skeleton if isinstance(skeleton, Skeleton) else get_skeleton(skeleton)
    except SkeletonError as e:
        raise DataError(str(e)) from None
    if skel.num_keypoints != index.num_keypoints:
        raise DataError(
            f"{index.path}: annotations have {index.num_keypoints} keypoints per person but "
            f"skeleton '{skel.name}' has {skel.num_keypoints}; keypoint count mismatch"
        )
    names = index.keypoint_names
    if names is not None and tuple(names) != tuple(skel.keypoints):
        # Naming conventions differ between releases (CrowdPose 'head' vs 'top_head'), so this
        # is a warning; a different order would silently break flip pairs, so say which differ.
        diff = [
            (i, a, b) for i, (a, b) in enumerate(zip(names, skel.keypoints, strict=True)) if a != b
        ]
        logger.warning(
            "%s: keypoint names differ from skeleton '%s' at (index, file, skeleton) "
            "%s; check the keypoint order",
            index.path,
            skel.name,
            diff[:4],
        )
    return skel


def _decode_region(seg: Any, bbox: np.ndarray, h: int, w: int) -> np.ndarray:
    if isinstance(seg, dict) and "counts" in seg:
        if isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = dict(seg)
            if isinstance(rle["counts"], str):
                rle["counts"] = rle["counts"].encode("ascii")
        return mask_utils.decode(rle)
    if isinstance(seg, list) and seg and all(isinstance(p, list) and len(p) >= 6 for p in seg):
        return mask_utils.decode(mask_utils.frPyObjects(seg, h, w))
    box = np.asarray([bbox.tolist()], dtype=np.float64)
    return mask_utils.decode(mask_utils.frPyObjects(box, h, w))


def region_mask(ann: PersonAnnotation, h: int, w: int, source: Path | str) -> np.ndarray:
    """Binary ``(h, w)`` uint8 mask of a person/crowd region with pycocotools: its segmentation
    (polygons, RLE or uncompressed RLE), or its box when there is no segmentation."""
    try:
        with warnings.catch_warnings():
            # pycocotools' RLE object triggers numpy 2's __array__(copy=...) DeprecationWarning
            warnings.simplefilter("ignore", DeprecationWarning)
            m = _decode_region(ann.segmentation, ann.bbox, h, w)
    except (TypeError, ValueError, KeyError, UnicodeEncodeError) as e:
        raise DataError(
            f"{source}: annotation id {ann.id} (image {ann.image_id}): malformed segmentation ({e})"
        ) from None
    if m.ndim == 3:
        m = m.max(axis=2)
    if m.shape != (h, w):
        raise DataError(
            f"{source}: annotation id {ann.id}: segmentation size {m.shape[:2]} differs from the "
            f"image size {(h, w)}"
        )
    return m.astype(np.uint8)


class SkipBadMixin:
    """Shared image loading with ``skip_bad`` handling."""

    skip_bad: bool
    num_skipped: int
    _bad: set[int]

    def _load_or_skip(self, idx: int, load: Callable[[int], dict]) -> dict:
        n = len(self)  # type: ignore[arg-type]
        for attempt in range(n):
            j = (idx + attempt) % n
            if j in self._bad:
                continue
            try:
                return load(j)
            except DataError as e:
                if not self.skip_bad:
                    raise
                self._bad.add(j)
                self.num_skipped += 1
                logger.warning("skipping sample %d: %s", j, e)
        raise DataError(f"every sample of the dataset is bad ({self.num_skipped} skipped)")


def check_image_size(img: np.ndarray, entry: dict, path: Path, ann_file: Path) -> None:
    """DataError when the image is not the ``width`` x ``height`` its annotation entry
    declares (a declared size that is not a number disagrees too)."""
    h, w = img.shape[:2]
    jw, jh = entry.get("width"), entry.get("height")
    if (jw is not None and jw != w) or (jh is not None and jh != h):
        raise DataError(f"{path}: image is {w}x{h} but {ann_file} says {jw}x{jh}")
