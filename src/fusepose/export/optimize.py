"""Inference-time graph choices that leave what a network computes unchanged.

Everything here works on a *copy* of the model (the trained module is never touched) and is
checked by ``tests/test_perf_equivalence.py``: decoded keypoints stay within 0.5 px and raw
outputs are allclose.

- :func:`fold_batchnorm`: eval-mode BatchNorm folded into the preceding conv / transposed conv
  (``w' = w * g / sqrt(var + eps)``, ``b' = (b - mean) * g / sqrt(var + eps) + beta``).
- :func:`affine_batchnorm`: the BNs that follow an addition (Ghost-Block) as a per-channel
  affine (a depthwise 1x1 conv in ONNX, which stays in ONNX Runtime's blocked layout).
- :func:`fast_attention`: CBAM and HSA rebuilt with the same parameters but cheaper
  operators. The channel-wise mean / max of CBAM's spatial branch are the worst operators of
  L-MFNet on CPU (``amax`` over channels of a contiguous NCHW tensor is a strided reduction in
  eager PyTorch; ONNX Runtime runs ``ReduceMean``/``ReduceMax`` over axis 1 outside its
  blocked NCHWc layout). The max becomes a halving tree of ``torch.maximum`` (exact); in
  ONNX export the mean is a constant 1x1 conv with weights 1/C and the 2 -> 1 channel 7x7
  conv a depthwise conv plus a sum. Global pools become GlobalAverage/MaxPool.
- :func:`optimize_for_inference`: both of the above on a deep copy, in eval mode.

ONNX Runtime session options live in :mod:`fusepose.export.runtime`, INT8 quantization in
:mod:`fusepose.export.quantize`.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusepose.export.fold import fold_channel_shuffles
from fusepose.models.blocks.attention import CBAM
from fusepose.models.blocks.hsa import HSA
from fusepose.models.blocks.shuffle import ShuffleNeck

logger = logging.getLogger(__name__)

__all__ = [
    "ChannelsLast",
    "ContiguousIsland",
    "fast_attention",
    "fold_batchnorm",
    "optimize_for_inference",
]


# ------------------------------------------------------------------------------ BN folding


def _fold_into(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode ``bn`` into ``conv`` (Conv2d or ConvTranspose2d, in place)."""
    w = conv.weight
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    shift = bn.bias.detach() - bn.running_mean * scale
    with torch.no_grad():
        if isinstance(conv, nn.ConvTranspose2d):
            if conv.groups != 1:
                raise ValueError("grouped ConvTranspose2d is not folded")
            w.mul_(scale.view(1, -1, 1, 1).to(w.dtype))  # weight (C_in, C_out, kh, kw)
        else:
            w.mul_(scale.view(-1, 1, 1, 1).to(w.dtype))  # weight (C_out, C_in / g, kh, kw)
        bias = shift if conv.bias is None else conv.bias.detach() * scale + shift
        conv.bias = nn.Parameter(bias.to(w.dtype))


# (class name, [(conv attribute, bn attribute), ...]) for blocks whose forward applies the
# BN directly to the conv output (``bn(conv(x))``) and uses the conv output nowhere else.
_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "ConvBNAct": (("conv", "bn"),),
    "DeconvStage": (("deconv", "bn"),),
    "BasicBlock": (("conv1", "bn1"), ("conv2", "bn2")),
    "Bottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
}


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a conv into that conv.

    Handles the blocks listed in ``_PAIRS`` (by class name, as the fusepose blocks are
    written) and any ``nn.Sequential`` holding ``Conv2d`` / ``ConvTranspose2d`` immediately
    followed by ``BatchNorm2d``. A folded BN becomes ``nn.Identity``. BNs after an addition
    (Ghost-Block) are left alone. Returns the folded model (a deep copy unless ``inplace``),
    in eval mode.
    """
    m = model if inplace else copy.deepcopy(model)
    m.eval()
    folded = 0
    for module in list(m.modules()):
        for conv_name, bn_name in _PAIRS.get(type(module).__name__, ()):
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) and isinstance(bn, nn.BatchNorm2d):
                _fold_into(conv, bn)
                setattr(module, bn_name, nn.Identity())
                folded += 1
        if isinstance(module, nn.Sequential):
            children = list(module._modules.items())
            for (_, a), (name_b, b) in zip(children, children[1:], strict=False):
                if isinstance(a, nn.Conv2d | nn.ConvTranspose2d) and isinstance(b, nn.BatchNorm2d):
                    if isinstance(a, nn.ConvTranspose2d) and a.groups != 1:
                        continue
                    _fold_into(a, b)
                    module._modules[name_b] = nn.Identity()
                    folded += 1
    logger.debug("folded %d BatchNorm layers", folded)
    return m


class ChannelAffine(nn.Module):
    """An eval-mode BatchNorm2d that could not be folded (it follows an addition), as
    ``x * scale + shift`` per channel. x: (B, C, H, W) -> (B, C, H, W).

    ONNX export: a depthwise 1x1 conv (ONNX Runtime keeps it in its blocked NCHWc layout and
    fuses a following ReLU into it; a ``BatchNormalization`` node ran in plain NCHW between two
    layout conversions). Eager: one fused multiply-add.
    """

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        self.register_buffer("scale", scale.clone())
        self.register_buffer("shift", (bn.bias.detach() - bn.running_mean * scale).clone())

    def forward(self, x: Tensor) -> Tensor:
        c = self.scale.numel()
        if torch.onnx.is_in_onnx_export():
            return F.conv2d(x, self.scale.view(c, 1, 1, 1), self.shift, groups=c)
        return torch.addcmul(self.shift.view(1, c, 1, 1), x, self.scale.view(1, c, 1, 1))


def affine_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every remaining eval-mode ``BatchNorm2d`` by :class:`ChannelAffine`."""
    m = model if inplace else copy.deepcopy(model)
    for parent in list(m.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, nn.BatchNorm2d) and child.track_running_stats:
                parent._modules[name] = ChannelAffine(child)
    return m


