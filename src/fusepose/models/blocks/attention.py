"""CBAM (Woo et al., ECCV 2018): channel attention, then spatial attention.

Attention modules follow the ``record_maps`` / ``last_maps`` contract of docs/design.md: when
``record_maps`` is True each forward stores detached maps in ``last_maps``
(``channel (B, C, 1, 1)``, ``spatial (B, 1, H, W)``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelAttention(nn.Module):
    """``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``: x (B, C, H, W) -> weights (B, C, 1, 1).

    The MLP (shared by both pooled vectors) is C -> max(1, C // reduction) -> C with ReLU
    between, built from 1x1 convs with bias.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        avg = torch.mean(x, dim=(2, 3), keepdim=True)
        mx = torch.amax(x, dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))


class SpatialAttention(nn.Module):
    """``sigmoid(conv7x7([mean_c x; max_c x]))``: x (B, C, H, W) -> weights (B, 1, H, W).

    One output channel, no bias.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat(
            [torch.mean(x, dim=1, keepdim=True), torch.amax(x, dim=1, keepdim=True)], dim=1
        )
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional Block Attention Module. x: (B, C, H, W) -> (B, C, H, W).

    Sequential (default, as in CBAM): ``F' = Mc(F) * F``, ``F'' = Ms(F') * F'``.
    ``parallel=True``: both maps from F, output ``(Mc(F) * F + Ms(F) * F) / 2``.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        spatial_kernel: int = 7,
        parallel: bool = False,
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(spatial_kernel)
        self.parallel = parallel
        self.record_maps: bool = False
        self.last_maps: dict[str, Tensor] = {}

    def forward(self, x: Tensor) -> Tensor:
        mc = self.channel(x)
        if self.parallel:
            ms = self.spatial(x)
            out = (x * mc + x * ms) * 0.5
        else:
            xc = x * mc
            ms = self.spatial(xc)
            out = xc * ms
        if self.record_maps:
            self.last_maps = {"channel": mc.detach(), "spatial": ms.detach()}
        return out
