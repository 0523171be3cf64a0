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
- :func:`session_options`: the ONNX Runtime options used for benchmarking.
- :func:`quantize_int8`: ONNX Runtime static INT8 quantization (QDQ, per-channel 7-bit
  weights; L-MFNet: the head only), calibrated on real or synthetic images preprocessed exactly
  as the Predictor does.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusepose.errors import CheckpointError, ConfigError, DataError
from fusepose.models.blocks.attention import CBAM

logger = logging.getLogger(__name__)

__all__ = [
    "fold_batchnorm",
    "fast_attention",
    "optimize_for_inference",
    "ChannelsLast",
    "ContiguousIsland",
    "session_options",
    "calibration_inputs",
    "quantize_int8",
    "int8_scope",
    "INT8_SCOPES",
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
    try:
        from fusepose.models.blocks.hsa import HSA
    except ImportError:  # pragma: no cover - HSA is optional in some checkouts
        HSA = ()  # noqa: N806
    n = 0
    for parent in list(m.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, CBAM) and not isinstance(child, FastCBAM):
                parent._modules[name] = FastCBAM(child)
                n += 1
            elif HSA and isinstance(child, HSA) and hasattr(child, "first_order"):
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
    from fusepose.models.blocks.shuffle import ShuffleNeck

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
    m = fast_attention(fold_batchnorm(model), inplace=True)
    m = affine_batchnorm(m, inplace=True).eval()
    return ChannelsLast(m).eval() if channels_last else m


# ------------------------------------------------------------------------------ ONNX Runtime


def session_options(
    num_threads: int | None = None,
    *,
    profile_prefix: str | None = None,
    optimized_model_path: str | Path | None = None,
):
    """``onnxruntime.SessionOptions`` for single-image latency.

    All graph optimizations (constant folding, Conv+BN/activation fusion, the blocked NCHWc
    layout), ``intra_op_num_threads = num_threads`` (None: ORT's default), one inter-op
    thread, sequential execution. ``profile_prefix`` turns on ORT's per-operator profiler;
    ``optimized_model_path`` saves the optimized graph.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if num_threads:
        opts.intra_op_num_threads = int(num_threads)
    opts.inter_op_num_threads = 1
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    if optimized_model_path:
        opts.optimized_model_filepath = str(optimized_model_path)
    return opts


# ------------------------------------------------------------------------------ INT8


def calibration_inputs(
    input_hw: tuple[int, int],
    images: Iterable[str | Path | np.ndarray] | None = None,
    num_synthetic: int = 0,
    seed: int = 0,
    kind: str = "bottom_up",
) -> list[np.ndarray]:
    """Network inputs ``(1, 3, H, W)`` float32 for INT8 calibration.

    ``images`` (paths or BGR uint8 arrays) are warped into ``input_hw`` as the Predictor does
    for a fixed input size (bottom-up: letterbox; top-down: the centred whole-image box) and
    normalised with ``fusepose.data.transforms.normalize``. ``num_synthetic`` textured
    synthetic images are added (``fusepose.benchmark.latency.synthetic_image``).
    """
    import cv2

    from fusepose.data.transforms import normalize
    from fusepose.inference.predictor import letterbox_matrix

    h, w = int(input_hw[0]), int(input_hw[1])
    frames: list[np.ndarray] = []
    for item in images or ():
        if isinstance(item, np.ndarray):
            img = item
        else:
            img = cv2.imread(str(item), cv2.IMREAD_COLOR)
            if img is None:
                raise DataError(f"{item}: cannot read calibration image")
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise DataError(
                f"calibration image {getattr(item, 'name', '<array>')}: "
                f"expected (H, W, 3) uint8 BGR, got {img.shape} {img.dtype}"
            )
        frames.append(img)
    if num_synthetic:
        from fusepose.benchmark.latency import synthetic_image

        frames += [synthetic_image(h, w, seed=seed + i) for i in range(num_synthetic)]
    if not frames:
        raise ConfigError("calibration needs at least one image (images= or num_synthetic=)")
    out = []
    for img in frames:
        m = letterbox_matrix(img.shape[:2], (h, w))
        warped = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR)
        out.append(np.asarray(normalize(warped), dtype=np.float32)[None])
    logger.debug("%d calibration inputs of %dx%d (%s)", len(out), h, w, kind)
    return out


# Per model (``fusepose.model_name`` in the ONNX metadata): the nodes ``quantize_int8`` quantizes
# by default (``scope="auto"``; models not listed: every quantizable node but attention).
# L-MFNet: only the deconvolution head (dense 3x3 32 -> 32 convs at 1/2 input resolution, the
# only part with enough dense MACs per Q/DQ boundary). Quantizing the whole backbone was 0.74-0.92x
# of fp32 on an AVX2 CPU (ORT 1.32): depthwise / grouped QLinearConvs are slower than ORT's
# fp32 NCHWc convs (the grouped 1x1 ``pre`` convs of stage 1 ~10x), the float CBAM islands cost
# NHWC <-> NCHW Transposes and Q/DQ pairs in every block; the head alone was 1.05-1.16x.
INT8_SCOPES: dict[str, str] = {"lmfnet": "/model/head/"}


def int8_scope(model_name: str | None) -> str | None:
    """The default ``scope`` of :func:`quantize_int8` for ``model_name`` (None: whole graph)."""
    return INT8_SCOPES.get(str(model_name or ""))


def quantize_int8(
    fp32_path: str | Path,
    int8_path: str | Path,
    inputs: Sequence[np.ndarray],
    *,
    per_channel: bool = True,
    op_types: Sequence[str] | None = None,
    method: str = "minmax",
    preprocess: bool = False,
    exclude_attention: bool = True,
    reduce_range: bool = True,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    quant_format: str = "qdq",
    exclude_depthwise: bool = False,
    scope: str | None = "auto",
    extra_options: dict[str, Any] | None = None,
    calibration_cache: str | Path | None = None,
) -> Path:
    """Static INT8 quantization of an exported fp32 model with ``onnxruntime.quantization``.

    QDQ format, uint8 activations / 7-bit int8 weights (per output channel when
    ``per_channel``), calibrated on ``inputs`` (list of ``(1, 3, H, W)`` float32, see
    :func:`calibration_inputs`) with the ``method`` calibrator ("minmax", "entropy" or
    "percentile").

    ``scope``: quantize only the nodes whose name contains this string (e.g. "/model/head/");
    ``"auto"`` (default): :data:`INT8_SCOPES` for the model named in the file's metadata
    (L-MFNet: the head only), else the whole graph; None: the whole graph.
    ``op_types``: operators to quantize (default None: every operator ONNX Runtime can
    quantize, so consecutive int8 ops need no Q/DQ in between; convolutions only was no
    faster than fp32 on L-MFNet because of the Q/DQ and layout changes around every conv).
    ``exclude_attention``: keep the nodes of attention modules (CBAM / HSA: tiny MLP and 7x7
    convs on pooled maps, <1 % of the MACs) in float; quantizing them lets ONNX Runtime fuse
    ``QLinearGlobalAveragePool`` nodes that fail at run time on some scales (excluding only the
    GlobalAveragePool is not enough: the fusion needs just its neighbours' Q/DQ).
    ``exclude_depthwise``: keep grouped (depthwise) convs in float.
    ``reduce_range`` (default True): 7-bit weights. ONNX Runtime's u8 x s8 kernel on x86 CPUs
    without VNNI (``vpmaddubsw``) saturates int16 sums of two 8-bit products; with full-range
    weights the overfit L-MFNet checkpoint fell from AP 0.98 to 0.57, with 7-bit weights it kept
    0.91 (whole graph) / 0.98 (head only). Same speed.
    ``activation_type`` / ``weight_type``: "uint8" or "int8" (u8 x u8 and s8 x s8 have no fast
    AVX2 kernel: 0.6-0.8x of u8 x s8). ``quant_format``: "qdq" or "qoperator".
    ``extra_options``: passed to ``quantize_static`` (e.g. ``{"ActivationSymmetric": True}``).
    ``calibration_cache``: JSON file of calibrated tensor ranges (``quantize_static``'s
    ``calibration_cache_path``), reused when it exists, written otherwise; ``inputs`` may then
    be empty. ``preprocess``: run ``quant_pre_process`` first (slow on big graphs). The fusepose
    metadata of the fp32 file is copied. Returns ``int8_path``.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if not fp32_path.is_file():
        raise CheckpointError(f"{fp32_path}: ONNX file not found")
    cache = Path(calibration_cache) if calibration_cache is not None else None
    if not inputs and not (cache is not None and cache.is_file()):
        raise ConfigError("quantize_int8: no calibration inputs")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise ConfigError(f"calibration method {method!r}: use one of {sorted(methods)}")
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    for label, value, allowed in (("activation_type", activation_type, types),
                                  ("weight_type", weight_type, types),
                                  ("quant_format", quant_format, formats)):  # fmt: skip
        if value not in allowed:
            raise ConfigError(f"{label} {value!r}: use one of {sorted(allowed)}")
    model_proto = onnx.load(str(fp32_path))
    input_name = next(
        i.name
        for i in model_proto.graph.input
        if i.name not in {t.name for t in model_proto.graph.initializer}
    )
    if scope == "auto":
        meta = {p.key: p.value for p in model_proto.metadata_props}
        scope = int8_scope(meta.get("fusepose.model_name"))

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(list(inputs))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {input_name: np.ascontiguousarray(x, np.float32)}

    def _grouped(node: Any) -> bool:
        return node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)

    exclude = [
        n.name
        for n in model_proto.graph.node
        if (exclude_attention and ("/attention" in n.name or ".attention" in n.name))
        or (exclude_depthwise and _grouped(n))
    ]
    nodes = [n.name for n in model_proto.graph.node if scope in n.name] if scope else None
    if scope and not nodes:
        raise ConfigError(f"quantize_int8: no node name contains {scope!r}")
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = int8_path.with_suffix(".prep.onnx")
    n_inlined = inline_identity_initializers(model_proto)
    onnx.save(model_proto, str(tmp))
    logger.debug("inlined %d Identity-fed initializers", n_inlined)
    src = tmp
    if preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(tmp), str(tmp), skip_symbolic_shape=True)
    # A scoped quantization needs the ranges of its own tensors only: collect them directly
    # (seconds) instead of ORT's calibrator, which adds a ReduceMin / ReduceMax pair to every
    # tensor of the graph (minutes on L-MFNet at 512). Same MinMax statistics.
    scoped_cache = None
    calib_options = any(k.startswith(("Calib", "SmoothQuant")) for k in (extra_options or {}))
    if nodes and method == "minmax" and cache is None and inputs and not calib_options:
        scoped_cache = int8_path.with_suffix(".calib.json")
        _scoped_minmax_cache(tmp, set(nodes), inputs, input_name, scoped_cache)
        cache = scoped_cache
    try:
        quantize_static(
            str(src),
            str(int8_path),
            _Reader() if inputs and scoped_cache is None else None,
            quant_format=formats[quant_format],
            activation_type=types[activation_type],
            weight_type=types[weight_type],
            per_channel=per_channel,
            reduce_range=reduce_range,
            op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_quantize=nodes,
            calibrate_method=methods[method],
            nodes_to_exclude=exclude,
            extra_options=dict(extra_options or {}),
            calibration_cache_path=str(cache) if cache is not None else None,
        )
    finally:
        for f in (tmp, scoped_cache):
            if f is not None and f.exists():
                f.unlink()
    _copy_metadata(model_proto, int8_path)
    logger.info(
        "wrote %s (INT8 %s, scope %s, %d calibration inputs)",
        int8_path, quant_format, scope or "whole graph", len(inputs),
    )  # fmt: skip
    return int8_path


