"""HigherHRNet heads and the full bottom-up model (docs/reconstruction.md#higherhrnet-heads).

``HigherHRNet.forward(x) -> (out_q, out_h)``:
``out_q (B, 2K, H/4, W/4)`` = K heatmaps then K associative-embedding tag maps;
``out_h (B, K, H/2, W/2)`` = heatmaps from the deconvolution head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import torch
from torch import Tensor, nn

from fusepose.errors import ConfigError

from ..backbones.hrnet import GhostConfig, HRNetBackbone, HRNetConfig, make_branch_block
from ..blocks.conv import BN_MOMENTUM


@dataclass(frozen=True)
class HigherHeadConfig:
    """Deconvolution head: ``num_deconvs`` x (concat? -> ConvT 4x4 s2 -> BN ReLU -> blocks).

    block: "basic" (HigherHRNet, L-MFNet R1/R2) or "ghost" (L-MFNet R3).
    """

    num_deconvs: int = 1
    deconv_channels: int = 32
    deconv_kernel: int = 4
    num_blocks: int = 4
    block: Literal["basic", "ghost"] = "basic"
    cat_output: bool = True
    final_kernel: int = 1
    ghost: GhostConfig = GhostConfig()


class DeconvStage(nn.Module):
    """(B, C_in, h, w) -> ConvTranspose 4x4 s2 (no bias) -> BN -> ReLU -> blocks
    -> (B, C_out, 2h, 2w)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_blocks: int,
        block: Literal["basic", "ghost"],
        ghost: GhostConfig,
    ) -> None:
        super().__init__()
        padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[kernel_size]
        self.deconv = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=2,
            padding=padding,
            output_padding=output_padding,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.blocks = nn.Sequential(
            *[
                make_branch_block(block, out_channels, out_channels, ghost)
                for _ in range(num_blocks)
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.relu(self.bn(self.deconv(x))))


class HigherHead(nn.Module):
    """HigherHRNet head. feature (B, C, H/4, W/4) -> [(B, 2K, H/4, W/4), (B, K, H/2, W/2), ...].

    ``final_layers[0]``: 1x1 conv (bias) C -> 2K (K heatmaps + K tags). Each deconv stage takes
    concat(feature, previous output) and doubles the resolution; ``final_layers[i + 1]``: 1x1
    conv -> K heatmaps.
    """

    def __init__(
        self, in_channels: int, num_keypoints: int, cfg: HigherHeadConfig = HigherHeadConfig()
    ) -> None:
        super().__init__()
        k = num_keypoints
        pad = cfg.final_kernel // 2
        self.cfg = cfg
        self.final_layers = nn.ModuleList([nn.Conv2d(in_channels, 2 * k, cfg.final_kernel, 1, pad)])
        self.deconv_layers = nn.ModuleList()
        channels = in_channels
        prev_out = 2 * k
        for _ in range(cfg.num_deconvs):
            cin = channels + prev_out if cfg.cat_output else channels
            self.deconv_layers.append(
                DeconvStage(
                    cin,
                    cfg.deconv_channels,
                    cfg.deconv_kernel,
                    cfg.num_blocks,
                    cfg.block,
                    cfg.ghost,
                )
            )
            channels = cfg.deconv_channels
            self.final_layers.append(nn.Conv2d(channels, k, cfg.final_kernel, 1, pad))
            prev_out = k

    def forward(self, x: Tensor) -> list[Tensor]:
        y = self.final_layers[0](x)
        outs = [y]
        for deconv, final in zip(self.deconv_layers, self.final_layers[1:], strict=True):
            if self.cfg.cat_output:
                x = torch.cat([x, y], dim=1)
            x = deconv(x)
            y = final(x)
            outs.append(y)
        return outs


def init_official(module: nn.Module) -> None:
    """Official HigherHRNet init: conv / deconv weights N(0, 0.001), biases 0; BN weight 1,
    bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class HigherHRNet(nn.Module):
    """Bottom-up model = :class:`HRNetBackbone` + :class:`HigherHead`.

    x: (B, 3, H, W) normalized RGB, H and W multiples of 32 ->
    ``(out_q (B, 2K, H/4, W/4), out_h (B, K, H/2, W/2))`` (with the default single deconv).
    """

    def __init__(
        self,
        num_keypoints: int = 17,
        backbone: HRNetConfig | None = None,
        head: HigherHeadConfig | None = None,
    ) -> None:
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
        self.num_keypoints = num_keypoints
        backbone = backbone or HRNetConfig()
        head = head or HigherHeadConfig()
        self.backbone = HRNetBackbone(backbone)
        self.head = HigherHead(self.backbone.out_channels, num_keypoints, head)
        # flat, checkpoint-friendly (plain types): create_model(name, **model.config) rebuilds it
        self.config: dict[str, Any] = flat_config(backbone, head)
        init_official(self)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            h, w = x.shape[-2:]
            if x.dim() != 4 or h % 32 or w % 32:
                raise ValueError(
                    f"HigherHRNet input must be (B, 3, H, W) with H, W multiples of 32, "
                    f"got {tuple(x.shape)}"
                )
        return tuple(self.head(self.backbone(x)))


_BACKBONE_KEYS = {f.name for f in fields(HRNetConfig)} - {"ghost"}
_GHOST_KEYS = {f.name for f in fields(GhostConfig)}
_HEAD_KEYS = {f.name for f in fields(HigherHeadConfig)} - {"ghost"}


def bottom_up_config(**options: Any) -> tuple[HRNetConfig, HigherHeadConfig]:
    """Backbone and head configs from flat options.

    Keys: :class:`HRNetConfig` fields (``block``, ``widths``, ...), ``ghost_<field>`` for
    :class:`GhostConfig` (shared by backbone and head, e.g. ``ghost_kernel_size=3``) and
    ``head_<field>`` for :class:`HigherHeadConfig` (e.g. ``head_block="ghost"``).
    Unknown keys raise ConfigError.
    """
    bb: dict[str, Any] = {}
    gh: dict[str, Any] = {}
    hd: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, list):
            value = tuple(value)
        if key in _BACKBONE_KEYS:
            bb[key] = value
        elif key.startswith("ghost_") and key[6:] in _GHOST_KEYS:
            gh[key[6:]] = value
        elif key.startswith("head_") and key[5:] in _HEAD_KEYS:
            hd[key[5:]] = value
        else:
            valid = sorted(
                _BACKBONE_KEYS
                | {f"ghost_{k}" for k in _GHOST_KEYS}
                | {f"head_{k}" for k in _HEAD_KEYS}
            )
            raise ConfigError(f"model option {key!r} is unknown; valid options: {valid}")
    ghost = replace(GhostConfig(), **gh)
    try:
        backbone = HRNetConfig(**bb, ghost=ghost)
        head = HigherHeadConfig(**hd, ghost=ghost)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model options {options}: {exc}") from None
    return backbone, head


def flat_config(backbone: HRNetConfig, head: HigherHeadConfig) -> dict[str, Any]:
    """Inverse of :func:`bottom_up_config`: plain-typed flat options."""
    out: dict[str, Any] = {k: v for k, v in asdict(backbone).items() if k != "ghost"}
    out.update({f"ghost_{k}": v for k, v in asdict(backbone.ghost).items()})
    out.update({f"head_{k}": v for k, v in asdict(head).items() if k != "ghost"})
    return out
