"""Top-down heatmap heads and the backbone + heads wrapper used by top-down zoo entries."""

from __future__ import annotations

from torch import Tensor, nn


class HeatmapHead(nn.Module):
    """1x1 conv (with bias): ``(B, C, h, w) -> (B, K, h, w)`` heatmaps at the same grid."""

    def __init__(self, in_channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_keypoints, 1)
        nn.init.normal_(self.conv.weight, std=0.001)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class TopDownHeatmapNet(nn.Module):
    """A backbone returning a list of features ``(B, C, H/4, W/4)`` (one per supervised stage)
    and one :class:`HeatmapHead` per feature.

    ``forward(x (B, 3, H, W)) -> tuple`` of heatmaps ``(B, K, H/4, W/4)``, intermediate
    supervision first, final last (same in train and eval).
    """

    def __init__(
        self, backbone: nn.Module, in_channels: int, num_keypoints: int, num_outputs: int
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList(
            HeatmapHead(in_channels, num_keypoints) for _ in range(num_outputs)
        )
        self.num_keypoints = num_keypoints

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        feats = self.backbone(x)
        if len(feats) != len(self.heads):
            raise RuntimeError(f"backbone gave {len(feats)} features for {len(self.heads)} heads")
        return tuple(head(f) for head, f in zip(self.heads, feats, strict=True))
