"""Whole-image samples for bottom-up training and testing (HigherHRNet).

Crowd regions and people without labelled keypoints become *ignore* pixels in the mask
(pycocotools masks of their segmentation, or of their box when the file has no segmentation);
people with labelled keypoints are the targets. See docs/design.md for the sample dict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusepose.data import transforms as T
from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.data.samples import (
    SkipBadMixin,
    check_image_size,
    region_mask,
    resolve_skeleton,
    to_tensors,
)
from fusepose.errors import ConfigError, DataError
from fusepose.family import BOTTOM_UP
from fusepose.geometry import InputGeometry
from fusepose.skeletons import Skeleton

logger = logging.getLogger(__name__)

__all__ = ["CocoBottomUpDataset", "bottom_up_train_transforms"]


def bottom_up_train_transforms(
    input_size: int | Sequence[int],
    flip_index: Sequence[int],
    rng: np.random.Generator | None = None,
    *,
    rotation: float = 30.0,
    scale_range: Sequence[float] = (0.75, 1.5),
    translate: float = 40.0,
    flip_prob: float = 0.5,
    integer_shift: bool = False,
) -> T.Compose:
    """HigherHRNet training augmentation (docs/reconstruction.md#higherhrnet-recipe): rotation
    U[-30, 30] deg, scale U[0.75, 1.5] of the short side, centre shift up to ``translate`` px
    per 200 px of crop (official ``MAX_TRANSLATE`` 40, i.e. 0.2 of the crop;
    ``integer_shift``: whole pixels as the official ``randint``), then flip p = 0.5.

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
                integer_shift=integer_shift,
            ),
            T.RandomFlip(flip_index, prob=flip_prob, rng=rng),
        ]
    )


class CocoBottomUpDataset(SkipBadMixin, torch.utils.data.Dataset):
    """Whole-image samples for bottom-up training / testing (HigherHRNet).

    Sample: ``image`` float32 tensor ``(3, H, W)`` (normalized), ``keypoints`` ``(N, K, 3)``
    input pixels (people that are not crowd regions), the codec's targets as tensors
    (``codec.encode(keypoints, valid_mask)``), or ``mask`` ``(H, W)`` uint8 (1 = used by the
    loss) when ``codec`` is None; ``meta`` with ``image_id``, ``path``, ``matrix`` (2x3
    original -> input), ``image_size`` (H, W) and ``flipped``.

    ``geometry`` (:class:`~fusepose.geometry.InputGeometry`, the value a model description
    holds) says how an image becomes a sample; ``input_size`` and ``resize`` are the older
    spelling of the same choice (``resize="crop"``: ``short_side`` at ``input_size``, an int or
    a square ``(S, S)``; ``resize="letterbox"``: ``letterbox`` at ``input_size``) and are
    ignored when ``geometry`` is given.

    ``short_side`` geometry: training (``train=True``) drops images without annotations
    (official HigherHRNet) and uses ``transforms`` (default :func:`bottom_up_train_transforms`)
    on ``{image, keypoints, mask}``; they must output ``S x S``. Testing uses the official
    resize (:func:`~fusepose.data.transforms.bottom_up_warp`; short side -> ``S``), then
    ``transforms`` if given.

    ``official_flip`` / ``official_mask`` / ``official_shift``: the official HigherHRNet target
    conventions (:meth:`AssociativeEmbeddingCodec.encode
    <fusepose.codecs.associative_embedding.AssociativeEmbeddingCodec.encode>`, integer shift
    of :func:`bottom_up_train_transforms`); off by default.

    ``letterbox`` geometry ``(H, W)``: in training *and* testing the whole image is first fitted
    into ``H x W`` (:func:`letterbox_matrix`, the Predictor's warp for a fixed ``(H, W)``
    input), so every person is seen at the scale used at test time; the training transforms
    then act on that ``H x W`` view (identity when augmentation is off).
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
        official_flip: bool = False,
        official_mask: bool = False,
        official_shift: bool = False,
        geometry: InputGeometry | None = None,
    ):
        self.index = load_coco_keypoints(ann_file)
        self.official_flip = bool(official_flip)
        self.official_mask = bool(official_mask)
        self.skeleton = resolve_skeleton(skeleton, self.index)
        self.image_dir = Path(image_dir)
        self.codec = codec
        if geometry is None:
            geometry = _geometry_of(ann_file, input_size, resize)
        if geometry.mode not in BOTTOM_UP.geometry_modes:
            raise ConfigError(
                f"{ann_file}: a bottom-up dataset takes a {' or '.join(BOTTOM_UP.geometry_modes)}"
                f" geometry, not {geometry.mode!r}"
            )
        self.geometry = geometry
        self.resize = "letterbox" if geometry.fixed else "crop"  # the older name of the choice
        self.input_hw = geometry.size
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
                integer_shift=official_shift,
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
        check_image_size(img, self.index.images[iid], path, self.index.path)
        h, w = img.shape[:2]
        ignore = np.zeros((h, w), np.uint8)
        people = []
        for ann in self.index.annotations[iid]:
            if ann.iscrowd or ann.num_labelled == 0:
                ignore |= region_mask(ann, h, w, self.index.path)
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
        # letterbox: the same whole-image warp in training and testing; short side: at test
        # time only (training crops at random from the original image)
        fixed = self.geometry.fixed
        if fixed or not self.train:
            M, size = self.geometry.warp(orig_hw)
            s["image"] = T.apply_affine(s["image"], M, size)
            if fixed:
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
            official: dict[str, bool] = {}
            if self.official_flip or self.official_mask:  # only then (any codec works without)
                official = dict(flipped=bool(s.get("flipped", False)),
                                official_flip=self.official_flip, official_mask=self.official_mask)  # fmt: skip
            out.update(to_tensors(self.codec.encode(s["keypoints"], s["mask"], **official)))
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


def _geometry_of(ann_file: Any, input_size: int | Sequence[int], resize: str) -> InputGeometry:
    """The geometry the older ``input_size`` / ``resize`` keywords name (same checks and
    messages as before ``geometry`` existed)."""
    if resize not in ("crop", "letterbox"):
        raise DataError(f"{ann_file}: resize must be 'crop' or 'letterbox', got {resize!r}")
    if isinstance(input_size, int):
        hw = (int(input_size), int(input_size))
    else:
        hw = (int(input_size[0]), int(input_size[1]))
    if resize == "crop" and hw[0] != hw[1]:
        raise DataError(f"{ann_file}: resize='crop' needs a square input_size, got {hw}")
    return BOTTOM_UP.geometry(hw, resize)
