"""SFM ("slender fusion model") backbone: two cascaded U-shaped pyramids joined by additive
bridges, HSA on every decoder node (an interpretation: docs/reconstruction.md#sfm-topology).

At input ``(B, 3, H, W)`` the levels l = 0..3 run at strides 4, 8, 16, 32 with widths
``(48, 64, 80, 96)``. Pyramid p > 0 takes the previous pyramid's finest decoder output as
input, and at each level l >= 1 adds the previous pyramid's encoder and decoder features
after its own encoder stack ("bridges without adding layers"); each of its decoder nodes
also adds the previous pyramid's decoder feature at the same level.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import torch.nn.functional as F
from torch import Tensor, nn

from fusepose.errors import ConfigError
from fusepose.models.blocks.hsa import HSA, HSA_MODES
from fusepose.models.blocks.inverted_residual import InvertedResidual

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFMConfig:
    """Architecture of the SFM backbone (defaults: ~1.52 M params with two heads).

    widths: channels per pyramid level (stride 4, 8, 16, 32).
    depths: inverted-residual blocks per encoder level (the first of level l >= 1 has stride 2).
    expansion: inverted-residual expansion ratio t.
    stem_width: channels of the stride-2 stem conv before the depthwise stride-2 conv.
    num_pyramids: cascaded pyramids (each gives one heatmap output).
    attention: HSA mode on every decoder node (``"hsa" | "hsa_gated" | "spatial" |
        "hsa_global" | "none"``).
    hsa_kernel / hsa_dilation: HSA conv kernel side and second-order conv dilation.
    """

    widths: tuple[int, ...] = (48, 64, 80, 96)
    depths: tuple[int, ...] = (8, 5, 3, 2)
    expansion: float = 4.0
    stem_width: int = 32
    num_pyramids: int = 2
    attention: str = "hsa"
    hsa_kernel: int = 7
    hsa_dilation: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        if len(self.widths) != len(self.depths) or len(self.widths) < 1:
            raise ConfigError(
                f"SFMConfig: widths {self.widths} and depths {self.depths} must have the same "
                "non-zero length"
            )
        if min(self.depths) < 1 or min(self.widths) < 1:
            raise ConfigError(f"SFMConfig: depths {self.depths} and widths must be >= 1")
        if self.num_pyramids < 1:
            raise ConfigError(f"SFMConfig: num_pyramids must be >= 1, got {self.num_pyramids}")
        if self.attention not in HSA_MODES:
            raise ConfigError(
                f"SFMConfig: attention must be one of {HSA_MODES}, got {self.attention!r}"
            )

    @classmethod
    def from_overrides(cls, **overrides: object) -> SFMConfig:
        """Build from keyword overrides; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"SFMConfig: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**overrides)  # type: ignore[arg-type]


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Pyramid(nn.Module):
    """One encoder-decoder pyramid; ``forward(x, prev)`` returns (encoder, decoder) features
    per level, finest first: level l is ``(B, widths[l], H/2^(l+2), W/2^(l+2))``."""

    def __init__(self, cfg: SFMConfig) -> None:
        super().__init__()
        w, t = cfg.widths, cfg.expansion
        self.encoders = nn.ModuleList()
        for level, depth in enumerate(cfg.depths):
            if level == 0:
                blocks = [InvertedResidual(w[0], w[0], 1, t) for _ in range(depth)]
            else:
                blocks = [InvertedResidual(w[level - 1], w[level], 2, t)]
                blocks += [InvertedResidual(w[level], w[level], 1, t) for _ in range(depth - 1)]
            self.encoders.append(nn.Sequential(*blocks))
        n = len(w)
        # lateral[l]: 1x1 conv + BN from level l+1 to level l's width (then nearest upsample).
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w[lv + 1], w[lv], 1, bias=False), nn.BatchNorm2d(w[lv]))
            for lv in range(n - 1)
        )
        self.fuse = nn.ModuleList(InvertedResidual(w[lv], w[lv], 1, t) for lv in range(n - 1))
        self.attention = nn.ModuleList(
            HSA(cfg.attention, cfg.hsa_kernel, cfg.hsa_dilation) for _ in range(n)
        )

    def forward(
        self, x: Tensor, prev: tuple[list[Tensor], list[Tensor]] | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        enc: list[Tensor] = []
        e = x
        for level, stack in enumerate(self.encoders):
            e = stack(e)
            if prev is not None and level >= 1:
                e = e + prev[0][level] + prev[1][level]
            enc.append(e)
        top = len(enc) - 1
        d = enc[top] if prev is None else enc[top] + prev[1][top]
        d = self.attention[top](d)
        dec: list[Tensor] = [d]
        for level in range(top - 1, -1, -1):
            up = F.interpolate(self.laterals[level](d), size=enc[level].shape[-2:], mode="nearest")
            z = enc[level] + up
            if prev is not None:
                z = z + prev[1][level]
            d = self.attention[level](self.fuse[level](z))
            dec.append(d)
        dec.reverse()
        return enc, dec


class SFM(nn.Module):
    """SFM backbone: ``x (B, 3, H, W)`` normalized image -> list of ``num_pyramids`` features
    ``(B, widths[0], H/4, W/4)``, one per pyramid (finest decoder node), first pyramid first.

    H and W should be multiples of 32 so that every level halves exactly.
    """

    def __init__(self, cfg: SFMConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SFMConfig()
        self.stem = nn.Sequential(
            _conv_bn_relu(3, cfg.stem_width, 3, stride=2),
            _conv_bn_relu(cfg.stem_width, cfg.stem_width, 3, stride=2, groups=cfg.stem_width),
            _conv_bn_relu(cfg.stem_width, cfg.widths[0], 1),
        )
        self.pyramids = nn.ModuleList(_Pyramid(cfg) for _ in range(cfg.num_pyramids))
        self.out_channels = cfg.widths[0]
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        feat = self.stem(x)
        outs: list[Tensor] = []
        prev: tuple[list[Tensor], list[Tensor]] | None = None
        for pyramid in self.pyramids:
            prev = pyramid(feat, prev)
            feat = prev[1][0]
            outs.append(feat)
        return outs
