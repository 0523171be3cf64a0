"""Export a fusepose model as a self-describing ONNX file and check it against PyTorch.

``export_model`` exports the network only (no pre- or post-processing), through
:func:`fusepose.export.onnx.export_onnx`, then writes the decoding metadata
(:mod:`fusepose.export.metadata`) so ``OnnxRunner`` / ``Predictor(backend="onnx")`` (or any
user) can decode the outputs. ``compare_onnx`` runs both runtimes on one random input.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fusepose.export.metadata import build_metadata, output_spec, write_metadata

logger = logging.getLogger(__name__)


class ExportWrapper(nn.Module):
    """Fixes the exported outputs: bottom-up ``(out_q, out_h)``; top-down final heatmaps only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.kind = model.info.kind

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        if self.kind == "bottom_up":
            return out[0], out[1]
        return out[-1] if isinstance(out, list | tuple) else out


def output_names_for(kind: str) -> list[str]:
    return ["out_q", "out_h"] if kind == "bottom_up" else ["heatmaps"]


def default_export_size(model: nn.Module) -> tuple[int, int]:
    """(H, W) used when none is given: the paper's input size of the model."""
    h, w = model.info.input_size
    return int(h), int(w)


def export_model(
    model: nn.Module,
    path: str | Path,
    input_hw: tuple[int, int] | None = None,
    *,
    opset: int = 17,
    dynamic: bool = False,
    batch: int = 1,
    codec: dict[str, Any] | None = None,
    skeleton: Any = None,
) -> dict[str, str]:
    """Export ``model`` (with ``.info``) to ``path`` and write the metadata; returns it.

    input_hw: (H, W) of the traced input (default the model's ``info.input_size``); with
    ``dynamic`` the batch, height and width axes are dynamic.
    codec: ``{"type", "kwargs"}`` of the decoder (default: the Predictor's choice for this
    model and size).
    """
    from fusepose.export.onnx import export_onnx
    from fusepose.skeletons import get_skeleton

    info = model.info
    h, w = input_hw or default_export_size(model)
    if info.kind == "bottom_up" and (h % 32 or w % 32):
        raise ValueError(f"bottom-up input {h}x{w}: H and W must be multiples of 32")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model).eval()
    names = output_names_for(info.kind)
    export_onnx(wrapper, path, (batch, 3, h, w), opset=opset, dynamic=dynamic, output_names=names)
    input_name = _graph_input_name(path)

    if skeleton is None:
        try:
            skeleton = get_skeleton(info.dataset)
        except Exception:  # noqa: BLE001 - unknown dataset name
            skeleton = None
        if skeleton is not None and skeleton.num_keypoints != info.num_keypoints:
            skeleton = None
    k = int(info.num_keypoints)
    flip_index = list(skeleton.flip_index) if skeleton is not None else list(range(k))
    if codec is None:
        codec = default_codec_spec(info.kind, k, (h, w), flip_index)
    in_shape: list[Any] = ["B", 3, "H", "W"] if dynamic else [batch, 3, h, w]
    props = build_metadata(
        model_name=info.name,
        kind=info.kind,
        num_keypoints=k,
        input_name=input_name,
        input_shape=in_shape,
        outputs=output_spec(info.kind, k, ("H", "W") if dynamic else (h, w)),
        codec=codec,
        skeleton_name=skeleton.name if skeleton is not None else None,
        keypoint_names=list(skeleton.keypoints) if skeleton is not None else None,
        flip_index=flip_index,
        input_size=[h, w] if not dynamic or info.kind == "top_down" else list(info.input_size),
    )
    write_metadata(path, props)
    logger.info("exported %s to %s (%s, opset %d)", info.name, path,
                "dynamic" if dynamic else f"{h}x{w}", opset)  # fmt: skip
    return props


def _graph_input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)


def default_codec_spec(
    kind: str, num_keypoints: int, input_hw: tuple[int, int], flip_index: list[int]
) -> dict[str, Any]:
    """The codec a fusepose Predictor uses for this model kind and input size."""
    h, w = input_hw
    if kind == "bottom_up":
        return {
            "type": "AssociativeEmbeddingCodec",
            "kwargs": {
                "num_keypoints": num_keypoints,
                "input_size": int(min(h, w)),
                "flip_index": flip_index,
            },
        }
    return {
        "type": "TopDownHeatmapCodec",
        "kwargs": {"input_size": [h, w], "heatmap_size": [h // 4, w // 4]},
    }


def compare_onnx(
    model: nn.Module,
    path: str | Path,
    input_hw: tuple[int, int],
    batch: int = 1,
    seed: int = 0,
    num_threads: int | None = None,
) -> float:
    """Max abs difference over all outputs between onnxruntime and PyTorch on one random
    normal input ``(batch, 3, H, W)``."""
    from fusepose.export.runtime import OnnxRunner

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, *input_hw, generator=g)
    wrapper = ExportWrapper(model).eval()
    with torch.inference_mode():
        ref = wrapper(x.to(next(model.parameters()).device))
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    got = OnnxRunner(path, num_threads=num_threads)(x.numpy())
    if len(got) != len(ref):
        raise ValueError(f"{path}: {len(got)} outputs, PyTorch gives {len(ref)}")
    diff = 0.0
    for r, o in zip(ref, got, strict=True):
        r = r.float().cpu().numpy()
        if r.shape != o.shape:
            raise ValueError(f"{path}: output shape {o.shape} != PyTorch {r.shape}")
        diff = max(diff, float(np.max(np.abs(r - o))))
    return diff
