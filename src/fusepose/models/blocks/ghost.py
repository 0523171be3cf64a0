"""GhostNet's Ghost module and L-MFNet's Ghost-Block (docs/reconstruction.md#ghost-block)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from .attention import CBAM
from .conv import BN_MOMENTUM, ConvBNAct


class GhostModule(nn.Module):
    """Ghost module GM(C_in -> C_out; k, s, d). x: (B, C_in, H, W) -> (B, C_out, H, W).

    Primary k x k conv C_in -> m = ceil(C_out / s) intrinsic maps (BN, optional ReLU); a cheap
    d x d depthwise conv makes m * (s - 1) ghost maps (BN, optional ReLU); the output is the
    concatenation [intrinsic, ghost] truncated to C_out channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        relu: bool = True,
    ) -> None:
        super().__init__()
        if ratio < 2:
            raise ValueError(f"GhostModule ratio must be >= 2, got {ratio}")
        self.out_channels = out_channels
        intrinsic = math.ceil(out_channels / ratio)
        self.primary = ConvBNAct(in_channels, intrinsic, kernel_size, act=relu)
        self.cheap = ConvBNAct(
            intrinsic, intrinsic * (ratio - 1), dw_size, groups=intrinsic, act=relu
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.primary(x)
        out = torch.cat([y, self.cheap(y)], dim=1)
        if out.shape[1] != self.out_channels:  # only when C_out is not a multiple of ratio
            out = out[:, : self.out_channels]
        return out


class GhostBlock(nn.Module):
    """L-MFNet Ghost-Block (Fig. 4). x: (B, C, H, W) -> (B, C, H, W).

    ``attention_position="shortcut"`` (default): ``ReLU(BN(GM2(GM1(x)) + Att(x)))``.
    ``attention_position="residual"``: ``ReLU(BN(Att(GM2(GM1(x))) + x))``.
    GM1 ends in ReLU, GM2 does not (GhostNet bottleneck). Att is CBAM, or the identity when
    ``attention=False``. When the width changes the shortcut gets a 1x1 conv + BN projection.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 1,
        attention: bool = True,
        attention_position: Literal["shortcut", "residual"] = "shortcut",
        cbam_parallel: bool = False,
    ) -> None:
        super().__init__()
        if attention_position not in ("shortcut", "residual"):
            raise ValueError(f"unknown attention_position {attention_position!r}")
        self.attention_position = attention_position
        self.ghost1 = GhostModule(in_channels, channels, kernel_size, relu=True)
        self.ghost2 = GhostModule(channels, channels, kernel_size, relu=False)
        att_channels = in_channels if attention_position == "shortcut" else channels
        self.attention = CBAM(att_channels, parallel=cbam_parallel) if attention else nn.Identity()
        self.downsample: nn.Module | None = None
        if in_channels != channels:
            self.downsample = ConvBNAct(in_channels, channels, 1, act=False)
        self.bn = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.ghost2(self.ghost1(x))
        if self.attention_position == "shortcut":
            short = self.attention(x)
            if self.downsample is not None:
                short = self.downsample(short)
            y = y + short
        else:
            short = x if self.downsample is None else self.downsample(x)
            y = self.attention(y) + short
        return self.relu(self.bn(y))
