"""COCO-format keypoint datasets: COCO, CrowdPose (14 keypoints), OCHuman and custom JSON.

:func:`load_coco_keypoints` validates the whole annotation file up front and returns a
:class:`CocoIndex`. Two datasets sit on top of it:

* :class:`CocoBottomUpDataset`: whole images (HigherHRNet). Crowd regions and people without
  labelled keypoints become *ignore* pixels in the mask (pycocotools masks of their
  segmentation, or of their box when the file has no segmentation); people with labelled
  keypoints are the targets.
* :class:`CocoTopDownDataset`: one person box per sample (HRNet top-down). Training skips
  people without labelled keypoints; testing keeps every non-crowd GT box, or every detection
  of a ``det_file`` above ``det_score_thr``.

Keypoints are COCO ``[x, y, v]`` in original-image pixels (0-based) on load and in input
pixels in samples. See docs/design.md for the sample dict.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from fusepose.data import transforms as T
from fusepose.data.io import read_image, read_json
from fusepose.errors import DataError
from fusepose.skeletons import Skeleton, SkeletonError, get_skeleton

logger = logging.getLogger(__name__)

__all__ = [
    "CocoBottomUpDataset",
    "CocoIndex",
    "CocoTopDownDataset",
    "PersonAnnotation",
    "load_coco_keypoints",
    "load_detections",
    "to_tensors",
]


# --------------------------------------------------------------------------------------------
# Index


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


def load_coco_keypoints(ann_file: str | Path, num_keypoints: int | None = None) -> CocoIndex:
    """Load and validate a COCO-format keypoint annotation file.

    Raises :class:`DataError` naming the file for: unreadable or malformed JSON, missing
    ``images`` / ``annotations``, images without ``id`` / ``file_name``, duplicate image ids,
    annotations without ``image_id`` / ``keypoints`` / ``bbox``, keypoint arrays whose length is
    not ``3 * K`` (K from ``num_keypoints``, else the category's keypoint names, else the first
    annotation), a category naming a different number of keypoints, non-finite values, negative
    or zero box sizes, and annotations pointing at image ids not in ``images``.
    Only annotations of keypoint categories (categories with a ``keypoints`` list; all
    annotations when no category has one) are kept.
    """
    path = Path(ann_file)
    data = read_json(path)
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

    # categories: keypoint names and limbs
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

    images: dict[int, dict[str, Any]] = {}
    image_ids: list[int] = []
    for i, im in enumerate(data["images"]):
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

    K = num_keypoints if num_keypoints is not None else (len(names) if names else None)
    annotations: dict[int, list[PersonAnnotation]] = {iid: [] for iid in image_ids}
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise DataError(f"{path}: {where} is not an object")
        if "id" in ann:
            where += f" (id {ann['id']})"
        if (
            keep_cat_ids is not None
            and "category_id" in ann
            and ann["category_id"] not in keep_cat_ids
        ):
            continue
        for key in ("image_id", "keypoints", "bbox"):
            if key not in ann:
                raise DataError(f"{path}: {where} is missing required key '{key}'")
        kps = ann["keypoints"]
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
        kp = np.asarray(kps, dtype=np.float64).reshape(K, 3)
        if np.any(kp[:, 2] < 0):
            raise DataError(f"{path}: {where}: negative keypoint visibility")
        area = ann.get("area")
        annotations[iid].append(
            PersonAnnotation(
                id=ann.get("id"),
                image_id=iid,
                keypoints=kp,
                bbox=np.asarray(box, dtype=np.float64),
                iscrowd=bool(ann.get("iscrowd", 0)),
                area=float(area) if _is_number(area) else None,
                segmentation=ann.get("segmentation"),
            )
        )
    if K is None:
        K = len(names) if names else 0
    if names is not None and len(names) != K:
        raise DataError(
            f"{path}: category lists {len(names)} keypoint names but annotations have {K} "
            "keypoints each; keypoint count mismatch"
        )
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
    index = CocoIndex(
        path=path,
        data=data,
        images=images,
        image_ids=image_ids,
        annotations=annotations,
        num_keypoints=K,
        keypoint_names=names,
        limbs=tuple(limbs),
        categories=categories,
    )
    logger.info(
        "%s: %d images, %d annotations (%d with keypoints), K=%d",
        path,
        index.num_images,
        index.num_annotations,
        index.num_people_with_keypoints,
        K,
    )
    return index


def load_detections(
    det_file: str | Path, index: CocoIndex | None = None, score_thr: float = 0.0
) -> list[dict[str, Any]]:
    """Person detections (COCO results format: ``image_id``, ``bbox`` xywh, ``score``).

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
        for key in ("image_id", "bbox", "score"):
            if key not in d:
                raise DataError(f"{path}: detection [{i}] is missing required key '{key}'")
        box = d["bbox"]
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise DataError(f"{path}: detection [{i}]: 'bbox' must be 4 finite numbers")
        if box[2] < 0 or box[3] < 0:
            raise DataError(f"{path}: detection [{i}]: negative box size w={box[2]}, h={box[3]}")
        if not _is_number(d["score"]):
            raise DataError(f"{path}: detection [{i}]: 'score' must be a finite number")
        if index is not None and d["image_id"] not in index.images:
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


