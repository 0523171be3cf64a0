"""INT8 OpenVINO models with NNCF: post-training quantization, and accuracy control that
decides what stays in float (optional extra ``fusepose[openvino]``, which brings ``nncf``).

:func:`quantize_openvino` runs ``nncf.quantize`` (no metric given) or
``nncf.quantize_with_accuracy_control`` (a ``metric(compiled, n)`` given: the metric of a
compiled candidate on the first ``n`` validation images, higher is better): NNCF quantizes
everything it can, measures the metric, ranks the quantized operations by how much reverting
each one brings the outputs back to fp32 (NMSE of the network outputs on the validation
inputs) and reverts them to float, greedily, until the metric is within ``max_drop`` of the
fp32 model's. What NNCF's options do here:

- calibration: activation ranges over network inputs made exactly as the Predictor makes them,
  ``activation_ranges`` "minmax" (global min / max; default) or "mean_minmax" (NNCF's default:
  the mean over inputs of each input's min / max; it clipped the heatmap activations of the
  overfit L-MFNet that only the real images reach, AP 0.71 against 0.96 in fp32), weights
  per-channel min / max, then bias correction (fast, or NNCF's slower full one);
- ``overflow_fix``: 7-bit weights in the layers where an 8-bit ``u8 x s8`` product pair can
  saturate the int16 sums of ``vpmaddubsw`` (x86 without VNNI); :func:`default_overflow_fix`
  picks it from :func:`fusepose.cpu.has_vnni` (the same choice as ONNX Runtime's
  ``reduce_range`` in :mod:`fusepose.export.quantize`);
- SmoothQuant is not offered: NNCF runs it for ``ModelType.TRANSFORMER`` only (activation
  outliers per channel feeding MatMuls); a convolutional pose network has none to move;
- ``operations``: "compute" (default) quantizes the inputs of convolutions and MatMuls only
  (every other operator type goes into NNCF's ignored scope), "all" whatever NNCF quantizes
  (also element-wise adds and multiplies, concats, pooling, resizes: on the overfit L-MFNet
  AP 0.948, p90 keypoint change 2.6 px, against 0.955 and 1.7 px with "compute");
- ``ignored_types`` / ``ignored_names`` / ``ignored_patterns``: operator types / node names /
  name regexes kept in float from the start (NNCF's ignored scope).

The result's report (:class:`Int8Report`) says what stayed in float: every convolution or
MatMul whose input is not fed by a ``FakeQuantize`` in the final model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fusepose.cpu import has_vnni
from fusepose.errors import ConfigError
from fusepose.export.ir import INSTALL

logger = logging.getLogger(__name__)

__all__ = ["Int8Report", "Int8Settings", "default_overflow_fix", "float_operations",
           "quantize_openvino"]  # fmt: skip

# operators whose INT8 kernels are where the speed is (their data input quantized or not)
COMPUTE_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")
# ops between a FakeQuantize and a compute op that keep its input INT8 (first input followed)
AGNOSTIC_TYPES = ("Concat", "Reshape", "Transpose", "ReduceMax", "MaxPool", "Slice",
                  "StridedSlice", "Split", "VariadicSplit", "Squeeze", "Unsqueeze")  # fmt: skip
# NNCF's decompression of INT8 weights: Constant (i8) -> Convert -> [Subtract] -> Multiply
DEQUANTIZE_TYPES = ("Convert", "Subtract", "Multiply")
PRESETS = ("performance", "mixed")
# what NNCF may quantize: the inputs of COMPUTE_TYPES only, or everything it knows ("all": also
# element-wise adds / multiplies, concats, pooling, resizes)
OPERATIONS = ("compute", "all")
# activation ranges: global min / max over the calibration inputs, or NNCF's default (the mean
# over inputs of each input's min / max, which clips what only some inputs reach)
ACTIVATION_RANGES = ("minmax", "mean_minmax")
OVERFLOW_FIXES = ("enable", "first_layer_only", "disable")

# a candidate's metric: (compiled openvino model, first n validation images) -> float
Metric = Callable[[Any, int], float]


def default_overflow_fix() -> str:
    """``"disable"`` (full 8-bit weights) on a CPU with VNNI, whose ``vpdpbusd`` accumulates in
    int32; ``"enable"`` (7-bit weights where needed) on one without, whose ``vpmaddubsw``
    saturates int16 pair sums."""
    return "disable" if has_vnni() else "enable"


@dataclass(frozen=True)
class Int8Settings:
    """How NNCF quantizes (see the module docstring). ``overflow_fix`` None: by this CPU
    (:func:`default_overflow_fix`). ``max_drop``: the largest metric drop accuracy control
    accepts (absolute)."""

    preset: str = "performance"
    operations: str = "compute"
    activation_ranges: str = "minmax"
    overflow_fix: str | None = None
    fast_bias_correction: bool = True
    ignored_types: tuple[str, ...] = ()
    ignored_names: tuple[str, ...] = ()
    ignored_patterns: tuple[str, ...] = ()
    max_drop: float = 0.01
    max_iterations: int | None = None

    def check(self) -> None:
        """ConfigError (one line) for a value NNCF would not take."""
        if self.preset not in PRESETS:
            raise ConfigError(f"int8 preset {self.preset!r}: use one of {', '.join(PRESETS)}")
        if self.operations not in OPERATIONS:
            raise ConfigError(f"int8 operations {self.operations!r}: use one of "
                              f"{', '.join(OPERATIONS)}")  # fmt: skip
        if self.activation_ranges not in ACTIVATION_RANGES:
            raise ConfigError(f"activation ranges {self.activation_ranges!r}: use one of "
                              f"{', '.join(ACTIVATION_RANGES)}")  # fmt: skip
        if self.overflow_fix is not None and self.overflow_fix not in OVERFLOW_FIXES:
            raise ConfigError(f"overflow fix {self.overflow_fix!r}: use one of "
                              f"{', '.join(OVERFLOW_FIXES)}")  # fmt: skip
        if not self.max_drop >= 0:
            raise ConfigError(f"max drop {self.max_drop}: must be >= 0")


@dataclass
class Int8Report:
    """What :func:`quantize_openvino` did: the settings as run, the metric before / after,
    and the compute operations that stayed in float (``float_ops``, graph names) out of
    ``compute_ops``."""

    tool: str
    mode: str
    settings: dict[str, Any]
    calibration_inputs: int
    compute_ops: int = 0
    float_ops: list[str] = field(default_factory=list)
    metric_fp32: float | None = None
    metric_int8: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: mode, how much is INT8, the metric."""
        text = (f"{self.mode}: {self.compute_ops - len(self.float_ops)} of {self.compute_ops} "
                f"conv / matmul ops in INT8, {len(self.float_ops)} kept in float")  # fmt: skip
        if self.metric_int8 is not None and self.metric_fp32 is not None:
            text += f"; metric {self.metric_int8:.4f} vs fp32 {self.metric_fp32:.4f}"
        return text