def _scoped_minmax_cache(
    model_path: Path,
    nodes: set[str],
    inputs: Sequence[np.ndarray],
    input_name: str,
    cache_path: Path,
) -> int:
    """MinMax calibration of the float inputs / outputs of ``nodes`` only, written as an ONNX
    Runtime calibration cache (``quantize_static(calibration_cache_path=...)``).

    The statistics of ORT's ``MinMaxCalibrater`` (min / max over all calibration inputs, same
    unoptimized session), for the tensors ORT would select among ``nodes``: the graph is run
    with those tensors as extra outputs. Returns the number of tensors.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    infos = {v.name: v for v in (*graph.value_info, *graph.output, *graph.input)}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    names: list[str] = []
    for node in graph.node:
        if node.name not in nodes:
            continue
        for t in (*node.input, *node.output):
            info = infos.get(t)
            if (
                t
                and t not in inits
                and t not in names
                and info is not None
                and info.type.tensor_type.elem_type in floats
            ):
                names.append(t)
    fetch = [t for t in names if t != input_name]  # the network input is read from the feed
    outputs = {o.name for o in graph.output}
    graph.output.extend(infos[t] for t in fetch if t not in outputs)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    low = dict.fromkeys(names, np.inf)
    high = dict.fromkeys(names, -np.inf)
    for x in inputs:
        feed = np.ascontiguousarray(x, np.float32)
        values = dict(zip(fetch, sess.run(fetch, {input_name: feed}), strict=True))
        values[input_name] = feed
        for t in names:
            v = values[t]
            low[t] = min(low[t], float(np.nanmin(v)))
            high[t] = max(high[t], float(np.nanmax(v)))
    data = {t: (np.array([low[t]], np.float32), np.array([high[t]], np.float32)) for t in names}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache_path)
    logger.debug("scoped MinMax calibration of %d tensors", len(names))
    return len(names)


def inline_identity_initializers(model_proto: Any) -> int:
    """Replace ``Identity`` nodes that read an initializer by a copy of that initializer
    under the node's output name (in place); returns how many were replaced.

    The TorchScript exporter de-duplicates equal parameters (e.g. the identical folded BN
    biases of a freshly initialised model) and feeds the copies through ``Identity`` nodes. A
    conv bias that is not an initializer keeps ONNX Runtime's quantizer / QDQ fusion from
    turning the conv into a ``QLinearConv``.
    """
    graph = model_proto.graph
    inits = {t.name: t for t in graph.initializer}
    keep, n = [], 0
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            t = type(inits[node.input[0]])()
            t.CopyFrom(inits[node.input[0]])
            t.name = node.output[0]
            graph.initializer.append(t)
            n += 1
        else:
            keep.append(node)
    if n:
        del graph.node[:]
        graph.node.extend(keep)
    return n


def _copy_metadata(src_proto: Any, dst: Path) -> None:
    """Copy ``metadata_props`` of ``src_proto`` into the ONNX file ``dst`` (in place)."""
    import onnx

    props = {p.key: p.value for p in src_proto.metadata_props}
    if not props:
        return
    out = onnx.load(str(dst))
    existing = {p.key for p in out.metadata_props}
    for k, v in props.items():
        if k not in existing:
            entry = out.metadata_props.add()
            entry.key, entry.value = k, v
    onnx.save(out, str(dst))