# --------------------------------------------------------------------------------------------
# Helpers shared by the datasets


def to_tensors(obj: Any) -> Any:
    """numpy arrays -> torch tensors, recursively through dicts, lists and tuples."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: to_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_tensors(v) for v in obj)
    return obj


def _resolve_skeleton(skeleton: str | Path | Skeleton, index: CocoIndex) -> Skeleton:
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


def _region_mask(ann: PersonAnnotation, h: int, w: int, source: Path | str) -> np.ndarray:
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


class _SkipBadMixin:
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


def _check_image_size(img: np.ndarray, entry: dict, path: Path, ann_file: Path) -> None:
    h, w = img.shape[:2]
    jw, jh = entry.get("width"), entry.get("height")
    if (jw is not None and int(jw) != w) or (jh is not None and int(jh) != h):
        raise DataError(f"{path}: image is {w}x{h} but {ann_file} says {jw}x{jh}")


# --------------------------------------------------------------------------------------------
# Bottom-up


def letterbox_matrix(image_hw: Sequence[int], input_hw: Sequence[int]) -> np.ndarray:
    """2x3 affine (original -> input pixels) fitting the whole image into ``input_hw (H, W)``:
    uniform scale ``min(H_in / H, W_in / W)``, centred, the rest zero padding (the Predictor's
    fixed-size bottom-up warp)."""
    h, w = float(image_hw[0]), float(image_hw[1])
    h_in, w_in = float(input_hw[0]), float(input_hw[1])
    s = min(h_in / h, w_in / w)
    return np.array([[s, 0.0, (w_in - s * w) / 2.0], [0.0, s, (h_in - s * h) / 2.0]])


def bottom_up_train_transforms(
    input_size: int | Sequence[int],
    flip_index: Sequence[int],
    rng: np.random.Generator | None = None,
    *,
    rotation: float = 30.0,
    scale_range: Sequence[float] = (0.75, 1.5),
    translate: float = 40.0,
    flip_prob: float = 0.5,
) -> T.Compose:
    """HigherHRNet training augmentation (architecture.md §2.5): rotation U[-30, 30] deg,
    scale U[0.75, 1.5] of the short side, centre shift up to ``translate`` px per 200 px of
    crop (official ``MAX_TRANSLATE`` 40, i.e. 0.2 of the crop), then flip p = 0.5.

    ``input_size``: an int (square output) or ``(H, W)``; the crop height is the image's
    height when ``H <= W`` (for a letterboxed ``H x W`` sample: the whole of it at scale 1)."""
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    return T.Compose(
        [
            T.RandomAffine(
                (int(hw[0]), int(hw[1])),
                max_rotation=rotation,
                scale_range=scale_range,
                max_shift=translate / 200.0,
                scale_type="short" if hw[0] <= hw[1] else "long",
                rng=rng,
            ),
            T.RandomFlip(flip_index, prob=flip_prob, rng=rng),
        ]
    )


class CocoBottomUpDataset(_SkipBadMixin, torch.utils.data.Dataset):
    """Whole-image samples for bottom-up training / testing (HigherHRNet).

    Sample: ``image`` float32 tensor ``(3, H, W)`` (normalized), ``keypoints`` ``(N, K, 3)``
    input pixels (people that are not crowd regions), the codec's targets as tensors
    (``codec.encode(keypoints, valid_mask)``), or ``mask`` ``(H, W)`` uint8 (1 = used by the
    loss) when ``codec`` is None; ``meta`` with ``image_id``, ``path``, ``matrix`` (2x3
    original -> input), ``image_size`` (H, W) and ``flipped``.

    Training (``train=True``) drops images without annotations (official HigherHRNet) and uses
    ``transforms`` (default :func:`bottom_up_train_transforms`) on ``{image, keypoints, mask}``;
    they must output ``input_size x input_size``. Testing uses the official resize
    (:func:`~fusepose.data.transforms.bottom_up_warp`; short side -> ``input_size``), then
    ``transforms`` if given.

    ``resize="letterbox"`` (``input_size`` an int or ``(H, W)``): in training *and* testing the
    whole image is first fitted into ``H x W`` (:func:`letterbox_matrix`, the Predictor's warp
    for a fixed ``(H, W)`` input), so every person is seen at the scale used at test time; the
    training transforms then act on that ``H x W`` view (identity when augmentation is off).
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        codec: Any = None,
        input_size: int | Sequence[int] = 512,
        train: bool = True,
        skeleton: str | Path | Skeleton = "coco",
        transforms: Callable[[dict], dict] | None = None,
        skip_bad: bool = False,
        rng: np.random.Generator | None = None,
        *,
        flip_prob: float = 0.5,
        rotation: float = 30.0,
        scale_range: Sequence[float] = (0.75, 1.5),
        translate: float = 40.0,
        max_images: int = 0,
        resize: str = "crop",
    ):
        self.index = load_coco_keypoints(ann_file)
        self.skeleton = _resolve_skeleton(skeleton, self.index)
        self.image_dir = Path(image_dir)
        self.codec = codec
        if resize not in ("crop", "letterbox"):
            raise DataError(f"{ann_file}: resize must be 'crop' or 'letterbox', got {resize!r}")
        self.resize = resize
        if isinstance(input_size, int):
            self.input_hw = (int(input_size), int(input_size))
        else:
            self.input_hw = (int(input_size[0]), int(input_size[1]))
            if resize == "crop" and self.input_hw[0] != self.input_hw[1]:
                raise DataError(
                    f"{ann_file}: resize='crop' needs a square input_size, got {self.input_hw}"
                )
        self.input_size = self.input_hw[0]
        self.train = bool(train)
        self.skip_bad = bool(skip_bad)
        self.num_skipped = 0
        self._bad: set[int] = set()
        ids = self.index.image_ids
        if self.train:
            ids = [i for i in ids if self.index.annotations[i]]
        self.image_ids = list(ids)[:max_images] if max_images else list(ids)
        if transforms is None and self.train:
            transforms = bottom_up_train_transforms(
                self.input_hw,
                self.skeleton.flip_index,
                rng,
                rotation=rotation,
                scale_range=scale_range,
                translate=translate,
                flip_prob=flip_prob,
            )
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, i: int) -> Path:
        return self.image_dir / str(self.index.images[self.image_ids[i]]["file_name"])

    def load_raw(self, i: int) -> dict[str, Any]:
        """Original image, keypoints ``(N, K, 3)`` original pixels, valid mask ``(H, W)``."""
        iid = self.image_ids[i]
        path = self.image_path(i)
        img = read_image(path)
        _check_image_size(img, self.index.images[iid], path, self.index.path)
        h, w = img.shape[:2]
        ignore = np.zeros((h, w), np.uint8)
        people = []
        for ann in self.index.annotations[iid]:
            if ann.iscrowd or ann.num_labelled == 0:
                ignore |= _region_mask(ann, h, w, self.index.path)
            if not ann.iscrowd:
                people.append(ann.keypoints)
        K = self.index.num_keypoints
        kpts = np.stack(people) if people else np.zeros((0, K, 3))
        return {
            "image": img,
            "keypoints": kpts,
            "mask": (ignore == 0).astype(np.uint8),
            "matrix": np.eye(3)[:2],
            "image_id": iid,
            "path": str(path),
        }

    def _load(self, i: int) -> dict[str, Any]:
        s = self.load_raw(i)
        orig_hw = s["image"].shape[:2]
        if self.resize == "letterbox":
            M = letterbox_matrix(orig_hw, self.input_hw)
            size = (self.input_hw[1], self.input_hw[0])
        elif not self.train:
            M, size = T.bottom_up_warp(orig_hw, self.input_size)
        if self.resize == "letterbox" or not self.train:
            s["image"] = T.apply_affine(s["image"], M, size)
            if self.resize == "letterbox":
                # the zero padding is seen the same way at test time: trained on (no people)
                ignore = T.apply_affine((1 - s["mask"]) * 255, M, size) > 127
                s["mask"] = (~ignore).astype(np.uint8)
            else:
                s["mask"] = (T.apply_affine(s["mask"] * 255, M, size) > 127).astype(np.uint8)
            s["keypoints"] = T.affine_points(s["keypoints"], M)
            s["matrix"] = M
        if self.transforms is not None:
            s = self.transforms(s)
        out: dict[str, Any] = {
            "image": torch.from_numpy(T.normalize(s["image"])),
            "keypoints": torch.from_numpy(s["keypoints"].astype(np.float32)),
        }
        if self.codec is not None:
            out.update(to_tensors(self.codec.encode(s["keypoints"], s["mask"])))
        else:
            out["mask"] = torch.from_numpy(s["mask"])
        out["meta"] = {
            "image_id": s["image_id"],
            "path": s["path"],
            "matrix": np.asarray(s["matrix"], dtype=np.float64),
            "image_size": tuple(orig_hw),
            "flipped": bool(s.get("flipped", False)),
        }
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._load_or_skip(i, self._load)


