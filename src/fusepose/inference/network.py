"""Networks as the pipelines see them: ``net(x (B, 3, H, W) float32) -> [outputs as float32]``.

Two implementations of one call: :class:`TorchNetwork` (an ``nn.Module``, optionally the
optimised inference copy and ``torch.compile``) and ONNX Runtime
(:class:`fusepose.export.runtime.OnnxRunner`). Both return the deployed output layout
(:class:`fusepose.models.deploy.InferenceWrapper`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from fusepose.cpu import unavailable_bf16
from fusepose.errors import ConfigError
from fusepose.export.optimize import optimize_for_inference
from fusepose.models.deploy import InferenceWrapper

logger = logging.getLogger(__name__)

__all__ = ["TorchNetwork", "resolve_device"]


def resolve_device(device: str | torch.device) -> str:
    """``auto`` -> cuda when available, else cpu; ConfigError for an unusable device."""
    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device {device!r}: use cpu, cuda, cuda:N or auto")
    return device


class TorchNetwork:
    """A PyTorch pose network behind the pipeline call.

    model: an ``nn.Module`` with ``.info`` (eval mode is set). optimize: run an inference copy
    (``fusepose.export.optimize.optimize_for_inference``: BN folded, cheaper attention
    operators, channels-last on CPU; the same outputs up to float rounding). compile: also
    ``torch.compile`` it; if compilation fails it warns once and runs uncompiled.
    precision: ``fp32``, or ``bf16`` (``torch.autocast`` to bfloat16: oneDNN's bf16
    convolutions; on a CPU without AVX512_BF16 / AMX-BF16 a ConfigError says so, unless
    ``emulate_bf16``, which runs PyTorch's slow emulation: for accuracy checks only). INT8 has
    no PyTorch path here (ONNX Runtime and OpenVINO run it).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str = "cpu",
        optimize: bool = True,
        compile: bool = False,  # noqa: A002 - mirrors torch.compile
        precision: str = "fp32",
        emulate_bf16: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision {precision!r} on the torch backend: use fp32 or bf16 "
                              "(int8 runs with --backend onnx or openvino)")  # fmt: skip
        if precision == "bf16" and self.device == "cpu" and not emulate_bf16:
            reason = unavailable_bf16()
            if reason:
                raise ConfigError(reason)
        self.precision = precision
        self.model = model.to(self.device).eval()
        self.kind = model.info.kind
        net = optimize_for_inference(self.model, channels_last=self.device == "cpu") if optimize else self.model
        self.eager = InferenceWrapper(net, kind=self.kind).eval()
        self.compiled = bool(compile)
        # dynamic=None: a second input shape triggers one shape-generic recompile
        self.module: Any = torch.compile(self.eager) if compile else self.eager

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        cast = torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")  # fmt: skip
        with torch.inference_mode(), cast:
            try:
                out = self.module(xt)
            except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, say so
                if not self.compiled:
                    raise
                logger.warning("torch.compile failed (%s: %s); running uncompiled",
                               type(e).__name__, str(e).splitlines()[0][:200])  # fmt: skip
                self.compiled = False
                self.module = self.eager
                out = self.module(xt)
        return [o.float().cpu().numpy() for o in out]
