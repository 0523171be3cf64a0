"""The limit on each perf row: a model's MACs at the best dense rate this CPU reaches.

:func:`dense_rates` measures, in the same run as the rows it judges, the best multiply-
accumulate rate of dense work per precision: fp32 (ONNX Runtime's 1024^3 MatMul and 1x1 conv of
:func:`~fusepose.benchmark.machine.measure_peak`, OpenVINO f32 and PyTorch on the same MatMul and
on a dense 3x3 conv of HigherHRNet's stage-2 shape; the fastest of the repetitions) and bf16
where the CPU has it (OpenVINO bf16, PyTorch bf16 tensors). :func:`row_limit` turns a row's GMACs into the MAC-bound time (the
network's time if every MAC ran at that rate: :func:`~fusepose.benchmark.machine.flop_bound_ms`)
and the row's ratio to it. An INT8 row is judged against the bf16 rate where there is one,
else fp32 (its MACs are mixed; the INT8 kernels have no probe of their own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fusepose.benchmark.machine import flop_bound_ms, measure_peak
from fusepose.cpu import has_bf16

logger = logging.getLogger(__name__)

__all__ = ["dense_rates", "row_limit"]

MATMUL_N = 1024
# HigherHRNet-W32's stage-2 branch-1 conv: (1, 64, 64, 64) -> 64, 3x3 (the dense work it is made of)
CONV3X3 = (64, 64, 64, 64)


def _best_s(fn: Callable[[], Any], reps: int) -> float:
    """The fastest of ``reps`` calls after one warm-up (a peak rate: the least disturbed run)."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _onnx_probes() -> dict[str, tuple[bytes, dict[str, np.ndarray], int]]:
    """``name -> (model bytes, feeds, MACs)`` of the MatMul and the dense 3x3 conv."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    n = MATMUL_N
    c_in, c_out, h, w = CONV3X3
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    x = rng.standard_normal((1, c_in, h, w), dtype=np.float32)
    k = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32) * 0.05

    def model(node, name: str, shape, out_shape, init) -> bytes:
        g = helper.make_graph([node], "probe", [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [onnx.numpy_helper.from_array(init, "w")])  # fmt: skip
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        return m.SerializeToString()

    mm = model(helper.make_node("MatMul", ["a", "w"], ["y"]), "a", [n, n], [n, n], b)
    conv = model(helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), "x",
                 list(x.shape), [1, c_out, h, w], k)  # fmt: skip
    return {"matmul": (mm, {"a": a}, n**3), "conv3x3": (conv, {"x": x}, k.size * h * w)}


def _openvino_rates(threads: int, precision: str, reps: int) -> dict[str, float]:
    try:
        import openvino as ov
    except ImportError:
        return {}
    core = ov.Core()
    out = {}
    for name, (blob, feeds, macs) in _onnx_probes().items():
        model = core.read_model(blob, b"")
        cfg = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": threads,
               "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}  # fmt: skip
        req = core.compile_model(model, "CPU", cfg).create_infer_request()
        x = next(iter(feeds.values()))
        out[f"openvino_{name}"] = macs / _best_s(lambda req=req, x=x: req.infer({0: x}), reps) / 1e9
    return out


def _torch_rates(threads: int, precision: str, reps: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        n = MATMUL_N
        a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
        c_in, c_out, h, w = CONV3X3
        x = (
            torch.randn(1, c_in, h, w, generator=g)
            .to(dtype)
            .contiguous(memory_format=torch.channels_last)
        )
        k = (torch.randn(c_out, c_in, 3, 3, generator=g) * 0.05).to(dtype)
        with torch.inference_mode():
            mm = _best_s(lambda: a @ b, reps)
            conv = _best_s(lambda: F.conv2d(x, k, padding=1), reps)
    finally:
        torch.set_num_threads(old)
    return {"torch_matmul": n**3 / mm / 1e9, "torch_conv3x3": k.numel() * h * w / conv / 1e9}


def dense_rates(threads: int = 2, reps: int = 10,
                peak: dict[str, float] | None = None) -> dict[str, dict[str, float]]:  # fmt: skip
    """Measured dense GMAC/s per precision and probe, e.g. ``{"fp32": {"onnx_matmul": 70.1,
    "openvino_conv3x3": 88.0, ...}, "bf16": {...}}`` (bf16 only on a CPU with native bf16).
    ``peak``: :func:`~fusepose.benchmark.machine.measure_peak`'s result when the caller has just
    measured it (not measured twice)."""
    peak = peak or measure_peak(threads, reps)
    rates: dict[str, dict[str, float]] = {
        "fp32": {"onnx_matmul": peak["matmul"], "onnx_conv1x1": peak["conv1x1"],
                 **_openvino_rates(threads, "fp32", reps), **_torch_rates(threads, "fp32", reps)},
    }  # fmt: skip
    if has_bf16():
        rates["bf16"] = {**_openvino_rates(threads, "bf16", reps),
                         **_torch_rates(threads, "bf16", reps)}  # fmt: skip
    return {p: {k: round(v, 2) for k, v in r.items()} for p, r in rates.items()}


def row_limit(gmacs: float, precision: str, network_ms: float,
              rates: dict[str, dict[str, float]]) -> dict[str, Any] | None:  # fmt: skip
    """The MAC-bound time of a row and its ratio: ``{"precision", "probe", "rate_gmac_s",
    "limit_ms", "over_limit"}`` (``over_limit`` = network ms / limit ms), or None without a
    rate for the row's precision."""
    if precision == "int8":  # mixed INT8 / float kernels: the best float rate here
        key = "bf16" if rates.get("bf16") else "fp32"
    else:
        key = precision
    if precision not in ("fp32", "bf16", "int8") or not rates.get(key):
        return None
    probe, best = max(rates[key].items(), key=lambda kv: kv[1])
    limit = flop_bound_ms(gmacs * 1e9, {"matmul": best, "conv1x1": best})
    return {"precision": key, "probe": probe, "rate_gmac_s": best, "limit_ms": round(limit, 2),
            "over_limit": round(network_ms / limit, 3) if limit > 0 else None}  # fmt: skip
