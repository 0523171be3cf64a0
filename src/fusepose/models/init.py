"""Weight initialisation: He init for training from scratch, and random weights that
behave like trained ones (for benchmarks and export checks)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from fusepose.models.blocks.attention import CBAM
from fusepose.models.blocks.ghost import GhostBlock
from fusepose.models.blocks.resnet import BasicBlock, Bottleneck

__all__ = [
    "calibrate_batchnorm",
    "damp_residuals",
    "init_from_scratch",
    "random_inference_weights",
    "zero_init_residuals",
]

# The modules holding the prediction convs: bottom-up ``head.final_layers``, top-down ``heads``.
PREDICTION_LAYERS = ("final_layer", "final_layers", "heads")


def _final_convs(model: nn.Module) -> list[nn.Module]:
    """The convolutions that output heatmaps / tags."""
    out: list[nn.Module] = []
    for name, mod in model.named_modules():
        if name.rsplit(".", 1)[-1] in PREDICTION_LAYERS:
            out += [m for m in mod.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    return out


def init_from_scratch(model: nn.Module, output_std: float | None = 0.001) -> None:
    """Re-initialise ``model`` for training from random weights.

    Hidden convolutions get He (Kaiming) normal init, fan-out, ReLU gain, zero bias; norms
    weight 1, bias 0. The prediction convs (:data:`PREDICTION_LAYERS`) keep the official N(0,
    ``output_std``) so the first heatmaps are ~0. The official N(0, 0.001) everywhere suits
    fine-tuning from ImageNet weights; from scratch it leaves the Ghost / attention blocks
    with activations shrinking layer after layer, and the tag maps nearly constant, where the
    push term of the AE loss has no gradient. ``output_std=None``: He init on the prediction
    convs too (random weights whose outputs vary, for benchmarks and export checks).
    """
    finals = {id(m) for m in _final_convs(model)}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if id(m) in finals and output_std is not None:
                nn.init.normal_(m.weight, std=output_std)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@torch.no_grad()
def zero_init_residuals(model: nn.Module) -> int:
    """Start every residual block as its shortcut and every attention gate as a constant.

    The last BatchNorm of each residual branch gets weight 0 (BasicBlock ``bn2``, Bottleneck
    ``bn3``, both BNs of a Ghost-Block's second Ghost module: Goyal et al. 2017, timm's
    ``zero_init_last``), and the last conv of each CBAM gate (channel MLP, spatial 7x7) weight
    0, so the gates start at sigmoid(0) = 0.5 and pass no gradient to their input. Without it
    the full L-MFNet (Ghost-Blocks with BN after the sum and CBAM on the shortcut) has input-
    layer gradient norms of ~1e8 at He init and does not learn. Returns the modules changed.
    """
    return damp_residuals(model, branch=0.0, gate=0.0)


@torch.no_grad()
def damp_residuals(model: nn.Module, branch: float, gate: float) -> int:
    """Scale the last BatchNorm weight of every residual branch by ``branch`` and the last conv
    of every CBAM gate by ``gate`` (the modules :func:`zero_init_residuals` zeroes; it is
    ``branch = gate = 0``). Returns the modules changed."""
    n = 0
    for m in model.modules():
        if isinstance(m, BasicBlock):
            params = [m.bn2.weight]
            scale = branch
        elif isinstance(m, Bottleneck):
            params = [m.bn3.weight]
            scale = branch
        elif isinstance(m, GhostBlock):
            params = [m.ghost2.primary.bn.weight, m.ghost2.cheap.bn.weight]
            scale = branch
        elif isinstance(m, CBAM):
            params = [m.channel.mlp[-1].weight, m.spatial.conv.weight]
            scale = gate
        else:
            continue
        for p in params:
            p.mul_(float(scale))
        n += 1
    return n


# random inference weights: residual branches and attention gates at these fractions of He init.
# At full He scale the Ghost-Block + CBAM networks are chaotic: random L-MFNet's heatmaps in fp32
# and fp64 differ by 0.91 of their maximum, and a 1e-6 change of the input changes them by
# 1.15 (the CBAM gates' sigmoids switch on logits of large scale, compounded over 108 modules).
# At (0.1, 0.03) fp32 and fp64 differ by 2.8e-4 of the maximum (HigherHRNet-W32: 1.6e-5 either
# way) and the heatmaps still vary over the image (std 0.04 of their maximum).
RANDOM_BRANCH_SCALE = 0.1
RANDOM_GATE_SCALE = 0.03


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Set every BatchNorm's running mean / variance to the statistics of ``inputs``
    (``(B, 3, H, W)`` network inputs), as a short pass in train mode with cumulative averaging
    would; weights are untouched and the model is left in eval mode. Returns the BN count."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the calibration batches
    model.eval()
    for m in bns:
        m.train()
    try:
        for x in inputs:
            model(x)
    finally:
        for m, (momentum, _) in zip(bns, saved, strict=True):
            m.momentum = momentum
        model.eval()
    return len(bns)


@torch.no_grad()
def random_inference_weights(model: nn.Module, inputs: Iterable[torch.Tensor], seed: int = 0
                             ) -> nn.Module:  # fmt: skip
    """Non-degenerate, well-conditioned random weights: He init everywhere (prediction convs
    included), residual branches and attention gates damped (:data:`RANDOM_BRANCH_SCALE`,
    :data:`RANDOM_GATE_SCALE`), BN statistics calibrated on ``inputs`` batched with as many
    standard-normal inputs, and each prediction conv scaled so that its largest
    output on ``inputs`` is 1 (the range of trained heatmaps). With the official N(0, 0.001)
    init the outputs of a deep pose net are all but zero (L-MFNet exactly 0.0), which no export
    check or decode timing can use. In place; returns the model in eval mode."""
    inputs = list(inputs)
    torch.manual_seed(seed)
    init_from_scratch(model, output_std=None)
    damp_residuals(model, RANDOM_BRANCH_SCALE, RANDOM_GATE_SCALE)
    # statistics of real pixels and of N(0, 1) noise together: calibrated on one image only, a
    # channel nearly constant on it normalises any other input by a tiny variance (random
    # L-MFNet: outputs 1e8 on a noise input, the export check's second input; 0.7 with this)
    noise = torch.Generator().manual_seed(seed)
    calibrate_batchnorm(model, [torch.cat([x, torch.randn(x.shape, generator=noise, dtype=x.dtype)])
                                for x in inputs])  # fmt: skip
    peaks: dict[int, float] = {}

    def hook(mod: nn.Module, _inp: object, out: torch.Tensor) -> None:
        peaks[id(mod)] = max(peaks.get(id(mod), 0.0), float(out.detach().abs().max()))

    finals = _final_convs(model)
    handles = [m.register_forward_hook(hook) for m in finals]
    try:
        for x in inputs:
            model(x)
    finally:
        for h in handles:
            h.remove()
    for m in finals:
        scale = 1.0 / max(peaks.get(id(m), 1.0), 1e-12)
        m.weight.mul_(scale)
        if m.bias is not None:
            m.bias.mul_(scale)
    return model.eval()
