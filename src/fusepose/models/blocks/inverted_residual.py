"""MobileNetV2 inverted residual block (Sandler et al., arXiv 1801.04381)."""

from __future__ import annotations

from torch import Tensor, nn


class InvertedResidual(nn.Module):
    """IR(cin, cout, stride, t): 1x1 expand (cin -> t*cin) + BN + ReLU, 3x3 depthwise (stride)
    + BN + ReLU, 1x1 project (-> cout) + BN (linear); identity added when stride 1 and
    cin == cout. With ``expansion == 1`` the expand conv is skipped (as in MobileNetV2).

    ``x (B, cin, H, W) -> (B, cout, ceil(H/stride), ceil(W/stride))``.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, expansion: float = 4) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden = int(round(cin * expansion))
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [
                nn.Conv2d(cin, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True),
            ]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y
