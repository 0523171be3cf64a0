"""High-Level Spatial Attention (HSA) of SFM (Ren et al., arXiv 2107.13693), as interpreted in
docs/reconstruction.md#hsa (the paper's own definition could not be read).

Modes (all keep the input shape ``(B, C, H, W)``):

- ``"hsa"`` (HSA-A, default): first-order map ``a1 = sigmoid(conv7x7([mean_c X; max_c X]))``
  (2 -> 1 channel, no bias, CBAM's spatial attention); second-order map
  ``a2 = sigmoid(conv7x7(a1) + b)`` (1 -> 1 channel, with bias, optional dilation);
  output ``Y = X * a2`` broadcast over channels.
- ``"hsa_gated"`` (HSA-C): ``Y = X * a1 * a2``.
- ``"spatial"``: plain CBAM spatial attention, ``Y = X * a1``.
- ``"hsa_global"`` (HSA-B): global second-order affinity ``P = softmax_j(a1_i * a1_j)`` over
  the N = H*W positions, used as a non-local aggregation ``Y[:, :, i] = sum_j P_ij X[:, :, j]``.
  Costs N^2 * C MACs, so it is not "free" at 64x48; kept for ablation only.
- ``"none"``: identity (no parameters).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from fusepose.errors import ConfigError

HSAMode = Literal["hsa", "hsa_gated", "spatial", "hsa_global", "none"]
HSA_MODES: tuple[str, ...] = ("hsa", "hsa_gated", "spatial", "hsa_global", "none")


class HSA(nn.Module):
    """High-Level Spatial Attention block; see the module docstring for the modes.

    Args:
        mode: one of ``HSA_MODES``.
        kernel_size: side of both square convs (7 as in CBAM).
        dilation: dilation of the second-order conv (2 gives a 19x19 field on the map).

    ``record_maps``: when True, each forward stores detached maps in ``last_maps``:
    ``first`` = a1 ``(B, 1, H, W)`` and, for the second-order modes, ``second`` ``(B, 1, H, W)``
    (a2; for ``hsa_global`` the mean attention weight each position receives, times N).
    """

    def __init__(self, mode: HSAMode = "hsa", kernel_size: int = 7, dilation: int = 1) -> None:
        super().__init__()
        if mode not in HSA_MODES:
            raise ConfigError(f"HSA mode must be one of {HSA_MODES}, got {mode!r}")
        if kernel_size % 2 != 1:
            raise ConfigError(f"HSA kernel_size must be odd, got {kernel_size}")
        self.mode = mode
        self.record_maps = False
        self.last_maps: dict[str, Tensor] = {}
        pad = kernel_size // 2
        if mode != "none":
            self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=pad, bias=False)
        if mode in ("hsa", "hsa_gated"):
            self.conv2 = nn.Conv2d(
                1, 1, kernel_size, padding=pad * dilation, dilation=dilation, bias=True
            )

    def first_order(self, x: Tensor) -> Tensor:
        """a1 = sigmoid(conv([mean_c x; max_c x])): ``(B, C, H, W) -> (B, 1, H, W)``."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv1(pooled))

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, C, H, W) -> (B, C, H, W)``."""
        if self.mode == "none":
            return x
        a1 = self.first_order(x)
        maps = {"first": a1}
        if self.mode == "spatial":
            y = x * a1
        elif self.mode == "hsa_global":
            b, c, h, w = x.shape
            flat = a1.flatten(1)  # (B, N)
            affinity = torch.softmax(flat.unsqueeze(2) * flat.unsqueeze(1), dim=2)  # (B, N, N)
            y = torch.bmm(x.flatten(2), affinity.transpose(1, 2)).view(b, c, h, w)
            maps["second"] = affinity.sum(dim=1).view(b, 1, h, w)
        else:
            a2 = torch.sigmoid(self.conv2(a1))
            maps["second"] = a2
            y = x * a2 if self.mode == "hsa" else x * a1 * a2
        if self.record_maps:
            self.last_maps = {k: v.detach() for k, v in maps.items()}
        return y

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