# ------------------------------------------------------------------------------ attention


def _channel_max(x: Tensor) -> Tensor:
    """``amax`` over channels: ``(B, C, H, W) -> (B, 1, H, W)``, exact.

    A halving tree of element-wise ``maximum`` over contiguous channel slices: ``amax(dim=1)``
    is a slow strided reduction in eager PyTorch, and ONNX Runtime's ``ReduceMax`` over axis 1
    (or a ``MaxPool`` over the channel axis) was 1.3-3x slower than the tree in our
    measurements (docs/performance.md).
    """
    c = int(x.shape[1])  # a constant in traced graphs
    while c > 1:
        half = c // 2
        y = torch.maximum(x[:, :half], x[:, half : 2 * half])
        x = torch.cat([y, x[:, 2 * half :]], dim=1) if c % 2 else y
        c = (c + 1) // 2
    return x


def _spatial_conv(conv: nn.Conv2d, pooled: Tensor) -> Tensor:
    """``conv(pooled)`` for CBAM's / HSA's 2 -> 1 channel k x k conv (no bias).

    ONNX export: a depthwise 2 -> 2 conv and a sum of its two channels (same math; ONNX
    Runtime pads a 1-output-channel conv to its 16-channel block, which made it 2x slower);
    eager: the conv itself.
    """
    plain = conv.in_channels != 2 or conv.out_channels != 1 or conv.bias is not None
    if plain or not torch.onnx.is_in_onnx_export():
        return conv(pooled)
    w = conv.weight.reshape(2, 1, *conv.weight.shape[2:])
    y = F.conv2d(pooled, w, None, conv.stride, conv.padding, conv.dilation, groups=2)
    return y[:, :1] + y[:, 1:]


def _channel_mean(x: Tensor) -> Tensor:
    """Mean over channels: ``(B, C, H, W) -> (B, 1, H, W)``.

    ONNX export: a constant 1x1 conv with weights 1/C (runs in ONNX Runtime's blocked layout);
    eager: ``mean(dim=1)``. The two differ only by float summation order.
    """
    c = int(x.shape[1])  # a constant in traced graphs: the weight becomes an initializer
    if torch.onnx.is_in_onnx_export():
        return F.conv2d(x, torch.full((1, c, 1, 1), 1.0 / c, dtype=x.dtype, device=x.device))
    return x.mean(dim=1, keepdim=True)


class FastCBAM(CBAM):
    """CBAM with the parameters of ``src`` and cheaper operators (same maps).

    x: (B, C, H, W) -> (B, C, H, W). Keeps the ``record_maps`` / ``last_maps`` contract and is
    a ``CBAM`` (``fusepose.models.attention_modules`` still finds it).
    """

    def __init__(self, src: CBAM) -> None:
        nn.Module.__init__(self)  # reuse src's submodules instead of building new ones
        self.channel = src.channel  # .mlp: 1x1 conv C -> C/r, ReLU, 1x1 conv C/r -> C
        self.spatial = src.spatial  # .conv: 7x7 conv 2 -> 1, no bias
        self.parallel = bool(src.parallel)
        self.record_maps: bool = bool(getattr(src, "record_maps", False))
        self.last_maps: dict[str, Tensor] = {}

    def _channel_map(self, x: Tensor) -> Tensor:
        mlp = self.channel.mlp
        avg = F.adaptive_avg_pool2d(x, 1)
        mx = F.adaptive_max_pool2d(x, 1)
        return torch.sigmoid(mlp(avg) + mlp(mx))

    def _spatial_map(self, x: Tensor) -> Tensor:
        pooled = torch.cat([_channel_mean(x), _channel_max(x)], dim=1)
        return torch.sigmoid(_spatial_conv(self.spatial.conv, pooled))

    def forward(self, x: Tensor) -> Tensor:
        mc = self._channel_map(x)
        if self.parallel:
            ms = self._spatial_map(x)
            out = (x * mc + x * ms) * 0.5
        else:
            xc = x * mc
            ms = self._spatial_map(xc)
            out = xc * ms
        if self.record_maps:
            self.last_maps = {"channel": mc.detach(), "spatial": ms.detach()}
        return out


