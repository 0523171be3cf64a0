"""OpenVINO runtime for an exported fusepose network: the same ONNX file, metadata and call
as :class:`~fusepose.export.runtime.OnnxRunner` (optional extra ``fusepose[openvino]``), or an
OpenVINO IR (``FILE.xml`` + ``FILE.bin``, :mod:`fusepose.export.ir`) with the same metadata.

OpenVINO compiles the ONNX graph with its own CPU plugin (oneDNN kernels, its own operator
fusions). Precisions: ``fp32`` (``INFERENCE_PRECISION_HINT`` f32, set explicitly because
OpenVINO defaults to bf16 on CPUs that have it), ``bf16`` (needs ``BF16`` in the CPU plugin's
``OPTIMIZATION_CAPABILITIES``) and ``int8`` (an INT8 QDQ file, e.g. from
:func:`fusepose.export.quantize.quantize_int8`, or an INT8 IR from
:mod:`fusepose.export.nncf_int8`; OpenVINO runs the quantized convolutions in INT8 and the
rest in f32).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.errors import CheckpointError, ConfigError
from fusepose.export.ir import is_ir
from fusepose.export.metadata import description_from_metadata, read_metadata
from fusepose.export.runtime import ExportedNetwork, is_quantized

logger = logging.getLogger(__name__)

__all__ = ["OpenVinoRunner", "openvino_unavailable"]

INSTALL = "pip install 'fusepose[openvino]'"


def _core() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise ConfigError(f"--backend openvino needs the openvino package ({INSTALL})") from None
    return ov.Core()


def openvino_unavailable(precision: str = "fp32") -> str | None:
    """None when OpenVINO can run ``precision`` on this CPU, else the one-line reason."""
    try:
        core = _core()
    except ConfigError as e:
        return str(e)
    if precision == "bf16":
        caps = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        if "BF16" not in caps:
            return (f"bf16 is not available on this CPU for OpenVINO (CPU plugin capabilities: "
                    f"{', '.join(caps)})")  # fmt: skip
    return None


class OpenVinoRunner(ExportedNetwork):
    """Run an exported network with OpenVINO on the CPU (see
    :class:`~fusepose.export.runtime.ExportedNetwork` for the call and the shapes).

    num_threads: ``INFERENCE_NUM_THREADS`` (None: OpenVINO's default). precision: ``fp32``,
    ``bf16`` or ``int8`` (the file must then be quantized). One stream, latency hint: one image
    at a time, as the Predictor runs it. ``compiled``: run this ``openvino.CompiledModel``
    instead of compiling the file (whose metadata still describes it).
    """

    def __init__(self, path: str | Path, num_threads: int | None = None,
                 precision: str = "fp32", *, compiled: Any = None) -> None:  # fmt: skip
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: {'IR' if is_ir(path) else 'ONNX'} file not found")
        if precision not in ("fp32", "bf16", "int8"):
            raise ConfigError(f"precision {precision!r}: use fp32, bf16 or int8")
        reason = openvino_unavailable(precision)
        if reason:
            raise ConfigError(reason)
        self.metadata = read_metadata(self.path)
        self.description = description_from_metadata(self.metadata, str(self.path))
        if compiled is not None:
            # a network compiled elsewhere (e.g. an accuracy-control candidate) with this
            # file's metadata: the precision is the caller's
            self.precision = precision
            self._use(compiled)
            return
        quantized = is_quantized(self.path)
        if precision == "int8" and not quantized:
            raise ConfigError(f"{self.path}: not an INT8 file (quantize it first)")
        self.precision = "int8" if quantized else precision
        core = _core()
        try:
            model = core.read_model(str(self.path))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            raise CheckpointError(f"{self.path}: OpenVINO cannot read it ({e})") from None
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self._use(core.compile_model(model, "CPU", config))
        logger.debug("openvino %s: outputs %s, %s", self.path, self.output_names, config)

    def _use(self, compiled: Any) -> None:
        """Run ``compiled`` (an ``openvino.CompiledModel``) from now on."""
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in compiled.outputs]
        pshape = compiled.inputs[0].get_partial_shape()
        self._set_shape([d.get_length() if d.is_static else None for d in pshape])

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        res = self.request.infer({0: x})
        # the request reuses its output buffers: copy before the next call
        return [np.array(res[o], dtype=np.float32, copy=True) for o in self.compiled.outputs]
