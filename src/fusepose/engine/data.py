"""Training data from a config: the dataset of the model family, seeded per sample.

    desc = description_from_config(config_to_dict(cfg))
    codec = target_codec(desc, cfg)
    dataset = build_dataset(cfg, desc, codec, train=True, rng=rng)
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from fusepose.codecs.pipelines import build_codec
from fusepose.data.coco import COCO_DATASETS
from fusepose.data.mpii import MpiiDataset
from fusepose.description import ModelDescription
from fusepose.engine.config import Config, DataConfig
from fusepose.errors import ConfigError
from fusepose.family import BOTTOM_UP, TOP_DOWN, Family

__all__ = ["SeededDataset", "build_dataset", "target_codec", "to_device"]


class SeededDataset(Dataset):
    """Wraps a dataset so that sample ``i`` of epoch ``e`` is drawn with fixed randomness.

    Before each ``__getitem__`` the python / numpy / torch global RNGs, and the dataset's own
    ``np.random.Generator`` if given (``rng``, the one its transforms hold), are re-seeded from
    ``(seed, epoch, i)``. The augmentation of a sample is then independent of the worker, the
    process and of where the run was resumed.
    """

    def __init__(self, dataset: Dataset, seed: int, rng: np.random.Generator | None = None):
        self.dataset = dataset
        self.seed = int(seed)
        self.rng = rng
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        seq = np.random.SeedSequence([self.seed, self.epoch, int(i)])
        s = seq.generate_state(2)
        random.seed(int(s[0]))
        np.random.seed(int(s[1]))
        torch.manual_seed(int(s[0]) ^ int(s[1]))
        if self.rng is not None:
            self.rng.bit_generator.state = np.random.PCG64(seq).state
        return self.dataset[i]


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: (v if k == "meta" else to_device(v, device)) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def target_codec(desc: ModelDescription, cfg: Config) -> Any:
    """The codec that turns keypoints into the model's training targets at ``data.input_size``
    (the same codec type and parameters its description decodes with)."""
    return build_codec(desc.codec, num_keypoints=desc.num_keypoints, flip_index=desc.flip_index,
                       input_size=cfg.data.input_size)  # fmt: skip


# HigherHRNet's target conventions (data.official_*): options of the bottom-up datasets only
OFFICIAL_OPTIONS = ("official_flip", "official_mask", "official_shift")


def build_dataset(
    cfg: Config,
    desc: ModelDescription,
    codec: Any,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
) -> Dataset:
    """COCO-format (the family's, :data:`fusepose.data.coco.COCO_DATASETS`) or MPII dataset
    from ``cfg.data``, warping images with the description's geometry (``desc.geometry``, the
    one validation decodes with; built from ``data.input_size`` and ``data.resize``).

    ``rng``: the generator the training transforms draw from (re-seeded per sample by
    :class:`SeededDataset`). ``data.augment=False`` keeps the training entries and fixed-size
    crops but draws nothing at random (scale fixed at ``scale_range[0]``).
    """
    d = cfg.data
    ann = d.train_ann if train else d.val_ann
    images = d.train_images if train else d.val_images
    if not ann:
        raise ConfigError(f"data.{'train_ann' if train else 'val_ann'}: no annotation file given")
    aug = d.augment
    common: dict[str, Any] = dict(
        train=train,
        rng=rng,
        flip_prob=d.flip_prob if aug else 0.0,
        rotation=d.rotation if aug else 0.0,
        scale_range=d.scale_range if aug else (d.scale_range[0], d.scale_range[0]),
        max_images=d.max_train_images if train else d.max_val_images,
    )
    for key in OFFICIAL_OPTIONS:
        if getattr(d, key) and desc.family.needs_boxes:
            raise ConfigError(
                f"data.{key}: an option of the bottom-up (HigherHRNet) targets; the top-down "
                "datasets follow HRNet's conventions"
            )
    if d.dataset == "mpii":
        return MpiiDataset(ann, images, codec, geometry=desc.geometry, **common)
    if d.dataset != "coco":
        raise ConfigError(f"data.dataset: {d.dataset!r} is not 'coco' or 'mpii'")
    return COCO_DATASETS[desc.family](
        ann, images, codec, geometry=desc.geometry, skeleton=desc.skeleton,
        **_FAMILY_OPTIONS[desc.family](d, train), **common,
    )  # fmt: skip


def _bottom_up_options(d: DataConfig, train: bool) -> dict[str, Any]:
    options = {k: getattr(d, k) for k in OFFICIAL_OPTIONS}
    return {"translate": d.translate if d.augment else 0.0, **options}


def _top_down_options(d: DataConfig, train: bool) -> dict[str, Any]:
    return {"det_file": None if train else d.det_file,
            "half_body_prob": d.half_body_prob if d.augment else 0.0}  # fmt: skip


# family -> the data.* settings its COCO-format dataset takes besides the common ones
_FAMILY_OPTIONS: dict[Family, Any] = {BOTTOM_UP: _bottom_up_options, TOP_DOWN: _top_down_options}
