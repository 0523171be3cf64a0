"""ONNX Runtime session for an exported fusepose network, configured from its metadata."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.description import Described, ModelDescription
from fusepose.errors import CheckpointError
from fusepose.export.ir import ir_op_types, is_ir
from fusepose.export.metadata import description_from_metadata, parse_metadata

logger = logging.getLogger(__name__)

__all__ = ["ExportedNetwork", "OnnxRunner", "is_quantized", "session_options"]


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


class ExportedNetwork(Described):
    """What every runner of an exported file shares: its metadata and description, the fixed
    batch / size of a fixed-shape file, and ``runner(x)``.

    ``runner(x)`` takes ``x: (B, 3, H, W) float32`` normalised RGB (see the ``input`` metadata)
    and returns the outputs as a list of float32 arrays in the order of the ``outputs``
    metadata (bottom-up: ``out_q (B, 2K, H/4, W/4)``, ``out_h (B, K, H/2, W/2)``; top-down:
    ``heatmaps (B, K, H/4, W/4)``). A fixed-shape export only accepts its own B, H, W;
    ``fixed_batch`` / ``fixed_hw`` tell the caller what they are (None when dynamic).
    Subclasses set ``path``, ``metadata``, ``description``, ``fixed_batch``, ``fixed_hw``,
    ``precision`` and implement ``_run(x) -> list[np.ndarray]``.
    """

    path: Path
    metadata: dict[str, Any]
    description: ModelDescription
    fixed_batch: int | None = None
    fixed_hw: tuple[int, int] | None = None
    precision: str = "fp32"

    def _set_shape(self, shape: list[Any]) -> None:
        b, _, h, w = shape
        self.fixed_batch = b if isinstance(b, int) else None
        self.fixed_hw = (h, w) if isinstance(h, int) and isinstance(w, int) else None

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            # Fixed-batch export: run in chunks of its batch size.
            chunks = [self(x[i : i + self.fixed_batch]) for i in range(0, len(x), self.fixed_batch)]
            return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
        if self.fixed_hw is not None and tuple(x.shape[2:]) != tuple(self.fixed_hw):
            raise CheckpointError(
                f"{self.path}: fixed input size {self.fixed_hw} but got {tuple(x.shape[2:])}; "
                "re-export with --dynamic or use the exported size"
            )
        return self._run(x)


def is_quantized(path: str | Path) -> bool:
    """Whether an ONNX file holds INT8 nodes (QDQ pairs or QLinear / integer operators), or
    an OpenVINO IR ``FakeQuantize`` layers."""
    if is_ir(path):
        return "FakeQuantize" in ir_op_types(path)
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type in ("QuantizeLinear", "DynamicQuantizeLinear") or n.op_type.startswith("QLinear")
               for n in graph.node)  # fmt: skip


class OnnxRunner(ExportedNetwork):
    """Run an exported network with onnxruntime (see :class:`ExportedNetwork` for the call).
    ``precision`` is ``"int8"`` for a quantized file, else ``"fp32"``."""

    def __init__(
        self,
        path: str | Path,
        num_threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: ONNX file not found")
        opts = session_options(num_threads)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises several private types
            raise CheckpointError(f"{self.path}: onnxruntime cannot load it ({e})") from None
        self.metadata = parse_metadata(
            self.session.get_modelmeta().custom_metadata_map, str(self.path)
        )
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._set_shape(self.input_shape)
        self.precision = "int8" if is_quantized(self.path) else "fp32"
        logger.debug(
            "onnx %s: input %s, outputs %s", self.path, self.input_shape, self.output_names
        )
        self.description = description_from_metadata(self.metadata, str(self.path))

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o) for o in self.session.run(None, {self.input_name: x})]
