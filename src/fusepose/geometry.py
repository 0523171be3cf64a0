"""Input geometry: how an image becomes a network input, and how points come back.

Every warp is a 2x3 affine matrix ``M`` (original -> input pixels) applied to pixels with
``cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR)`` and to points with
:func:`affine_points`; predictions go back with :func:`invert_points`. Pixel centres are on
integers (COCO annotation frame, 0-based). ``scale_wh`` is the size in *source pixels* of the
region that maps onto the whole output (HRNet's ``scale * 200``).

:class:`InputGeometry` is the one value that says which warp a model expects:

- ``short_side`` (bottom-up, HigherHRNet test resize): short side -> ``size[0]`` (x scale),
  long side scaled alike and rounded up to a multiple of 64, about the image centre;
- ``letterbox`` (bottom-up, fixed shape): the whole image fitted into ``(H, W)`` and centred;
- ``crop`` (top-down): each person box expanded to the ``(H, W)`` aspect, padded 1.25x.

It is stored in checkpoints and ONNX metadata (:meth:`InputGeometry.to_dict`), so a model file
knows the input it was trained and validated with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fusepose.errors import ConfigError, DataError

__all__ = [
    "GEOMETRY_MODES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InputGeometry",
    "affine_points",
    "bottom_up_center_scale",
    "bottom_up_warp",
    "box_resize_matrix",
    "box_to_center_scale",
    "denormalize",
    "get_affine_matrix",
    "invert_affine",
    "invert_points",
    "letterbox_matrix",
    "normalize",
    "top_down_warp",
    "warp_image",
]

GEOMETRY_MODES = ("short_side", "letterbox", "crop")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # RGB
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)  # RGB
# HigherHRNet rounds the long side of a short-side resize up to this multiple.
SHORT_SIDE_MULTIPLE = 64


# ------------------------------------------------------------------------------ pixels


def normalize(img_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 ``(H, W, 3)`` -> RGB float32 ``(3, H, W)``, ImageNet mean/std on [0, 1]."""
    if img_bgr.ndim != 3 or img_bgr.shape[2] != 3:
        raise ValueError(f"normalize expects an (H, W, 3) BGR image, got shape {img_bgr.shape}")
    rgb = img_bgr[:, :, ::-1].astype(np.float32) / 255.0
    rgb = (rgb - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def denormalize(chw: Any) -> np.ndarray:
    """Inverse of :func:`normalize`: RGB float ``(3, H, W)`` (numpy or torch) -> BGR uint8
    ``(H, W, 3)``, rounded and clipped to [0, 255]."""
    if hasattr(chw, "detach"):
        chw = chw.detach().cpu().numpy()
    chw = np.asarray(chw, dtype=np.float32)
    if chw.ndim != 3 or chw.shape[0] != 3:
        raise ValueError(f"denormalize expects a (3, H, W) array, got shape {chw.shape}")
    rgb = chw.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    bgr = np.clip(np.rint(rgb[:, :, ::-1] * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(bgr)


def warp_image(image: np.ndarray, M: np.ndarray, size_wh: Sequence[int]) -> np.ndarray:
    """The network input of one warp: ``(3, H, W)`` float32 from a BGR uint8 image."""
    w, h = int(size_wh[0]), int(size_wh[1])
    warped = cv2.warpAffine(image, np.asarray(M, np.float64), (w, h), flags=cv2.INTER_LINEAR)
    return normalize(warped)


# ------------------------------------------------------------------------------ matrices


def affine_points(pts: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points.

    pts: ``(..., D)`` with ``D >= 2``; the first two columns are ``x, y`` and are mapped, any
    further columns (visibility, score) are copied unchanged. Returns float64 of the same shape.
    """
    pts = np.asarray(pts, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    if pts.shape[-1] < 2:
        raise ValueError(f"affine_points expects (..., 2) points, got shape {pts.shape}")
    if M.shape != (2, 3):
        raise ValueError(f"affine_points expects a (2, 3) matrix, got shape {M.shape}")
    out = pts.copy()
    out[..., :2] = pts[..., :2] @ M[:, :2].T + M[:, 2]
    return out


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (``cv2.invertAffineTransform``), float64."""
    return cv2.invertAffineTransform(np.asarray(M, dtype=np.float64))


def invert_points(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` input-pixel points back to original pixels with the inverse of ``M``."""
    return affine_points(points, invert_affine(M))


def get_affine_matrix(
    center: Sequence[float],
    scale_wh: Sequence[float] | float,
    rot_deg: float,
    output_size_wh: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """HRNet-style crop matrix (closed form of HRNet's ``get_affine_transform``).

    The source region centred at ``center + shift * scale_wh`` whose *width* is ``scale_wh[0]``
    source pixels is rotated by ``rot_deg`` (positive: content turns counter-clockwise on
    screen, the HRNet sign) and scaled isotropically by ``output_size_wh[0] / scale_wh[0]`` onto
    the output of size ``output_size_wh = (W, H)``, its centre landing on ``(W / 2, H / 2)``.

    Returns the 2x3 float64 matrix source -> output, or output -> source when ``inv``.
    """
    sw, sh = np.broadcast_to(np.asarray(scale_wh, dtype=np.float64), (2,))
    out_w, out_h = float(output_size_wh[0]), float(output_size_wh[1])
    if not (sw > 0 and sh > 0 and out_w > 0 and out_h > 0):
        raise DataError(
            f"get_affine_matrix needs positive sizes, got scale {scale_wh}, output {output_size_wh}"
        )
    src_c = np.asarray(center, dtype=np.float64) + np.asarray(shift, dtype=np.float64) * (sw, sh)
    dst_c = np.array([out_w * 0.5, out_h * 0.5])
    s = out_w / sw
    r = math.radians(rot_deg)
    cs, sn = math.cos(r), math.sin(r)
    if not inv:
        lin = s * np.array([[cs, sn], [-sn, cs]])
        return np.hstack([lin, (dst_c - lin @ src_c)[:, None]])
    lin = (1.0 / s) * np.array([[cs, -sn], [sn, cs]])
    return np.hstack([lin, (src_c - lin @ dst_c)[:, None]])


def letterbox_matrix(image_hw: Sequence[int], input_hw: Sequence[int]) -> np.ndarray:
    """2x3 affine (original -> input pixels) fitting the whole image into ``input_hw (H, W)``:
    uniform scale ``min(H_in / H, W_in / W)``, centred, the rest zero padding."""
    h, w = float(image_hw[0]), float(image_hw[1])
    h_in, w_in = float(input_hw[0]), float(input_hw[1])
    if h <= 0 or w <= 0:
        raise DataError(f"letterbox needs a non-empty image, got size {h:g}x{w:g}")
    s = min(h_in / h, w_in / w)
    return np.array([[s, 0.0, (w_in - s * w) / 2.0], [0.0, s, (h_in - s * h) / 2.0]])


def box_resize_matrix(box_xywh: Sequence[float], output_size_wh: Sequence[int]) -> np.ndarray:
    """2x3 affine (original -> output pixels) resizing the box ``[x, y, w, h]`` (pixel edges:
    the box covers pixels ``x .. x + w - 1``) onto the whole ``(W, H)`` output, each axis on its
    own, with half-pixel centres as ``cv2.resize`` (``x_out + 0.5 = (x - x0 + 0.5) W / w``)."""
    x0, y0, w, h = (float(v) for v in box_xywh)
    out_w, out_h = float(output_size_wh[0]), float(output_size_wh[1])
    if not (w > 0 and h > 0 and out_w > 0 and out_h > 0):
        raise ValueError(f"box_resize_matrix needs positive sizes, got {box_xywh}, {output_size_wh}")
    sx, sy = out_w / w, out_h / h
    return np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])


def box_to_center_scale(
    box_xywh: Sequence[float], aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """HRNet ``_box2cs`` in pixels: box ``[x, y, w, h]`` (original pixels) -> ``center (2,)``
    and ``scale_wh (2,)`` grown to ``aspect_ratio = W / H`` (never shrunk) and times ``padding``."""
    x, y, w, h = (float(v) for v in box_xywh)
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


def top_down_warp(
    box_xywh: Sequence[float],
    input_size: Sequence[int] = (256, 192),
    padding: float = 1.25,
    rot: float = 0.0,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-down crop matrix for one person box, keeping the aspect ratio.

    box_xywh: ``[x, y, w, h]`` in original-image pixels. input_size: ``(H, W)`` of the network
    input. ``scale`` multiplies the padded box size (augmentation), ``rot`` in degrees.
    Returns ``(M (2, 3) original -> input, center (2,), scale_wh (2,))`` where ``scale_wh`` is
    the size of the cropped region in original pixels (before ``scale``).
    """
    in_h, in_w = int(input_size[0]), int(input_size[1])
    center, scale_wh = box_to_center_scale(box_xywh, in_w / in_h, padding)
    M = get_affine_matrix(center, scale_wh * scale, rot, (in_w, in_h))
    return M, center, scale_wh


def bottom_up_center_scale(
    image_hw: Sequence[int],
    input_size: int = 512,
    scale: float = 1.0,
    multiple: int = SHORT_SIDE_MULTIPLE,
    min_scale: float = 1.0,
) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Official HigherHRNet ``get_multi_scale_size`` in pixels.

    Returns ``((W_in, H_in), center (2,), scale_wh (2,))``: the short side goes to
    ``input_size * scale`` (rounded up to ``multiple`` at ``min_scale``), the long side follows
    with the same factor and is rounded up to a multiple of ``multiple`` *at the smallest
    scale* (so every scale of a multi-scale test is an exact multiple of the smallest one);
    ``center`` is the image centre rounded as in the official code.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    if h <= 0 or w <= 0:
        raise DataError(f"bottom_up_warp needs a non-empty image, got size {h}x{w}")
    m = int(multiple)
    center = np.array([int(w / 2.0 + 0.5), int(h / 2.0 + 0.5)], dtype=np.float64)
    min_input = int((min_scale * input_size + m - 1) // m * m)
    if w < h:
        w_res = int(min_input * scale / min_scale)
        h_res = int(int((min_input / w * h + m - 1) // m * m) * scale / min_scale)
        scale_wh = np.array([w, h_res / w_res * w], dtype=np.float64)
    else:
        h_res = int(min_input * scale / min_scale)
        w_res = int(int((min_input / h * w + m - 1) // m * m) * scale / min_scale)
        scale_wh = np.array([w_res / h_res * h, h], dtype=np.float64)
    return (w_res, h_res), center, scale_wh


def bottom_up_warp(
    image_hw: Sequence[int],
    input_size: int = 512,
    scale: float = 1.0,
    multiple: int = SHORT_SIDE_MULTIPLE,
    min_scale: float = 1.0,
) -> tuple[np.ndarray, tuple[int, int]]:
    """HigherHRNet test-time resize (docs/reconstruction.md#higherhrnet-inference, step 1).

    image_hw: ``(H, W)`` of the original image. Short side -> ``input_size * scale``, long side
    scaled by the same factor and rounded up to a multiple of ``multiple``, an affine warp about
    the image centre. ``min_scale`` is the smallest scale of a multi-scale test (official
    ``min(TEST.SCALE_FACTOR)``; 1.0 for single scale).
    Returns ``(M (2, 3) original -> input pixels, (W_in, H_in))``.
    """
    size_wh, center, scale_wh = bottom_up_center_scale(
        image_hw, input_size, scale, multiple, min_scale
    )
    return get_affine_matrix(center, scale_wh, 0.0, size_wh), size_wh


# ------------------------------------------------------------------------------ geometry value


@dataclass(frozen=True)
class InputGeometry:
    """Which warp turns an image into a network input.

    mode: ``short_side`` | ``letterbox`` (bottom-up) or ``crop`` (top-down).
    size: ``(H, W)`` in input pixels. ``short_side`` uses ``H`` as the short side (``W`` is
        kept equal to it; the long side follows the image); ``letterbox`` and ``crop`` produce
        exactly ``H x W``.
    """

    mode: str
    size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.mode not in GEOMETRY_MODES:
            raise ConfigError(f"input geometry mode {self.mode!r}: use one of {GEOMETRY_MODES}")
        try:
            size = tuple(int(v) for v in self.size)
        except (TypeError, ValueError, OverflowError):
            size = ()
        if len(size) != 2 or min(size) <= 0:
            shown = list(self.size) if isinstance(self.size, list | tuple) else self.size
            raise ConfigError(f"input size {shown!r}: expected two positive ints (H, W)")
        object.__setattr__(self, "size", size)

    # -------------------------------------------------------------- constructors
    @classmethod
    def short_side(cls, side: int) -> InputGeometry:
        return cls("short_side", (int(side), int(side)))

    @classmethod
    def from_dict(cls, data: Any) -> InputGeometry:
        """Inverse of :meth:`to_dict` (``{"mode", "size": [H, W]}``)."""
        if isinstance(data, InputGeometry):
            return data
        if not isinstance(data, dict) or "mode" not in data or "size" not in data:
            raise ConfigError(f"input geometry {data!r}: expected {{'mode', 'size': [H, W]}}")
        return cls(str(data["mode"]), tuple(data["size"]))

    @classmethod
    def of_mode(cls, mode: str, size: Sequence[int] | int) -> InputGeometry:
        """``mode`` at ``size`` (H, W) or one int (square); ``short_side`` takes ``size[0]``
        as the short side. The family's choice of mode: ``fusepose.family.Family.geometry``."""
        hw = _hw(size)
        return cls.short_side(hw[0]) if mode == "short_side" else cls(mode, hw)

    def with_size(self, size: Sequence[int] | int) -> InputGeometry:
        """The same mode at another size; one int = short side / square."""
        if isinstance(size, int | np.integer):
            return InputGeometry(self.mode, (int(size), int(size)))
        vals = [int(v) for v in size]
        if self.mode == "short_side" and len(vals) == 2 and vals[0] != vals[1]:
            raise ConfigError(
                f"input size {vals}: the short-side resize takes one size; a fixed H x W input "
                "is the letterbox geometry (resize='letterbox')"
            )
        return InputGeometry(self.mode, _hw(vals))

    # -------------------------------------------------------------- use
    @property
    def fixed(self) -> bool:
        """True when every input has the same shape (``letterbox`` and ``crop``)."""
        return self.mode != "short_side"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "size": [int(self.size[0]), int(self.size[1])]}

    def describe(self) -> str:
        h, w = self.size
        if self.mode == "short_side":
            return f"short side {h} (long side to a multiple of {SHORT_SIDE_MULTIPLE})"
        return f"{self.mode} {h}x{w}"

    def warp(
        self, image_hw: Sequence[int], scale: float = 1.0, min_scale: float = 1.0
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """Whole-image warp (bottom-up): ``(M (2, 3) original -> input, (W_in, H_in))``.

        ``scale`` / ``min_scale``: multi-scale test (``short_side`` only; the official sizes,
        every scale aligned to the smallest)."""
        if self.mode == "short_side":
            return bottom_up_warp(image_hw, self.size[0], scale=scale, min_scale=min_scale)
        if scale != 1.0:
            raise ConfigError(f"multi-scale test needs the short_side geometry, not {self.mode}")
        if self.mode == "letterbox":
            h_in, w_in = self.size
            return letterbox_matrix(image_hw, self.size), (w_in, h_in)
        raise ConfigError("a 'crop' geometry warps person boxes: use crop_matrix(box)")

    def crop_matrix(self, box_xywh: Sequence[float]) -> np.ndarray:
        """Top-down crop (``crop`` mode): ``M (2, 3)`` original -> input for one person box."""
        return top_down_warp(box_xywh, self.size)[0]


def _hw(size: Any) -> tuple[int, int]:
    vals = [int(v) for v in np.atleast_1d(np.asarray(size))]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) <= 0:
        raise ConfigError(f"input size {size!r}: expected (H, W) of positive ints")
    return vals[0], vals[1]