# --------------------------------------------------------------------------------------------
# Top-down


def top_down_train_transforms(
    input_size: Sequence[int],
    skeleton: Skeleton,
    rng: np.random.Generator | None = None,
    *,
    half_body_prob: float = 0.3,
    flip_prob: float = 0.5,
    rotation: float = 30.0,
    scale_range: Sequence[float] = (0.75, 1.25),
) -> T.Compose:
    """Top-down training augmentation (architecture.md §4.6, HRNet order): half body
    (p = 0.3, > 8 joints), flip p = 0.5, scale U[0.75, 1.25], rotation U[-30, 30] deg with
    p = 0.6 (HRNet's rotation probability), then the crop to ``input_size (H, W)``."""
    h, w = int(input_size[0]), int(input_size[1])
    steps: list[Callable[[dict], dict]] = []
    if half_body_prob > 0 and skeleton.upper_body:
        steps.append(
            T.HalfBody(
                skeleton.upper_body, aspect_ratio=w / h, prob=half_body_prob, min_joints=8, rng=rng
            )
        )
    steps.append(T.RandomFlip(skeleton.flip_index, prob=flip_prob, rng=rng))
    steps.append(
        T.RandomAffine(
            (h, w),
            max_rotation=rotation,
            scale_range=scale_range,
            max_shift=0.0,
            rot_prob=0.6,
            rng=rng,
        )
    )
    return T.Compose(steps)


