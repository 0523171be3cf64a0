"""Conv + BatchNorm + activation, the unit most other blocks are made of."""

from __future__ import annotations

from torch import Tensor, nn

BN_MOMENTUM = 0.1  # official HRNet / HigherHRNet value


class ConvBNAct(nn.Module):
    """``act(bn(conv(x)))`` with a bias-free conv.

    x: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride). ``padding`` defaults to
    ``kernel_size // 2`` ("same" for odd kernels). ``act=False`` leaves the activation out.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = kernel_size // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))
