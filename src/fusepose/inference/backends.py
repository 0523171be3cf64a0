"""Inference paths: a backend (PyTorch, ONNX Runtime, OpenVINO) at a precision (fp32, bf16,
INT8), and the one function that builds the network of a path.

Every network is ``net(x (B, 3, H, W) float32) -> [float32 arrays]`` in the deployed layout
(:class:`~fusepose.inference.network.TorchNetwork`,
:class:`~fusepose.export.runtime.OnnxRunner`,
:class:`~fusepose.export.openvino_runtime.OpenVinoRunner`); the pipeline around it is the same
for all. What runs where:

| backend | fp32 | bf16 | int8 |
|---|---|---|---|
| torch | eager (optimised copy) | ``torch.autocast`` bf16 (oneDNN; needs AVX512_BF16 / AMX) | - |
| onnx | ONNX Runtime | - (no bf16 CPU kernels) | static INT8 QDQ (:mod:`fusepose.export.quantize`) |
| openvino | f32 hint | bf16 hint (needs the CPU plugin's BF16) | the same INT8 QDQ file |

INT8 files are made from the fp32 ONNX file on first use (calibrated on the ``calibration``
images through the model's own pipeline) and cached in ``~/.cache/fusepose/int8``. An OpenVINO
IR (``.xml``, :mod:`fusepose.export.ir`) runs on the openvino backend only; its INT8 version is
made once by ``fusepose export --format openvino --int8`` (NNCF with accuracy control,
:mod:`fusepose.inference.int8_export`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.assets import sample_image
from fusepose.cpu import unavailable_bf16
from fusepose.data.io import read_image
from fusepose.data.synth import synthetic_image
from fusepose.errors import ConfigError
from fusepose.export.ir import is_ir
from fusepose.export.openvino_runtime import OpenVinoRunner, openvino_unavailable
from fusepose.export.quantize import int8_scope, quantize_cached
from fusepose.export.runtime import OnnxRunner, is_quantized
from fusepose.inference.boxes import whole_image_box
from fusepose.inference.network import TorchNetwork

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "INT8_SCOPE_CHOICES", "PRECISIONS", "InferencePath", "calibration_batches",
           "make_network", "unavailable"]  # fmt: skip

BACKENDS = ("torch", "onnx", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
# "auto": the model's measured default (fusepose.export.quantize.INT8_SCOPES; L-MFNet: the
# head), "whole": every quantizable node but attention
INT8_SCOPE_CHOICES = ("auto", "whole")
CACHE = Path.home() / ".cache" / "fusepose"


@dataclass(frozen=True)
class InferencePath:
    """One way to run a network: ``backend`` x ``precision`` (INT8: and its ``int8_scope``)."""

    backend: str
    precision: str = "fp32"
    int8_scope: str = "auto"

    @property
    def label(self) -> str:
        """``"onnx"``, ``"torch bf16"``, ``"onnx int8"``, ``"onnx int8 whole"``."""
        text = self.backend if self.precision == "fp32" else f"{self.backend} {self.precision}"
        return text + (" whole" if self.precision == "int8" and self.int8_scope == "whole" else "")

    def to_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "precision": self.precision,
                "int8_scope": self.int8_scope}  # fmt: skip


def unavailable(backend: str, precision: str) -> str | None:
    """None when ``backend`` can run ``precision`` on this CPU, else the one-line reason."""
    if backend not in BACKENDS:
        return f"backend {backend!r}: use one of {', '.join(BACKENDS)} or auto"
    if precision not in PRECISIONS:
        return f"precision {precision!r}: use one of {', '.join(PRECISIONS)}"
    if backend == "torch":
        if precision == "int8":
            return "int8 has no PyTorch path here: use --backend onnx or openvino"
        return unavailable_bf16() if precision == "bf16" else None
    if backend == "onnx":
        if precision == "bf16":
            return "bf16 on ONNX Runtime: its CPU provider has no bf16 kernels (use openvino or torch)"
        return None
    return openvino_unavailable(precision)


def calibration_batches(pipeline: Any, images: Sequence[Any] | None = None,
                        num_synthetic: int = 3) -> list[np.ndarray]:  # fmt: skip
    """Network inputs ``(1, 3, H, W)`` made by ``pipeline.prepare`` (exactly as the Predictor
    feeds the network; top-down: one whole-image crop) of ``images`` (paths or BGR arrays;
    default the bundled sample photo) plus ``num_synthetic`` textured synthetic images."""
    frames = [read_image(p) if not isinstance(p, np.ndarray) else p
              for p in (images if images else [sample_image()])]  # fmt: skip
    frames += [synthetic_image(seed=i) for i in range(num_synthetic)]
    return [pipeline.prepare(im, whole_image_box(im)).batches[0][:1] for im in frames]


def _images_key(images: Sequence[Any] | None) -> str:
    if not images:
        return "sample+3syn"
    h = hashlib.sha1()
    for p in images:
        h.update(p.tobytes() if isinstance(p, np.ndarray) else Path(p).read_bytes())
    return h.hexdigest()[:12]


def exported_file(module: Any, desc: Any, cache_dir: str | Path | None = None) -> Path:
    """The optimised ONNX export of ``module`` with ``desc`` (fixed or dynamic as
    :func:`~fusepose.export.package.default_dynamic` says), cached in ``cache_dir``."""
    from fusepose.export.cache import export_cached
    from fusepose.export.package import default_dynamic

    folder = Path(cache_dir) if cache_dir else CACHE / "exports"
    return export_cached(module, desc.model, desc.geometry.size, folder, "auto", desc=desc,
                         dynamic=default_dynamic(desc))  # fmt: skip


def make_network(
    path: InferencePath,
    *,
    module: Any = None,
    onnx_file: str | Path | None = None,
    desc: Any = None,
    pipeline: Any = None,
    threads: int | None = None,
    device: str = "cpu",
    optimize: bool = True,
    compile: bool = False,  # noqa: A002 - mirrors torch.compile
    calibration: Sequence[Any] | None = None,
    emulate_bf16: bool = False,
    cache_dir: str | Path | None = None,
) -> Any:
    """The network of ``path``: torch from ``module``; ONNX Runtime / OpenVINO from
    ``onnx_file`` (else an export of ``module`` with ``desc``, cached). INT8 quantizes the fp32
    file on first use, calibrated on :func:`calibration_batches` of ``pipeline`` (a file that
    is already INT8 runs as it is). ConfigError (one line) when the path is not available on
    this CPU or lacks its input."""
    reason = unavailable(path.backend, path.precision)
    if reason and not (emulate_bf16 and path.backend == "torch" and path.precision == "bf16"):
        raise ConfigError(reason)
    if path.backend == "torch":
        if module is None:
            raise ConfigError("--backend torch needs a checkpoint or a registered model, not an "
                              ".onnx file")  # fmt: skip
        return TorchNetwork(module, device, optimize=optimize, compile=compile,
                            precision=path.precision, emulate_bf16=emulate_bf16)  # fmt: skip
    if onnx_file is None:
        if module is None:
            raise ConfigError(f"--backend {path.backend} needs an .onnx file")
        onnx_file = exported_file(module, desc, cache_dir and Path(cache_dir) / "exports")
    onnx_file = Path(onnx_file)
    if is_ir(onnx_file) and path.backend != "openvino":
        raise ConfigError(f"{onnx_file}: an OpenVINO IR runs on --backend openvino only")
    if path.precision == "int8" and is_ir(onnx_file) and not is_quantized(onnx_file):
        raise ConfigError(f"{onnx_file}: an fp32 IR; write its INT8 IR with `fusepose export "
                          "--format openvino --int8`")  # fmt: skip
    if path.precision == "int8" and not is_quantized(onnx_file):
        if pipeline is None:
            raise ConfigError("int8: calibration needs the model's pipeline")
        scope = "whole" if path.int8_scope == "whole" else "auto"
        onnx_file = quantize_cached(
            onnx_file, lambda: calibration_batches(pipeline, calibration), scope=scope,
            calibration_key=_images_key(calibration),
            cache_dir=Path(cache_dir) / "int8" if cache_dir else None,
        )  # fmt: skip
        logger.info("INT8 (%s) file: %s", scope if scope == "whole" else
                    int8_scope(desc.model if desc else None) or "whole graph", onnx_file)  # fmt: skip
    if path.backend == "onnx":
        return OnnxRunner(onnx_file, num_threads=threads, device=device)
    return OpenVinoRunner(onnx_file, num_threads=threads,
                          precision="fp32" if path.precision == "int8" else path.precision)  # fmt: skip
