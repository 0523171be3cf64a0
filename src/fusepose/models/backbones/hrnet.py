"""One configurable multi-resolution (HRNet) backbone for HigherHRNet, L-MFNet and ablations.

Layer-by-layer description: docs/reconstruction.md#higherhrnet-layers (HigherHRNet-W32) and
docs/reconstruction.md#l-mfnet-layers (L-MFNet R1).
A variant is a frozen :class:`HRNetConfig`; the module names are ours and the official
HigherHRNet checkpoint names are mapped onto them by :mod:`fusepose.models.convert`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from ..blocks.attention import CBAM
from ..blocks.conv import ConvBNAct
from ..blocks.ghost import GhostBlock
from ..blocks.resnet import BasicBlock, Bottleneck
from ..blocks.shuffle import ShuffleNeck

Stage1Block = Literal["bottleneck", "shuffle_neck"]
BranchBlock = Literal["basic", "ghost"]


@dataclass(frozen=True)
class GhostConfig:
    """Ghost-Block options (docs/reconstruction.md#l-mfnet-choices, L1, L2, L7)."""

    kernel_size: int = 1  # primary conv kernel: 1 (GhostNet, R1) or 3 ("paper budget", R2)
    attention: bool = True  # CBAM inside every Ghost-Block
    attention_position: Literal["shortcut", "residual"] = "shortcut"
    cbam_parallel: bool = False


@dataclass(frozen=True)
class HRNetConfig:
    """Architecture of the multi-resolution backbone.

    stem_width: width of the two stride-2 3x3 stem convs.
    stage1_block / stage1_blocks / stage1_planes: Stage 1 is ``stage1_blocks`` Bottlenecks
        (output 4 * planes) or Shuffle-Necks (output 2 * planes).
    widths: branch widths of Stages 2-4 (branch i runs at stride 4 * 2**i).
    modules: HR modules in Stages 2, 3, 4 (Stage s has s branches).
    blocks_per_branch: residual blocks per branch in every HR module.
    block: "basic" (BasicBlock) or "ghost" (Ghost-Block) in Stages 2-4.
    """

    stem_width: int = 64
    stage1_block: Stage1Block = "bottleneck"
    stage1_blocks: int = 4
    stage1_planes: int = 64
    stage1_attention: bool = True  # CBAM in Shuffle-Neck branch A
    widths: tuple[int, ...] = (32, 64, 128, 256)
    modules: tuple[int, ...] = (1, 4, 3)
    blocks_per_branch: int = 4
    block: BranchBlock = "basic"
    ghost: GhostConfig = GhostConfig()
    # CBAM once per branch at the end of Stages 2-4, on the fused outputs: the deploy variant's
    # attention (lmfnet_deploy) instead of one in every Ghost-Block
    stage_attention: bool = False

    def __post_init__(self) -> None:
        if len(self.modules) != len(self.widths) - 1:
            raise ValueError(
                f"HRNetConfig: {len(self.widths)} widths need {len(self.widths) - 1} stage "
                f"module counts, got modules={self.modules}"
            )
        if self.stage1_block not in ("bottleneck", "shuffle_neck"):
            raise ValueError(f"HRNetConfig: unknown stage1_block {self.stage1_block!r}")
        if self.block not in ("basic", "ghost"):
            raise ValueError(f"HRNetConfig: unknown block {self.block!r}")

    @property
    def stage1_out(self) -> int:
        mult = Bottleneck.expansion if self.stage1_block == "bottleneck" else 2
        return self.stage1_planes * mult


def make_branch_block(
    block: BranchBlock, in_channels: int, channels: int, ghost: GhostConfig
) -> nn.Module:
    """A Stage 2-4 block ``(B, in_channels, H, W) -> (B, channels, H, W)``."""
    if block == "basic":
        return BasicBlock(in_channels, channels)
    return GhostBlock(
        in_channels,
        channels,
        kernel_size=ghost.kernel_size,
        attention=ghost.attention,
        attention_position=ghost.attention_position,
        cbam_parallel=ghost.cbam_parallel,
    )


class Stem(nn.Module):
    """Two 3x3 stride-2 conv-BN-ReLU: (B, 3, H, W) -> (B, width, H/4, W/4)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(3, width, 3, stride=2)
        self.conv2 = ConvBNAct(width, width, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class HRModule(nn.Module):
    """One HR module: per-branch blocks, then multi-resolution fusion.

    xs: list of (B, widths[i], H / 2**i, W / 2**i) (H, W of branch 0) -> same list, or only
    branch 0 when ``multi_scale_output`` is False. Fusion into branch i from branch j:
    j > i: 1x1 conv + BN + nearest upsample x 2**(j-i); j == i: identity; j < i: (i - j)
    3x3 stride-2 conv + BN (ReLU after all but the last). Sum, then ReLU.
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        blocks_per_branch: int,
        block: BranchBlock,
        ghost: GhostConfig,
        multi_scale_output: bool = True,
    ) -> None:
        super().__init__()
        n = len(widths)
        self.branches = nn.ModuleList(
            nn.Sequential(
                *[make_branch_block(block, c, c, ghost) for _ in range(blocks_per_branch)]
            )
            for c in widths
        )
        self.fuse_layers = nn.ModuleList()
        for i in range(n if multi_scale_output else 1):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(
                        nn.Sequential(
                            ConvBNAct(widths[j], widths[i], 1, act=False),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    row.append(nn.Identity())
                else:
                    chain = [ConvBNAct(widths[j], widths[j], 3, stride=2) for _ in range(i - j - 1)]
                    chain.append(ConvBNAct(widths[j], widths[i], 3, stride=2, act=False))
                    row.append(nn.Sequential(*chain))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for row in self.fuse_layers:
            y = row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + row[j](xs[j])
            out.append(self.relu(y))
        return out


def make_transition(prev: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
    """Transition between stages: entry i maps branch i (or, for a new branch, the lowest-res
    previous branch) to width ``cur[i]``. Unchanged branches get ``nn.Identity``; a width
    change gets one 3x3 conv-BN-ReLU; a new branch gets 3x3 stride-2 conv-BN-ReLU(s)."""
    layers = nn.ModuleList()
    for i, c in enumerate(cur):
        if i < len(prev):
            if prev[i] == c:
                layers.append(nn.Identity())
            else:
                layers.append(nn.Sequential(ConvBNAct(prev[i], c, 3)))
        else:
            steps = i + 1 - len(prev)
            chain = []
            for k in range(steps):
                cout = c if k == steps - 1 else prev[-1]
                chain.append(ConvBNAct(prev[-1], cout, 3, stride=2))
            layers.append(nn.Sequential(*chain))
    return layers


class HRNetBackbone(nn.Module):
    """Multi-resolution backbone: x (B, 3, H, W) -> (B, widths[0], H/4, W/4).

    H, W must be multiples of 32 (the lowest-resolution branch runs at stride 32). The last
    module of the last stage fuses into the highest-resolution branch only, unless
    ``multi_scale_output`` (the ImageNet classifier of HRNet-Image-Classification, whose head
    reads every branch): then that module also fuses into the lower branches, whose fusion
    layers (``stages[-1][-1].fuse_layers.1..``) the pose backbone does not have.
    """

    def __init__(self, cfg: HRNetConfig = HRNetConfig(), multi_scale_output: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = Stem(cfg.stem_width)
        if cfg.stage1_block == "bottleneck":
            blocks = [
                Bottleneck(cfg.stem_width if k == 0 else cfg.stage1_out, cfg.stage1_planes)
                for k in range(cfg.stage1_blocks)
            ]
        else:
            blocks = [
                ShuffleNeck(
                    cfg.stem_width if k == 0 else cfg.stage1_out,
                    cfg.stage1_out,
                    attention=cfg.stage1_attention,
                    cbam_parallel=cfg.ghost.cbam_parallel,
                )
                for k in range(cfg.stage1_blocks)
            ]
        self.stage1 = nn.Sequential(*blocks)

        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev: tuple[int, ...] = (cfg.stage1_out,)
        n_stages = len(cfg.modules)
        for s, n_modules in enumerate(cfg.modules):
            widths = tuple(cfg.widths[: s + 2])
            self.transitions.append(make_transition(prev, widths))
            last_stage = s == n_stages - 1
            self.stages.append(
                nn.ModuleList(
                    HRModule(
                        widths,
                        cfg.blocks_per_branch,
                        cfg.block,
                        cfg.ghost,
                        multi_scale_output=multi_scale_output
                        or not (last_stage and m == n_modules - 1),
                    )
                    for m in range(n_modules)
                )
            )
            prev = widths
        self.out_channels = cfg.widths[0]
        # stage_attention[s][i]: CBAM on branch i of the output of HR stage s (Stages 2-4)
        self.stage_attention = nn.ModuleList()
        if cfg.stage_attention:
            outs = [tuple(cfg.widths[: s + 2]) for s in range(n_stages)]
            if not multi_scale_output:
                outs[-1] = outs[-1][:1]
            for widths in outs:
                self.stage_attention.append(nn.ModuleList(
                    CBAM(c, parallel=cfg.ghost.cbam_parallel) for c in widths))  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_branches(x)[0]

    def forward_branches(self, x: Tensor) -> list[Tensor]:
        """Every branch output of the last module: ``[(B, widths[i], H / 2**(i+2), ...)]``
        (only branch 0 unless ``multi_scale_output``)."""
        ys = [self.stage1(self.stem(x))]
        for s, (transition, stage) in enumerate(zip(self.transitions, self.stages, strict=True)):
            xs = []
            for i, layer in enumerate(transition):
                src = ys[i] if i < len(ys) else ys[-1]
                xs.append(layer(src))
            ys = xs
            for module in stage:
                ys = module(ys)
            ys = self._attend(s, ys)
        return ys

    def _attend(self, stage: int, ys: list[Tensor]) -> list[Tensor]:
        """The stage's per-branch CBAM (``stage_attention``), or ``ys`` unchanged."""
        if not len(self.stage_attention):
            return ys
        return [att(y) for att, y in zip(self.stage_attention[stage], ys, strict=True)]