def _fast_first_order(self, x: Tensor) -> Tensor:
    """HSA first-order map with the cheaper channel pools (bound to an HSA instance)."""
    pooled = torch.cat([_channel_mean(x), _channel_max(x)], dim=1)
    return torch.sigmoid(_spatial_conv(self.conv1, pooled))


def fast_attention(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace CBAM modules by :class:`FastCBAM` and give HSA modules the cheaper channel
    pools (same parameters, same maps up to float rounding). Returns the model (a deep copy
    unless ``inplace``)."""
    m = model if inplace else copy.deepcopy(model)
    n = 0
    for parent in list(m.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, CBAM) and not isinstance(child, FastCBAM):
                parent._modules[name] = FastCBAM(child)
                n += 1
            elif isinstance(child, HSA) and hasattr(child, "first_order"):
                child.first_order = _fast_first_order.__get__(child)
                n += 1
    logger.debug("rebuilt %d attention modules", n)
    return m


class ContiguousIsland(nn.Module):
    """Runs ``module`` on NCHW-contiguous tensors inside a channels-last model (same math).

    The Shuffle-Neck is faster in NCHW than in NHWC in eager PyTorch: its channel shuffle and
    ``cat`` are contiguous block copies in NCHW but strided gathers in NHWC (12 ms for one
    128 x 128 x 128 shuffle, 1 thread), and oneDNN runs its 64-group 1x1 conv in NCHW while
    NHWC falls back to 64 separate slow-path convs.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.to(memory_format=torch.contiguous_format)

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.contiguous()).contiguous(memory_format=torch.channels_last)


def _nchw_islands(model: nn.Module) -> int:
    """Wrap runs of Shuffle-Necks in :class:`ContiguousIsland` (in place): a Sequential made
    only of them as a whole (one layout change in, one out), any other one alone."""

    def visit(parent: nn.Module) -> int:
        n = 0
        for name, child in list(parent._modules.items()):
            whole = (
                isinstance(child, nn.Sequential)
                and len(child) > 0
                and all(isinstance(c, ShuffleNeck) for c in child)
            )
            if whole or isinstance(child, ShuffleNeck):
                parent._modules[name] = ContiguousIsland(child)
                n += 1
            elif child is not None and not isinstance(child, ContiguousIsland):
                n += visit(child)
        return n

    return visit(model)


class ChannelsLast(nn.Module):
    """Eager wrapper running ``model`` in the channels-last (NHWC) memory format.

    x: (B, C, H, W) in any memory format; outputs are returned NCHW-contiguous, with the same
    structure (tensor, tuple or list) as ``model``'s. Same math: only the memory layout
    changes (oneDNN's depthwise and 1x1 convs are several times faster on NHWC on CPU).
    Shuffle-Necks stay NCHW (:class:`ContiguousIsland`). ``info`` (ModelInfo) is forwarded.
    ``model`` itself is converted (pass a copy, as :func:`optimize_for_inference` does).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)
        self.islands = _nchw_islands(self.model)
        if hasattr(model, "info"):
            self.info = model.info

    def forward(self, x: Tensor):
        out = self.model(x.contiguous(memory_format=torch.channels_last))
        if isinstance(out, Tensor):
            return out.contiguous()
        return type(out)(o.contiguous() for o in out)


def optimize_for_inference(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """Deep copy of ``model`` in eval mode: BN folded (or a channel affine), fast attention.

    ``channels_last``: also wrap it in :class:`ChannelsLast` (for eager CPU inference; export
    the unwrapped module). ``info`` (ModelInfo) and other plain attributes are kept. The
    original is not modified.
    """
    m = fold_batchnorm(model)
    fold_channel_shuffles(m)
    m = fast_attention(m, inplace=True)
    m = affine_batchnorm(m, inplace=True).eval()
    return ChannelsLast(m).eval() if channels_last else m
