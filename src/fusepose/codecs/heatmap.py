"""Top-down single-person heatmap codec (SimpleBaseline / HRNet / Lite-HRNet protocol).

Coordinate mapping between input pixels ``x`` (0-based, pixel centres at integers, crop of
size ``W x H``) and heatmap pixels ``u`` (heatmap of size ``w x h``):

* ``unbiased=True`` (UDP, Huang et al. CVPR 2020): the first and last pixel centres of the
  input map onto the first and last pixel centres of the heatmap, so
  ``u = x * (w - 1) / (W - 1)`` and back ``x = u * (W - 1) / (w - 1)``. A horizontal flip of
  the input (``x -> W - 1 - x``) is then exactly an array flip of the heatmap
  (``u -> w - 1 - u``); ``flip_back`` needs no shift.
* ``unbiased=False`` (classic): ``u = x / s`` with stride ``s = W / w`` and back ``x = u * s``.
  An input flip maps to ``u -> w - 1/s - u``, i.e. ``1 - 1/s`` heatmap pixels from an array
  flip; ``flip_back`` compensates by the standard one-pixel shift to the right.

Encoding places an unnormalised Gaussian ``exp(-((u - mu_x)^2 + (v - mu_y)^2) / (2 sigma^2))``
at the *sub-pixel* centre ``mu`` (no rounding), so encode -> decode is consistent: with
``refine="dark"`` the Taylor step on the log-heatmap recovers ``mu`` almost exactly; with
``refine="quarter"`` the argmax plus a 0.25-pixel shift toward the higher neighbour is within
0.25 heatmap pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from fusepose.codecs.base import KeypointCodec, check_finite, to_numpy
from fusepose.errors import ConfigError, DataError

# check_finite and to_numpy moved to fusepose.codecs.base; still importable from here
__all__ = ["TopDownHeatmapCodec", "check_finite", "to_numpy"]


class TopDownHeatmapCodec(KeypointCodec):
    """Gaussian heatmap targets for a person crop and their decoding (the
    :class:`~fusepose.codecs.base.KeypointCodec` protocol: ``encode(keypoints (K, 3)) ->
    {heatmaps, target_weight}``, ``decode(heatmaps) -> (coords (B, K, 2), scores (B, K))``).

    Args:
        input_size: crop size ``(H, W)`` in input pixels.
        heatmap_size: heatmap size ``(h, w)``.
        sigma: Gaussian standard deviation in heatmap pixels.
        unbiased: UDP coordinate mapping (see module docstring).
        refine: ``"quarter"`` (argmax + quarter-pixel shift) or ``"dark"`` (DARK, Zhang et al.
            CVPR 2020: second-order Taylor expansion of the Gaussian-smoothed log heatmap).
        dark_kernel: odd Gaussian-blur kernel size of the DARK modulation.
    """

    target_keys = ("heatmaps", "target_weight")

    def __init__(
        self,
        input_size: Sequence[int] = (256, 192),
        heatmap_size: Sequence[int] = (64, 48),
        sigma: float = 2.0,
        unbiased: bool = True,
        refine: str = "quarter",
        dark_kernel: int = 11,
    ) -> None:
        if refine not in ("quarter", "dark"):
            raise ConfigError(f"refine must be 'quarter' or 'dark', got {refine!r}")
        if dark_kernel % 2 != 1:
            raise ConfigError(f"dark_kernel must be odd, got {dark_kernel}")
        if min(input_size) < 2 or min(heatmap_size) < 2:
            raise ConfigError(
                f"top-down codec: input {list(input_size)} and heatmap {list(heatmap_size)} "
                "sizes must be at least 2 x 2"
            )
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        self.refine = refine
        self.dark_kernel = int(dark_kernel)
        H, W = self.input_size
        h, w = self.heatmap_size
        if self.unbiased:
            self._scale = np.array([(w - 1) / (W - 1), (h - 1) / (H - 1)], dtype=np.float64)
        else:
            self._scale = np.array([w / W, h / H], dtype=np.float64)

    @classmethod
    def spec_kwargs(cls, kwargs, *, num_keypoints, flip_index, input_size) -> dict[str, Any]:
        """The stored parameters at the description's input size; heatmaps at stride 4 unless
        stored otherwise (K and the flip pairs come with the data)."""
        h, w = int(input_size[0]), int(input_size[1])
        return {"heatmap_size": (h // 4, w // 4), **kwargs, "input_size": (h, w)}

    # ------------------------------------------------------------------ mapping
    def to_heatmap(self, xy: np.ndarray) -> np.ndarray:
        """Input pixels ``(..., 2)`` -> heatmap pixels ``(..., 2)``."""
        return np.asarray(xy, dtype=np.float64) * self._scale

    def to_input(self, uv: np.ndarray) -> np.ndarray:
        """Heatmap pixels ``(..., 2)`` -> input pixels ``(..., 2)``."""
        return np.asarray(uv, dtype=np.float64) / self._scale

    # ------------------------------------------------------------------ encode
    def encode(self, keypoints: np.ndarray) -> dict[str, np.ndarray]:
        """Targets for one crop.

        Args:
            keypoints: ``(K, 3)`` ``[x, y, v]`` in input pixels; ``v <= 0`` means unlabelled.

        Returns:
            ``heatmaps`` ``(K, h, w)`` float32 in [0, 1] and ``target_weight`` ``(K,)`` float32
            (0 for unlabelled joints and for joints whose centre lies outside the heatmap).
        """
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 2 or kp.shape[1] < 3:
            raise DataError(f"keypoints: expected shape (K, 3), got {kp.shape}")
        hm, wt = self.encode_batch(kp[None])
        return {"heatmaps": hm[0], "target_weight": wt[0]}

    def ideal_outputs(self, keypoints: np.ndarray) -> tuple[np.ndarray]:
        """The deployed output of a perfect network for one crop's person ``keypoints (K, 3)``:
        ``(heatmaps (1, K, h, w),)``, its encoded heatmaps."""
        return (self.encode(keypoints)["heatmaps"][None],)

    def encode_batch(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``keypoints (B, K, 3)`` input pixels -> heatmaps ``(B, K, h, w)``, weights ``(B, K)``."""
        kp = np.asarray(keypoints, dtype=np.float64)
        h, w = self.heatmap_size
        mu = self.to_heatmap(kp[..., :2])  # (B, K, 2)
        inside = (
            (mu[..., 0] >= -0.5)
            & (mu[..., 0] < w - 0.5)
            & (mu[..., 1] >= -0.5)
            & (mu[..., 1] < h - 0.5)
        )
        weights = ((kp[..., 2] > 0) & inside & np.isfinite(mu).all(-1)).astype(np.float32)
        mu = np.where(weights[..., None] > 0, mu, 0.0)
        gx = np.exp(-((np.arange(w)[None, None, :] - mu[..., 0:1]) ** 2) / (2 * self.sigma**2))
        gy = np.exp(-((np.arange(h)[None, None, :] - mu[..., 1:2]) ** 2) / (2 * self.sigma**2))
        heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
        return heatmaps.astype(np.float32), weights

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints from heatmaps.

        Args:
            heatmaps: ``(B, K, h, w)`` (or ``(K, h, w)``), numpy or torch.

        Returns:
            coords ``(B, K, 2)`` in input pixels and scores ``(B, K)`` (heatmap maxima).
        """
        hm = to_numpy(heatmaps)
        squeeze = hm.ndim == 3
        if squeeze:
            hm = hm[None]
        if hm.ndim != 4:
            raise DataError(f"heatmaps: expected (B, K, h, w), got {hm.shape}")
        check_finite(hm, "heatmaps")
        B, K, h, w = hm.shape
        flat = hm.reshape(B, K, -1)
        idx = flat.argmax(-1)
        scores = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
        ys, xs = np.divmod(idx, w)
        uv = np.stack([xs, ys], -1).astype(np.float64)
        if self.refine == "quarter":
            uv += self._quarter_offsets(hm, xs, ys)
        else:
            uv += self._dark_offsets(hm, xs, ys)
        coords = self.to_input(uv)
        if squeeze:
            return coords[0], scores[0]
        return coords, scores

    @staticmethod
    def _quarter_offsets(hm: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """0.25-pixel shift toward the higher neighbour (none at borders or on ties)."""
        B, K, h, w = hm.shape
        b, k = np.meshgrid(np.arange(B), np.arange(K), indexing="ij")
        xl, xr = np.clip(xs - 1, 0, w - 1), np.clip(xs + 1, 0, w - 1)
        yu, yd = np.clip(ys - 1, 0, h - 1), np.clip(ys + 1, 0, h - 1)
        dx = np.sign(hm[b, k, ys, xr] - hm[b, k, ys, xl])
        dy = np.sign(hm[b, k, yd, xs] - hm[b, k, yu, xs])
        interior = (xs > 0) & (xs < w - 1) & (ys > 0) & (ys < h - 1)
        off = 0.25 * np.stack([dx, dy], -1)
        return np.where(interior[..., None], off, 0.0)

    def _dark_offsets(self, hm: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """DARK: Newton step ``-H^-1 g`` of the blurred log heatmap at the argmax."""
        B, K, h, w = hm.shape
        n = B * K
        maps = hm.reshape(n, h, w).astype(np.float32)
        maxima = maps.reshape(n, -1).max(-1)
        # cv2 blurs up to 512 channels at once: (h, w, C) layout, no loop over pixels.
        chans = np.ascontiguousarray(maps.transpose(1, 2, 0))
        blurred = np.empty_like(chans)
        kk = self.dark_kernel
        for s in range(0, n, 512):
            out = cv2.GaussianBlur(
                chans[..., s : s + 512], (kk, kk), 0, borderType=cv2.BORDER_CONSTANT
            )
            blurred[..., s : s + 512] = out.reshape(h, w, -1)
        blurred = blurred.transpose(2, 0, 1)
        bmax = blurred.reshape(n, -1).max(-1)
        ratio = np.where(bmax > 0, maxima / np.maximum(bmax, 1e-12), 0.0)
        blurred = blurred * ratio[:, None, None]
        logm = np.log(np.maximum(blurred, 1e-10)).astype(np.float64)
        # pad by 1 (edge) so the finite differences exist everywhere
        logm = np.pad(logm, ((0, 0), (1, 1), (1, 1)), mode="edge")
        x = xs.reshape(n) + 1
        y = ys.reshape(n) + 1
        i = np.arange(n)

        def at(dy: int, dx: int) -> np.ndarray:
            return logm[i, np.clip(y + dy, 0, h + 1), np.clip(x + dx, 0, w + 1)]

        c = at(0, 0)
        dx = 0.5 * (at(0, 1) - at(0, -1))
        dy = 0.5 * (at(1, 0) - at(-1, 0))
        dxx = at(0, 1) - 2 * c + at(0, -1)
        dyy = at(1, 0) - 2 * c + at(-1, 0)
        dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        det = dxx * dyy - dxy**2
        ok = (np.abs(det) > 1e-12) & (dxx < 0) & (dyy < 0)
        safe = np.where(ok, det, 1.0)
        ox = -(dyy * dx - dxy * dy) / safe
        oy = -(dxx * dy - dxy * dx) / safe
        off = np.stack([ox, oy], -1)
        off = np.where((ok & (np.abs(off) <= 1.0).all(-1))[:, None], off, 0.0)
        return off.reshape(B, K, 2)

    # ------------------------------------------------------------------ flip
    def flip_back(
        self, heatmaps, flip_index: Sequence[int], shift: bool | None = None
    ) -> np.ndarray:
        """Heatmaps of a horizontally flipped crop -> the frame of the original crop.

        Args:
            heatmaps: ``(B, K, h, w)`` network output for the flipped crop.
            flip_index: joint permutation (``skeleton.flip_index``).
            shift: move the result one pixel right (default: ``not unbiased``, see the module
                docstring).

        Returns:
            ``(B, K, h, w)`` float32 numpy array aligned with the original crop's heatmaps.
        """
        hm = to_numpy(heatmaps)
        if hm.ndim != 4 or hm.shape[1] != len(flip_index):
            raise ValueError(
                f"heatmaps {hm.shape} do not match flip_index of length {len(flip_index)}"
            )
        out = hm[:, list(flip_index), :, ::-1].copy()
        if shift is None:
            shift = not self.unbiased
        if shift:
            out[..., 1:] = out[..., :-1].copy()
        return out
