"""This machine: CPU, instruction sets and library versions; measured peak MAC rates; the
MAC classes of a model and its FLOP-bound time."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any

import numpy as np

from fusepose.cpu import cpu_model, has_bf16, has_vnni, isa, isa_kind
from fusepose.export.runtime import session_options

__all__ = ["flop_bound_ms", "mac_classes", "machine_info", "measure_peak"]


def machine_info() -> dict[str, Any]:
    """CPU model, its instruction sets (:mod:`fusepose.cpu`), core count and library versions."""
    import cv2
    import onnxruntime
    import torch

    try:
        import openvino

        ov_version = openvino.__version__.split("-")[0]
    except ImportError:
        ov_version = None
    return {
        "cpu": cpu_model(),
        "isa": isa(),
        "isa_kind": isa_kind(),
        "bf16": has_bf16(),
        "vnni": has_vnni(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "openvino": ov_version,
        "platform": platform.platform(),
    }


def _ort_time(model_bytes: bytes, feeds: dict[str, np.ndarray], threads: int, reps: int) -> float:
    """Median seconds of one ``session.run`` of a tiny ONNX graph."""
    import onnxruntime as ort

    sess = ort.InferenceSession(
        model_bytes, session_options(threads), providers=["CPUExecutionProvider"]
    )
    sess.run(None, feeds)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    return float(statistics.median(times))


def measure_peak(threads: int = 2, reps: int = 10) -> dict[str, float]:
    """Measured MAC rates (GMAC/s) of this machine in ONNX Runtime with ``threads`` threads.

    ``matmul``: a 1024^3 fp32 MatMul (the dense upper bound); ``conv1x1``: a 1x1 conv
    128 -> 128 on 64x48 (the dense layer shape of SFM); ``dw3x3``: a 3x3 depthwise conv on
    (1, 192, 64, 48). The FLOP-bound limit of a model is :func:`flop_bound_ms`.
    """
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def graph(nodes, inputs, inits, out_shape):
        g = helper.make_graph(
            nodes, "peak", inputs,
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits,
        )  # fmt: skip
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        return m.SerializeToString()

    out: dict[str, float] = {}
    n = 1024
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = onnx.numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "b")
    m = graph([helper.make_node("MatMul", ["a", "b"], ["y"])],
              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
              [b], [n, n])  # fmt: skip
    out["matmul"] = n**3 / _ort_time(m, {"a": a}, threads, reps) / 1e9

    def conv(c_in: int, c_out: int, k: int, groups: int, hw: tuple[int, int]) -> float:
        w = rng.standard_normal((c_out, c_in // groups, k, k), dtype=np.float32) * 0.05
        x = rng.standard_normal((1, c_in, *hw), dtype=np.float32)
        node = helper.make_node("Conv", ["x", "w"], ["y"], group=groups, pads=[k // 2] * 4)
        mm = graph([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                   [onnx.numpy_helper.from_array(w, "w")], [1, c_out, *hw])  # fmt: skip
        macs = w.size * hw[0] * hw[1]
        return macs / _ort_time(mm, {"x": x}, threads, reps * 3) / 1e9

    out["conv1x1"] = conv(128, 128, 1, 1, (64, 48))
    out["dw3x3"] = conv(192, 192, 3, 192, (64, 48))
    return {k: round(v, 2) for k, v in out.items()}


def mac_classes(model: Any, input_hw: tuple[int, int]) -> dict[str, int]:
    """MACs of one forward split into ``dense`` (groups == 1 convs, transposed convs, linear)
    and ``depthwise`` (grouped convs), from forward hooks at batch 1."""
    import torch
    from torch import nn

    acc = {"dense": 0, "depthwise": 0}

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            macs = mod.weight.numel() * out.shape[2] * out.shape[3]
            acc["dense" if mod.groups == 1 else "depthwise"] += int(macs)
        elif isinstance(mod, nn.ConvTranspose2d):
            acc["dense"] += int(mod.weight.numel() * inp[0].shape[2] * inp[0].shape[3])
        elif isinstance(mod, nn.Linear):
            acc["dense"] += int(mod.weight.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, *input_hw))
    finally:
        for h in handles:
            h.remove()
    return acc


def flop_bound_ms(macs: float, rates_gmac_s: dict[str, float]) -> float:
    """Milliseconds for ``macs`` multiply-accumulates at the best measured dense rate
    (``max(matmul, conv1x1)`` of :func:`measure_peak`, GMAC/s)."""
    best = max(rates_gmac_s["matmul"], rates_gmac_s["conv1x1"])
    return macs / (best * 1e9) * 1e3
