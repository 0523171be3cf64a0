"""INT8 for ONNX Runtime: calibration inputs and static quantization.

:func:`quantize_int8`: ONNX Runtime static INT8 quantization (QDQ, per-channel 7-bit weights;
L-MFNet: the head only), calibrated on real or synthetic images preprocessed exactly as the
Predictor does (:func:`calibration_inputs`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.cpu import has_vnni
from fusepose.data.io import read_image
from fusepose.data.synth import synthetic_image
from fusepose.errors import CheckpointError, ConfigError, DataError
from fusepose.files import cached_file
from fusepose.geometry import letterbox_matrix, warp_image

logger = logging.getLogger(__name__)

__all__ = ["INT8_SCOPES", "calibration_inputs", "default_reduce_range",
           "inline_identity_initializers", "int8_scope", "quantize_cached", "quantize_int8"]  # fmt: skip


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
    normalised with ``fusepose.geometry.normalize``. ``num_synthetic`` textured synthetic
    images are added (``fusepose.data.synth.synthetic_image``).
    """
    h, w = int(input_hw[0]), int(input_hw[1])
    frames: list[np.ndarray] = []
    for item in images or ():
        if isinstance(item, np.ndarray):
            img = item
        else:
            img = read_image(item)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise DataError(
                f"calibration image {getattr(item, 'name', '<array>')}: "
                f"expected (H, W, 3) uint8 BGR, got {img.shape} {img.dtype}"
            )
        frames.append(img)
    if num_synthetic:
        frames += [synthetic_image(h, w, seed=seed + i) for i in range(num_synthetic)]
    if not frames:
        raise ConfigError("calibration needs at least one image (images= or num_synthetic=)")
    out = []
    for img in frames:
        m = letterbox_matrix(img.shape[:2], (h, w))
        out.append(warp_image(img, m, (w, h))[None])
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


def default_reduce_range() -> bool:
    """7-bit weights unless this CPU has VNNI (whose ``vpdpbusd`` does not saturate)."""
    return not has_vnni()


