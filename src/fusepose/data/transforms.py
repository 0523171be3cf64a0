"""Image and keypoint transforms (numpy + OpenCV).

Conventions (see docs/design.md):

* Images are OpenCV BGR ``uint8`` arrays ``(H, W, 3)`` until :func:`normalize` turns them into
  RGB ``float32 (3, H, W)`` with ImageNet mean/std.
* Every geometric operation is a 2x3 affine matrix ``M`` (source frame -> destination frame)
  applied to pixels with ``cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR)`` and to points
  with :func:`affine_points`. Predictions go back with ``cv2.invertAffineTransform(M)``.
* Points are pixel coordinates with pixel centres on integers (COCO annotation frame, 0-based).
* ``scale_wh`` is the size in *source pixels* of the region that maps onto the whole output
  (HRNet's ``scale * 200``; there is no ``/200`` anywhere in this package).
* Positive ``rot_deg`` turns the image content counter-clockwise on screen (the HRNet sign).

Training augmentations are small callables acting on a *sample dict*::

    image      (H, W, 3) uint8 BGR, the current frame
    keypoints  (N, K, 3) float [x, y, v] in current-frame pixels (v = 0: unlabelled)
    mask       (H, W) uint8, 1 = pixel used by the loss, 0 = ignored (optional)
    matrix     (2, 3) float64, original image -> current frame (composed by every geometric op)
    center     (2,) and scale (2,)  current crop centre / size in current-frame pixels
                                     (top-down samples only, optional)

Geometric transforms update all of them with the same matrix, so
``affine_points(original_keypoints, sample["matrix"])`` always equals ``sample["keypoints"]``
and ``cv2.invertAffineTransform(sample["matrix"])`` maps predictions back to the original image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from fusepose.geometry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    affine_points,
    bottom_up_center_scale,
    bottom_up_warp,
    box_to_center_scale,
    denormalize,
    get_affine_matrix,
    invert_affine,
    letterbox_matrix,
    normalize,
    top_down_warp,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ColorJitter",
    "Compose",
    "HalfBody",
    "RandomAffine",
    "RandomFlip",
    "TopDownAffine",
    "affine_points",
    "apply_affine",
    "bottom_up_center_scale",
    "bottom_up_warp",
    "box_to_center_scale",
    "compose_affine",
    "denormalize",
    "flip_matrix",
    "get_affine_matrix",
    "invert_affine",
    "letterbox_matrix",
    "normalize",
    "top_down_warp",
]

Sample = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Pixel values


# --------------------------------------------------------------------------------------------
# Affine matrices


def _to3(M: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(M, dtype=np.float64), [0.0, 0.0, 1.0]])


def compose_affine(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of ``first`` followed by ``second`` (``second @ first``)."""
    return (_to3(second) @ _to3(first))[:2]