def _nncf() -> Any:
    try:
        import nncf
    except ImportError:
        raise ConfigError(f"INT8 with accuracy control needs nncf ({INSTALL})") from None
    return nncf


def _nncf_kwargs(nncf: Any, settings: Int8Settings, model: Any) -> tuple[dict[str, Any], Any]:
    """The options ``nncf.quantize`` and ``nncf.quantize_with_accuracy_control`` share, and
    their advanced quantization parameters (named differently by the two)."""
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    fix = settings.overflow_fix or default_overflow_fix()
    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix(fix))
    if settings.activation_ranges == "minmax":
        advanced.activations_range_estimator_params = RangeEstimatorParametersSet.MINMAX
    kwargs: dict[str, Any] = {
        "preset": nncf.QuantizationPreset(settings.preset),
        "fast_bias_correction": settings.fast_bias_correction,
        "target_device": nncf.TargetDevice.CPU,
    }
    names = [op.get_friendly_name() for op in model.get_ops()]
    ignored_names = [n for n in settings.ignored_names if n in names]
    present = {op.get_type_name() for op in model.get_ops()}
    ignored_types = [t for t in settings.ignored_types if t in present]
    if settings.operations == "compute":
        ignored_types += sorted(present - set(COMPUTE_TYPES) - set(ignored_types))
    if ignored_names or ignored_types or settings.ignored_patterns:
        kwargs["ignored_scope"] = nncf.IgnoredScope(
            names=ignored_names, types=ignored_types, patterns=list(settings.ignored_patterns),
            validate=False)  # fmt: skip
    return kwargs, advanced


def _int8_source(value: Any, weights: bool = False) -> bool:
    """Whether an op input comes from a ``FakeQuantize`` through quantize-agnostic ops only
    (layout / selection ops that OpenVINO runs on INT8 tensors as they are), or, for weights,
    from an INT8 constant (NNCF stores quantized weights as i8 / u8 + Convert)."""
    node = value.get_node()
    for _ in range(16):
        kind = node.get_type_name()
        if kind == "FakeQuantize":
            return True
        if weights and kind == "Constant":
            return node.get_element_type().get_type_name() in ("i8", "u8")
        if kind not in AGNOSTIC_TYPES and not (weights and kind in DEQUANTIZE_TYPES):
            return False
        node = node.input_value(0).get_node()
    return False