def quantize_cached(
    fp32_path: str | Path,
    inputs: Callable[[], Sequence[np.ndarray]],
    *,
    scope: str | None = "auto",
    reduce_range: bool | None = None,
    calibration_key: str = "",
    cache_dir: str | Path | None = None,
) -> Path:
    """:func:`quantize_int8` of ``fp32_path`` into ``cache_dir`` (default
    ``~/.cache/fusepose/int8``), reused when present.

    ``inputs()`` gives the calibration inputs (called only when the file must be made);
    ``calibration_key`` names them (e.g. the image names). The cached file's name holds a hash
    of the fp32 file, the scope, the weight range, the calibration key and this module's
    source, so a stale file is never reused. ``reduce_range`` None: :func:`default_reduce_range`.
    """
    fp32_path = Path(fp32_path)
    if not fp32_path.is_file():
        raise CheckpointError(f"{fp32_path}: ONNX file not found")
    rr = default_reduce_range() if reduce_range is None else bool(reduce_range)
    digest = hashlib.sha1(fp32_path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(f"{scope}|{rr}|{calibration_key}".encode())
    folder = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "fusepose" / "int8"
    out = folder / f"{fp32_path.stem}_int8_{digest.hexdigest()[:12]}.onnx"
    # a verified entry only (atomic, checksummed): a killed quantization is made again
    return cached_file(
        out, lambda tmp: quantize_int8(fp32_path, tmp, list(inputs()), scope=scope, reduce_range=rr)
    )[0]


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
    reduce_range: bool | None = None,
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
    (L-MFNet: the head only), else the whole graph; None or ``"whole"``: the whole graph.
    ``op_types``: operators to quantize (default None: every operator ONNX Runtime can
    quantize, so consecutive int8 ops need no Q/DQ in between; convolutions only was no
    faster than fp32 on L-MFNet because of the Q/DQ and layout changes around every conv).
    ``exclude_attention``: keep the nodes of attention modules (CBAM / HSA: tiny MLP and 7x7
    convs on pooled maps, <1 % of the MACs) in float; quantizing them lets ONNX Runtime fuse
    ``QLinearGlobalAveragePool`` nodes that fail at run time on some scales (excluding only the
    GlobalAveragePool is not enough: the fusion needs just its neighbours' Q/DQ).
    ``exclude_depthwise``: keep grouped (depthwise) convs in float.
    ``reduce_range``: 7-bit weights (default None: on CPUs without VNNI, full 8 bits with
    VNNI, :func:`default_reduce_range`). ONNX Runtime's u8 x s8 kernel on x86 CPUs
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
    from onnxruntime.quantization import quantize_static

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if not fp32_path.is_file():
        raise CheckpointError(f"{fp32_path}: ONNX file not found")
    cache = Path(calibration_cache) if calibration_cache is not None else None
    if not inputs and not (cache is not None and cache.is_file()):
        raise ConfigError("quantize_int8: no calibration inputs")
    enums = _ort_enums(method, activation_type, weight_type, quant_format)
    model_proto = onnx.load(str(fp32_path))
    inits = {t.name for t in model_proto.graph.initializer}
    input_name = next(i.name for i in model_proto.graph.input if i.name not in inits)
    if reduce_range is None:
        reduce_range = default_reduce_range()
    scope, nodes, exclude = _node_selection(model_proto, scope, exclude_attention,
                                            exclude_depthwise)  # fmt: skip
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _prepared_copy(model_proto, int8_path.with_suffix(".prep.onnx"), preprocess)
    # A scoped quantization needs the ranges of its own tensors only: collect them directly
    # (seconds) instead of ORT's calibrator, which adds a ReduceMin / ReduceMax pair to every
    # tensor of the graph (minutes on L-MFNet at 512). Same MinMax statistics. The whole graph
    # the same way: every node's float tensors fetched directly, one input at a time.
    scoped_cache = None
    calib_options = any(k.startswith(("Calib", "SmoothQuant")) for k in (extra_options or {}))
    if method == "minmax" and cache is None and inputs and not calib_options:
        scoped_cache = cache = int8_path.with_suffix(".calib.json")
        calibrated = set(nodes) if nodes else {n.name for n in model_proto.graph.node}
        _scoped_minmax_cache(tmp, calibrated, inputs, input_name, scoped_cache)
    try:
        quantize_static(
            str(tmp), str(int8_path),
            _reader(inputs, input_name) if inputs and scoped_cache is None else None,
            per_channel=per_channel, reduce_range=reduce_range,
            op_types_to_quantize=list(op_types) if op_types else None, nodes_to_quantize=nodes,
            nodes_to_exclude=exclude, extra_options=dict(extra_options or {}),
            calibration_cache_path=str(cache) if cache is not None else None, **enums,
        )  # fmt: skip
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


def _prepared_copy(model_proto: Any, path: Path, preprocess: bool) -> Path:
    """Save the model to quantize at ``path``: Identity-fed initializers inlined (in place,
    :func:`inline_identity_initializers`), then ``quant_pre_process`` when ``preprocess``."""
    import onnx

    n_inlined = inline_identity_initializers(model_proto)
    onnx.save(model_proto, str(path))
    logger.debug("inlined %d Identity-fed initializers", n_inlined)
    if preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(path), str(path), skip_symbolic_shape=True)
    return path


def _reader(inputs: Sequence[np.ndarray], input_name: str) -> Any:
    """An ONNX Runtime ``CalibrationDataReader`` over ``inputs``."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(list(inputs))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {input_name: np.ascontiguousarray(x, np.float32)}

    return _Reader()


def _ort_enums(method: str, activation_type: str, weight_type: str,
               quant_format: str) -> dict[str, Any]:  # fmt: skip
    """``quantize_static``'s enum arguments of the string options (ConfigError, one line, for
    a value it does not know)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

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
    return {"calibrate_method": methods[method], "activation_type": types[activation_type],
            "weight_type": types[weight_type], "quant_format": formats[quant_format]}  # fmt: skip


def _node_selection(
    model_proto: Any, scope: str | None, exclude_attention: bool, exclude_depthwise: bool
) -> tuple[str | None, list[str] | None, list[str]]:
    """``(scope, nodes to quantize (None: all), nodes to exclude)`` of :func:`quantize_int8`'s
    ``scope`` ("auto": the model's :data:`INT8_SCOPES` entry; "whole" or None: everything) /
    ``exclude_attention`` / ``exclude_depthwise``."""
    if scope == "auto":
        meta = {p.key: p.value for p in model_proto.metadata_props}
        scope = int8_scope(meta.get("fusepose.model_name"))
    elif scope == "whole":
        scope = None

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
    return scope, nodes, exclude


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