def flip_matrix(width: int) -> np.ndarray:
    """Horizontal mirror of a ``width``-pixel-wide frame: ``x -> width - 1 - x``.

    This is exactly what ``cv2.flip(img, 1)`` (``img[:, ::-1]``) does to pixel centres.
    """
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def apply_affine(
    img: np.ndarray,
    M: np.ndarray,
    size_wh: Sequence[int],
    flags: int = cv2.INTER_LINEAR,
    border_value: float | tuple[float, ...] = 0,
) -> np.ndarray:
    """``cv2.warpAffine`` with the package's conventions (constant border)."""
    return cv2.warpAffine(
        img,
        np.asarray(M, dtype=np.float64),
        (int(size_wh[0]), int(size_wh[1])),
        flags=flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


# --------------------------------------------------------------------------------------------
# Sample-dict augmentations


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    """The given generator, or a fresh one drawn from numpy's global state.

    PyTorch seeds numpy's global state differently in every DataLoader worker, so the default
    (``rng=None``) gives distinct, ``torch.manual_seed``-reproducible augmentations per worker.
    An explicit generator is copied into every worker (identical streams): use it for
    single-process loading and tests.
    """
    if rng is not None:
        return rng
    return np.random.default_rng(np.random.randint(0, 2**31 - 1))


def _warp_sample(sample: Sample, M: np.ndarray, size_wh: tuple[int, int]) -> Sample:
    """Warp image, mask and keypoints of ``sample`` with ``M`` (current -> new frame)."""
    sample["image"] = apply_affine(sample["image"], M, size_wh)
    mask = sample.get("mask")
    if mask is not None:
        # As official HigherHRNet: bilinear warp of 0/255, threshold at half; outside = ignored.
        warped = apply_affine(mask.astype(np.uint8) * 255, M, size_wh)
        sample["mask"] = (warped > 127).astype(np.uint8)
    if sample.get("keypoints") is not None:
        sample["keypoints"] = affine_points(sample["keypoints"], M)
    sample["matrix"] = compose_affine(M, sample.get("matrix", np.eye(3)[:2]))
    return sample


class Compose:
    """Apply transforms in order: ``Compose([t1, t2])(sample) == t2(t1(sample))``."""

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomFlip:
    """Horizontal flip with probability ``prob`` of the current frame.

    Flips image and mask (``cv2.flip``), maps keypoints with :func:`flip_matrix` and permutes
    them with ``flip_index`` (keypoint k of the flipped sample is keypoint ``flip_index[k]`` of
    the original), mirrors ``center`` when present (top-down, HRNet order: flip before the crop)
    and composes the flip into ``matrix``.
    """

    def __init__(
        self, flip_index: Sequence[int], prob: float = 0.5, rng: np.random.Generator | None = None
    ):
        self.flip_index = np.asarray(flip_index, dtype=np.int64)
        self.prob = float(prob)
        self.rng = rng

    def __call__(self, sample: Sample) -> Sample:
        if _rng(self.rng).random() >= self.prob:
            return sample
        return self.apply(sample)

    def apply(self, sample: Sample) -> Sample:
        """Flip unconditionally."""
        width = sample["image"].shape[1]
        F = flip_matrix(width)
        sample["image"] = cv2.flip(sample["image"], 1)
        if sample.get("mask") is not None:
            sample["mask"] = cv2.flip(sample["mask"], 1)
        kpts = sample.get("keypoints")
        if kpts is not None:
            if kpts.shape[-2] != len(self.flip_index):
                raise ValueError(
                    f"RandomFlip: flip_index has {len(self.flip_index)} entries but keypoints "
                    f"have K={kpts.shape[-2]}"
                )
            sample["keypoints"] = affine_points(kpts, F)[..., self.flip_index, :]
        if sample.get("center") is not None:
            sample["center"] = affine_points(np.asarray(sample["center"], np.float64), F)
        sample["matrix"] = compose_affine(F, sample.get("matrix", np.eye(3)[:2]))
        sample["flipped"] = not sample.get("flipped", False)
        return sample


class RandomAffine:
    """Random rotation / scale / translation followed by the warp to ``output_size (H, W)``.

    Bottom-up (docs/reconstruction.md#higherhrnet-recipe; the default arguments): the crop is
    centred on the image centre, its height is the image's short side (``scale_type="short"``,
    or long side) times ``s ~ U[scale_range]``, rotated by ``U[-max_rotation, max_rotation]``
    degrees, and its centre shifted by up to ``max_shift`` times the crop size in each axis
    (official: +-40 * s with s = crop/200, i.e. 0.2): ``U(-m, m)`` current-frame pixels, or
    with ``integer_shift`` the official ``numpy.random.randint(int(-m), int(m))`` (integers,
    the upper bound excluded).

    Top-down (docs/reconstruction.md#sfm-recipe): when the sample carries ``center`` and
    ``scale`` (from the box, see :func:`box_to_center_scale`), that region is the base crop
    instead; use e.g. ``scale_range=(0.75, 1.25)``, ``max_shift=0``.  ``rot_prob`` is the
    probability of rotating at all (HRNet uses 0.6).
    """

    def __init__(
        self,
        output_size: int | Sequence[int] = 512,
        max_rotation: float = 30.0,
        scale_range: Sequence[float] = (0.75, 1.5),
        max_shift: float = 0.2,
        scale_type: str = "short",
        rot_prob: float = 1.0,
        rng: np.random.Generator | None = None,
        integer_shift: bool = False,
    ):
        size = (output_size, output_size) if isinstance(output_size, int) else output_size
        self.out_h, self.out_w = int(size[0]), int(size[1])
        if scale_type not in ("short", "long"):
            raise ValueError(f"scale_type must be 'short' or 'long', got {scale_type!r}")
        self.max_rotation = float(max_rotation)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.max_shift = float(max_shift)
        self.scale_type = scale_type
        self.rot_prob = float(rot_prob)
        self.rng = rng
        self.integer_shift = bool(integer_shift)

    def sample_params(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, float]:
        """Draw ``(center (2,), scale_wh (2,), rot_deg)`` in current-frame pixels."""
        rng = _rng(self.rng)
        aug_scale = rng.uniform(*self.scale_range)
        rot = 0.0
        if rng.random() < self.rot_prob:
            rot = rng.uniform(-self.max_rotation, self.max_rotation)
        if sample.get("center") is not None and sample.get("scale") is not None:
            center = np.asarray(sample["center"], dtype=np.float64).copy()
            scale_wh = np.asarray(sample["scale"], dtype=np.float64) * aug_scale
        else:
            h, w = sample["image"].shape[:2]
            center = np.array([w / 2.0, h / 2.0])
            base = min(h, w) if self.scale_type == "short" else max(h, w)
            crop_h = base * aug_scale
            scale_wh = np.array([crop_h * self.out_w / self.out_h, crop_h])
        if self.max_shift > 0:
            if self.integer_shift:
                m = self.max_shift * scale_wh
                for a in range(2):
                    lo, hi = int(-m[a]), int(m[a])  # int(): toward zero, as numpy's randint
                    center[a] += int(rng.integers(lo, hi)) if hi > lo else 0
            else:
                center += rng.uniform(-self.max_shift, self.max_shift, size=2) * scale_wh
        return center, scale_wh, rot

    def __call__(self, sample: Sample) -> Sample:
        center, scale_wh, rot = self.sample_params(sample)
        M = get_affine_matrix(center, scale_wh, rot, (self.out_w, self.out_h))
        sample = _warp_sample(sample, M, (self.out_w, self.out_h))
        if sample.get("center") is not None:
            sample["center"] = np.array([self.out_w / 2.0, self.out_h / 2.0])
            sample["scale"] = np.array([float(self.out_w), float(self.out_h)])
        return sample


class TopDownAffine:
    """Deterministic top-down crop of ``sample['center'], sample['scale']`` to ``input_size``
    ``(H, W)`` (the test-time warp; :class:`RandomAffine` is its random counterpart)."""

    def __init__(self, input_size: Sequence[int] = (256, 192)):
        self.out_h, self.out_w = int(input_size[0]), int(input_size[1])

    def __call__(self, sample: Sample) -> Sample:
        M = get_affine_matrix(sample["center"], sample["scale"], 0.0, (self.out_w, self.out_h))
        sample = _warp_sample(sample, M, (self.out_w, self.out_h))
        sample["center"] = np.array([self.out_w / 2.0, self.out_h / 2.0])
        sample["scale"] = np.array([float(self.out_w), float(self.out_h)])
        return sample


class HalfBody:
    """HRNet half-body augmentation for top-down training (acts on ``center`` / ``scale``).

    With probability ``prob``, when a person has more than ``min_joints`` labelled joints, the
    crop is replaced by the box around either the upper-body joints (``upper_body`` indices) or
    the lower-body joints (each with probability 1/2, falling back to the other half when one
    has fewer than 3 joints), grown to ``aspect_ratio`` (W / H) and padded by ``padding``.
    Keypoints must be ``(1, K, 3)`` or ``(K, 3)`` in the frame of ``center``.
    """

    def __init__(
        self,
        upper_body: Sequence[int],
        aspect_ratio: float = 192 / 256,
        prob: float = 0.3,
        min_joints: int = 8,
        padding: float = 1.5,
        rng: np.random.Generator | None = None,
    ):
        self.upper_body = set(int(i) for i in upper_body)
        self.aspect_ratio = float(aspect_ratio)
        self.prob = float(prob)
        self.min_joints = int(min_joints)
        self.padding = float(padding)
        self.rng = rng

    def __call__(self, sample: Sample) -> Sample:
        rng = _rng(self.rng)
        kpts = np.asarray(sample["keypoints"]).reshape(-1, 3)
        labelled = kpts[:, 2] > 0
        if labelled.sum() <= self.min_joints or rng.random() >= self.prob:
            return sample
        idx = np.nonzero(labelled)[0]
        upper = [i for i in idx if i in self.upper_body]
        lower = [i for i in idx if i not in self.upper_body]
        if rng.random() < 0.5 and len(upper) > 2:
            chosen = upper
        else:
            chosen = lower if len(lower) > 2 else upper
        if len(chosen) < 2:
            return sample
        pts = kpts[chosen, :2]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        box = (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
        _, scale_wh = box_to_center_scale(box, self.aspect_ratio, self.padding)
        if not np.all(scale_wh > 0):
            return sample
        sample["center"] = pts.mean(axis=0)
        sample["scale"] = scale_wh
        sample["half_body"] = True
        return sample


class ColorJitter:
    """Random brightness, contrast and saturation (factors ``U[1-x, 1+x]``), in random order,
    on the BGR uint8 image (OpenCV). Geometry is untouched."""

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        rng: np.random.Generator | None = None,
    ):
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.saturation = float(saturation)
        self.rng = rng

    def __call__(self, sample: Sample) -> Sample:
        rng = _rng(self.rng)
        img = sample["image"].astype(np.float32)
        ops = []
        if self.brightness > 0:
            ops.append(("b", rng.uniform(1 - self.brightness, 1 + self.brightness)))
        if self.contrast > 0:
            ops.append(("c", rng.uniform(1 - self.contrast, 1 + self.contrast)))
        if self.saturation > 0:
            ops.append(("s", rng.uniform(1 - self.saturation, 1 + self.saturation)))
        for i in rng.permutation(len(ops)):
            kind, f = ops[i]
            if kind == "b":
                img = img * f
            elif kind == "c":
                gray_mean = cv2.cvtColor(
                    np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY
                ).mean()
                img = (img - gray_mean) * f + gray_mean
            else:
                gray = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
                img = (img - gray[:, :, None]) * f + gray[:, :, None]
            img = np.clip(img, 0, 255)
        sample["image"] = np.rint(img).astype(np.uint8)
        return sample