def float_operations(model: Any) -> tuple[int, list[str]]:
    """``(number of compute ops, names of those not running in INT8)`` of an
    ``openvino.Model``: compute ops are :data:`COMPUTE_TYPES`; one runs in INT8 when its data
    input and its weights are quantized (:func:`_int8_source`)."""
    total, floats = 0, []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in COMPUTE_TYPES:
            continue
        total += 1
        data = _int8_source(op.input_value(0))
        weights = op.get_input_size() < 2 or _int8_source(op.input_value(1), weights=True)
        if not (data and weights):
            floats.append(op.get_friendly_name())
    return total, floats


def quantize_openvino(
    model: Any,
    calibration: Sequence[np.ndarray],
    *,
    metric: Metric | None = None,
    validation: Sequence[np.ndarray] = (),
    settings: Int8Settings | None = None,
) -> tuple[Any, Int8Report]:
    """INT8 copy of the ``openvino.Model`` and the report of what NNCF did.

    calibration: network inputs ``(1, 3, H, W)`` float32. metric: None for plain PTQ; else
    accuracy control with ``metric(compiled, n)`` on the first ``n`` of the validation images,
    whose network inputs are ``validation`` (in the same order: they rank the operations).
    """
    settings = settings or Int8Settings()
    settings.check()
    if not calibration:
        raise ConfigError("INT8 calibration needs at least one input")
    if metric is not None and not validation:
        raise ConfigError("accuracy control needs the validation images' network inputs")
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    start = time.perf_counter()
    kwargs, advanced = _nncf_kwargs(nncf, settings, model)
    calib = nncf.Dataset([np.ascontiguousarray(x, np.float32) for x in calibration])
    kwargs["subset_size"] = len(calibration)
    report = Int8Report(
        tool=f"nncf {nncf.__version__}",
        mode="ptq" if metric is None else "accuracy_control",
        settings={**asdict(settings), "overflow_fix": settings.overflow_fix or default_overflow_fix()},
        calibration_inputs=len(calibration),
    )  # fmt: skip
    if metric is None:
        quantized = nncf.quantize(model, calib, advanced_parameters=advanced, **kwargs)
    else:
        inputs = [np.ascontiguousarray(x, np.float32) for x in validation]
        values: dict[str, float] = {}
        validation_fn = _validation_fn(metric, inputs, values)
        restorer = AdvancedAccuracyRestorerParameters(num_ranking_workers=1)
        if settings.max_iterations is not None:
            restorer.max_num_iterations = int(settings.max_iterations)
        quantized = nncf.quantize_with_accuracy_control(
            model, calib, nncf.Dataset(list(range(len(inputs))), lambda i: inputs[i]),
            validation_fn, max_drop=settings.max_drop,
            advanced_quantization_parameters=advanced,
            advanced_accuracy_restorer_parameters=restorer, **kwargs,
        )  # fmt: skip
        report.metric_fp32 = values.get("first")
        # the returned model's own metric (NNCF's last validation may be a rejected candidate)
        compiled = _compile_f32(quantized)
        report.metric_int8 = float(metric(compiled, len(inputs)))
    report.compute_ops, report.float_ops = float_operations(quantized)
    report.seconds = round(time.perf_counter() - start, 1)
    logger.info("NNCF INT8 (%s s): %s", report.seconds, report.summary())
    return quantized, report


def _compile_f32(model: Any) -> Any:
    """``model`` compiled for the CPU in f32 (as NNCF compiles its candidates: OpenVINO would
    otherwise run the float parts in bf16 on CPUs that have it)."""
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _validation_fn(metric: Metric, inputs: list[np.ndarray], values: dict[str, float]):
    """NNCF's ``validation_fn(compiled, items) -> (metric, outputs per item)``.

    NNCF passes the indices of the validation images: all of them, or the first one (to learn
    the return type). Returning the network outputs per item makes NNCF rank operations by
    the outputs' NMSE (continuous) instead of by per-image metrics (AP on one image moves in
    steps). ``values["first"]``: the first full validation (NNCF's of the fp32 model)."""

    def validation_fn(compiled: Any, items: Any) -> tuple[float, list[list[np.ndarray]]]:
        idx = [int(i) for i in items]
        if idx != list(range(len(idx))):
            raise ConfigError(f"accuracy control: validation items {idx} are not a prefix")
        value = float(metric(compiled, len(idx)))
        if len(idx) == len(inputs):
            values.setdefault("first", value)
        outputs = []
        for i in idx:
            res = compiled(inputs[i])
            outputs.append([np.array(res[o]) for o in compiled.outputs])
        return value, outputs

    return validation_fn