def _clean_box(box: np.ndarray, width: float | None, height: float | None) -> np.ndarray | None:
    """HRNet's box cleaning: clip to the image; None when nothing is left."""
    x, y, w, h = box.tolist()
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = x1 + max(0.0, w - 1), y1 + max(0.0, h - 1)
    if width is not None:
        x2 = min(width - 1.0, x2)
    if height is not None:
        y2 = min(height - 1.0, y2)
    if x2 >= x1 and y2 >= y1 and (x2 - x1) * (y2 - y1) > 0:
        return np.array([x1, y1, x2 - x1, y2 - y1])
    return None


class CocoTopDownDataset(_SkipBadMixin, torch.utils.data.Dataset):
    """One person crop per sample (HRNet top-down).

    Entries: training uses non-crowd GT people with at least one labelled keypoint; testing
    uses every non-crowd GT box, or with ``det_file`` every person detection with
    ``score >= det_score_thr``. Boxes are clipped to the image as HRNet does, then padded by
    ``padding`` to the input aspect ratio.

    Sample: ``image`` ``(3, H, W)``, ``keypoints`` ``(K, 3)`` input pixels (zeros for
    detections), the codec's ``heatmaps (K, h, w)`` and ``target_weight (K,)`` (GT entries, or
    ``keypoints`` only when ``codec`` is None); ``meta`` with ``image_id``, ``path``,
    ``matrix`` (2x3 original -> input), ``box`` (xywh), ``center``, ``scale`` (crop size in
    original pixels, before augmentation), ``score``, ``area`` and ``flipped``.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        codec: Any = None,
        input_size: Sequence[int] = (256, 192),
        det_file: str | Path | None = None,
        det_score_thr: float = 0.0,
        train: bool = True,
        skeleton: str | Path | Skeleton = "coco",
        transforms: Callable[[dict], dict] | None = None,
        skip_bad: bool = False,
        padding: float = 1.25,
        rng: np.random.Generator | None = None,
        *,
        flip_prob: float = 0.5,
        rotation: float = 30.0,
        scale_range: Sequence[float] = (0.75, 1.25),
        half_body_prob: float = 0.3,
        max_images: int = 0,
    ):
        self.index = load_coco_keypoints(ann_file)
        self.skeleton = _resolve_skeleton(skeleton, self.index)
        self.image_dir = Path(image_dir)
        self.codec = codec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.train = bool(train)
        self.padding = float(padding)
        self.skip_bad = bool(skip_bad)
        self.num_skipped = 0
        self._bad: set[int] = set()
        if det_file is not None and train:
            raise DataError(f"{det_file}: detections are for testing; use train=False")
        self.entries = (
            self._det_entries(det_file, det_score_thr)
            if det_file is not None
            else self._gt_entries()
        )
        if max_images:
            keep = set(self.index.image_ids[:max_images])
            self.entries = [e for e in self.entries if e["image_id"] in keep]
        if transforms is None and self.train:
            transforms = top_down_train_transforms(
                self.input_size,
                self.skeleton,
                rng,
                half_body_prob=half_body_prob,
                flip_prob=flip_prob,
                rotation=rotation,
                scale_range=scale_range,
            )
        self.transforms = transforms

    def _gt_entries(self) -> list[dict[str, Any]]:
        entries = []
        for iid in self.index.image_ids:
            im = self.index.images[iid]
            for ann in self.index.annotations[iid]:
                if ann.iscrowd or (self.train and ann.num_labelled == 0):
                    continue
                if self.train and ann.area is not None and ann.area <= 0:
                    continue
                box = _clean_box(ann.bbox, im.get("width"), im.get("height"))
                if box is None:
                    continue
                entries.append(
                    {
                        "image_id": iid,
                        "box": box,
                        "keypoints": ann.keypoints,
                        "score": 1.0,
                        "area": ann.area,
                        "ann_id": ann.id,
                    }
                )
        return entries

    def _det_entries(self, det_file: str | Path, thr: float) -> list[dict[str, Any]]:
        dets = load_detections(det_file, self.index, thr)
        return [
            {
                "image_id": d["image_id"],
                "box": np.asarray(d["bbox"], np.float64),
                "keypoints": None,
                "score": float(d["score"]),
                "area": None,
                "ann_id": None,
            }
            for d in dets
        ]

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, i: int) -> dict[str, Any]:
        e = self.entries[i]
        im = self.index.images[e["image_id"]]
        path = self.image_dir / str(im["file_name"])
        img = read_image(path)
        _check_image_size(img, im, path, self.index.path)
        H, W = self.input_size
        center, scale = T.box_to_center_scale(e["box"], W / H, self.padding)
        K = self.index.num_keypoints
        has_gt = e["keypoints"] is not None
        kp = e["keypoints"] if has_gt else np.zeros((K, 3))
        s, out = top_down_sample(
            img, kp, center, scale, self.input_size, self.transforms, self.train,
            self.codec if has_gt else None,
        )  # fmt: skip
        out["meta"] = {
            "image_id": e["image_id"],
            "path": str(path),
            "matrix": np.asarray(s["matrix"], dtype=np.float64),
            "box": np.asarray(e["box"], dtype=np.float64),
            "center": center,
            "scale": scale,
            "score": e["score"],
            "area": e["area"],
            "image_size": tuple(img.shape[:2]),
            "flipped": bool(s.get("flipped", False)),
        }
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._load_or_skip(i, self._load)


def top_down_sample(
    img: np.ndarray,
    keypoints: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    input_size: tuple[int, int],
    transforms: Callable | None,
    train: bool,
    codec: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Warp one person crop (augmented in training) and encode its targets.

    keypoints: (K, 3) original-image pixels. Returns the transformed sample dict (with its
    ``matrix``, original -> input) and the output dict: ``image`` (3, H, W) tensor,
    ``keypoints`` (K, 3) input pixels and, with a codec, ``heatmaps`` and ``target_weight``.
    """
    s = {
        "image": img,
        "keypoints": keypoints[None].copy(),
        "center": center.copy(),
        "scale": scale.copy(),
        "matrix": np.eye(3)[:2],
    }
    if transforms is not None and train:
        s = transforms(s)
    else:
        s = T.TopDownAffine(input_size)(s)
        if transforms is not None:
            s = transforms(s)
    kp_in = s["keypoints"][0]
    out: dict[str, Any] = {
        "image": torch.from_numpy(T.normalize(s["image"])),
        "keypoints": torch.from_numpy(kp_in.astype(np.float32)),
    }
    if codec is not None:
        heatmaps, weights = codec.encode(kp_in)
        out["heatmaps"] = to_tensors(np.asarray(heatmaps, dtype=np.float32))
        out["target_weight"] = to_tensors(np.asarray(weights, dtype=np.float32))
    return s, out
