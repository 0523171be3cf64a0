"""ImageNet-style classification data: an ImageFolder dataset and its standard transforms.

``root/<class>/<image>``: the classes are the sorted sub-folder names (label = index), the
samples every image file below a class folder, sorted (torchvision's ``ImageFolder`` order).
Images are read with :func:`fusepose.data.read_image` (EXIF orientation ignored, as PIL, the
reader of torchvision's ImageFolder and of the official HRNet-Image-Classification, does).

Transforms act on BGR uint8 images and are one affine warp each (docs/design.md):

- :class:`RandomResizedCrop` (training): a box of ``U[scale]`` of the image area and
  log-uniform aspect ``ratio`` resized to ``size x size`` (torchvision's algorithm: ten tries,
  then the central crop with the ratio clamped), then a horizontal flip with ``flip_prob``.
- :class:`CenterCrop` (validation): the central square of ``crop_fraction`` of the short side
  resized to ``size`` (``Resize(size / 0.875)`` + ``CenterCrop(size)`` in one warp).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fusepose.data.io import read_image
from fusepose.data.transforms import _rng, apply_affine
from fusepose.errors import DataError
from fusepose.geometry import box_resize_matrix, normalize

__all__ = ["IMAGE_EXTENSIONS", "CenterCrop", "ImageFolderDataset", "RandomResizedCrop"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class RandomResizedCrop:
    """Random crop box -> ``size x size`` (bilinear), then a flip with ``flip_prob``.

    ``scale``: range of the box area as a fraction of the image area; ``ratio``: range of the
    box aspect (W / H), drawn log-uniformly. ``rng``: a generator, or None to draw from numpy's
    global state (re-seeded per sample by the trainer's ``SeededDataset``).
    """

    def __init__(
        self,
        size: int,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.size = int(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip_prob = float(flip_prob)
        self.rng = rng

    def box(self, hw: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
        """``[x, y, w, h]`` (integer pixels) of the crop in an ``(H, W)`` image."""
        h, w = hw
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch
        aspect = w / h
        if aspect < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif aspect > self.ratio[1]:
            cw, ch = int(round(h * self.ratio[1])), h
        else:
            cw, ch = w, h
        return (w - cw) // 2, (h - ch) // 2, cw, ch

    def __call__(self, img: np.ndarray) -> np.ndarray:
        rng = _rng(self.rng)
        M = box_resize_matrix(self.box(img.shape[:2], rng), (self.size, self.size))
        out = apply_affine(img, M, (self.size, self.size))
        if rng.random() < self.flip_prob:
            out = cv2.flip(out, 1)
        return out


class CenterCrop:
    """The central square of ``crop_fraction`` of the short side -> ``size x size``."""

    def __init__(self, size: int, crop_fraction: float = 0.875) -> None:
        if not 0 < crop_fraction <= 1:
            raise DataError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.size = int(size)
        self.crop_fraction = float(crop_fraction)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        side = min(h, w) * self.crop_fraction
        box = ((w - side) / 2, (h - side) / 2, side, side)
        return apply_affine(img, box_resize_matrix(box, (self.size, self.size)), (self.size,) * 2)


def _class_folders(root: Path) -> list[str]:
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    return names


class ImageFolderDataset(Dataset):
    """Samples ``{"image": (3, S, S) float32 normalized, "label": int, "meta": {"path"}}``.

    ``classes``: the class names in label order (the training set's, for a validation set);
    default: the sorted sub-folders of ``root``. A validation folder with a class the list
    lacks is an error. ``max_images``: keep every n-th sample so that at most this many
    remain, all classes kept (0 = all).
    """

    def __init__(
        self,
        root: str | Path,
        transform: Any,
        classes: Sequence[str] | None = None,
        max_images: int = 0,
    ) -> None:
        self.root = Path(root)
        found = _class_folders(self.root)
        self.classes = list(classes) if classes is not None else found
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise DataError(
                f"{self.root}: class folders {unknown[:3]} are not among the training classes"
            )
        samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            if not folder.is_dir():
                continue
            files = sorted(
                p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            )
            samples += [(p, label) for p in files]
        if not samples:
            raise DataError(f"{self.root}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
        if max_images and len(samples) > max_images:
            step = len(samples) / max_images
            samples = [samples[int(i * step)] for i in range(max_images)]
        self.samples = samples
        self.transform = transform

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.samples[i]
        img = self.transform(read_image(path))
        return {
            "image": torch.from_numpy(normalize(img)),
            "label": int(label),
            "meta": {"path": str(path)},
        }
