"""ShuffleNetV2 channel split / shuffle and L-MFNet's Shuffle-Neck.

Reconstruction: docs/reconstruction.md#shuffle-neck.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import CBAM
from .conv import ConvBNAct


def channel_split(x: Tensor, first: int | None = None) -> tuple[Tensor, Tensor]:
    """Split x (B, C, H, W) along channels into (B, first, H, W), (B, C - first, H, W).

    ``first`` defaults to C // 2. The halves are views (no copy).
    """
    c = x.shape[1]
    first = c // 2 if first is None else first
    return x[:, :first], x[:, first:]


def channel_shuffle(x: Tensor, groups: int = 2) -> Tensor:
    """ShuffleNet channel shuffle: view (B, g, C/g, H, W), swap g and C/g, flatten back.

    x: (B, C, H, W) -> (B, C, H, W); output channel ``i * g + j`` is input channel
    ``j * C/g + i``. Exports to ONNX as a single Reshape-Transpose-Reshape.
    """
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleNeck(nn.Module):
    """L-MFNet Shuffle-Neck. x: (B, C_in, H, W) -> (B, C_out, H, W), stride 1.

    1. ``pre``: 1x1 group conv C_in -> C_out (``groups``, default C_out / 2), BN, ReLU.
    2. Split into halves a, b (C_out / 2 each).
    3. Branch a: 1x1 conv, BN, ReLU, then attention (CBAM; ``attention=False`` drops it).
    4. Branch b (ShuffleNetV2 right branch): 1x1 conv BN ReLU, 3x3 depthwise BN, 1x1 conv BN ReLU.
    5. Concatenate [a, b] and channel-shuffle with 2 groups. No residual add.

    ``shuffle_output = False`` returns ``[a, b]`` unshuffled: set by the inference rewrite
    :func:`fusepose.export.fold.fold_channel_shuffles`, which moves the permutation into the
    weights of the convs that read the output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 128,
        groups: int | None = None,
        attention: bool = True,
        cbam_parallel: bool = False,
    ) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"ShuffleNeck needs an even output width, got {out_channels}")
        half = out_channels // 2
        groups = half if groups is None else groups
        self.pre = ConvBNAct(in_channels, out_channels, 1, groups=groups)
        self.branch_a = ConvBNAct(half, half, 1)
        self.attention = CBAM(half, parallel=cbam_parallel) if attention else nn.Identity()
        self.branch_b = nn.Sequential(
            ConvBNAct(half, half, 1),
            ConvBNAct(half, half, 3, groups=half, act=False),
            ConvBNAct(half, half, 1),
        )
        self.shuffle_output = True

    def forward(self, x: Tensor) -> Tensor:
        a, b = channel_split(self.pre(x))
        a = self.attention(self.branch_a(a))
        b = self.branch_b(b)
        out = torch.cat([a, b], dim=1)
        return channel_shuffle(out, 2) if self.shuffle_output else out
