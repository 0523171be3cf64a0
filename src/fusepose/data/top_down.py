"""One person box per sample, for top-down training and testing (HRNet).

Training skips people without labelled keypoints; testing keeps every non-crowd GT box, or
every detection of a ``det_file`` above ``det_score_thr``. See docs/design.md for the sample
dict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusepose.data import transforms as T
from fusepose.data.coco_index import load_coco_keypoints, load_detections
from fusepose.data.io import read_image
from fusepose.data.samples import SkipBadMixin, check_image_size, resolve_skeleton, to_tensors
from fusepose.errors import ConfigError, DataError
from fusepose.family import TOP_DOWN
from fusepose.geometry import InputGeometry
from fusepose.skeletons import Skeleton

logger = logging.getLogger(__name__)

__all__ = ["CocoTopDownDataset", "crop_geometry", "top_down_sample", "top_down_train_transforms"]


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
    """Top-down training augmentation (docs/reconstruction.md#sfm-recipe, HRNet order): half body
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


class CocoTopDownDataset(SkipBadMixin, torch.utils.data.Dataset):
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

    ``geometry``: the ``crop`` :class:`~fusepose.geometry.InputGeometry` a model description
    holds; it replaces ``input_size (H, W)`` when given.
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
        geometry: InputGeometry | None = None,
    ):
        self.index = load_coco_keypoints(ann_file)
        self.skeleton = resolve_skeleton(skeleton, self.index)
        self.image_dir = Path(image_dir)
        self.codec = codec
        self.geometry = crop_geometry(ann_file, input_size, geometry)
        self.input_size = self.geometry.size
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
        check_image_size(img, im, path, self.index.path)
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
    ``keypoints`` (K, 3) input pixels and, with a codec, its targets (``codec.encode``:
    ``heatmaps`` and ``target_weight``).
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
        out.update(to_tensors(codec.encode(kp_in)))
    return s, out


def crop_geometry(
    source: Any, input_size: Sequence[int], geometry: InputGeometry | None
) -> InputGeometry:
    """A top-down dataset's geometry: ``geometry`` (a ``crop`` one), else a crop of
    ``input_size (H, W)``."""
    if geometry is None:
        return TOP_DOWN.fixed_geometry((int(input_size[0]), int(input_size[1])))
    if geometry.mode not in TOP_DOWN.geometry_modes:
        raise ConfigError(
            f"{source}: a top-down dataset takes the 'crop' geometry, not {geometry.mode!r}"
        )
    return geometry
