"""Export a fusepose model as a self-describing ONNX file and check it against PyTorch.

``export_model`` exports the network only (no pre- or post-processing) in the deployed layout
(:class:`~fusepose.models.deploy.InferenceWrapper`), through
:func:`fusepose.export.onnx.export_onnx`, then writes the metadata
(:mod:`fusepose.export.metadata`): the model's :class:`~fusepose.description.ModelDescription`
and the decoding keys, so ``Predictor(backend="onnx")`` (or any user) runs and decodes it the
way the checkpoint was validated. ``compare_onnx`` runs both runtimes on the same inputs.
A ``.xml`` path writes an OpenVINO IR instead: the ONNX export converted by OpenVINO, with the
same metadata (:mod:`fusepose.export.ir`); ``compare_onnx`` then runs OpenVINO (f32).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fusepose.codecs.pipelines import build_codec
from fusepose.description import ModelDescription, default_description_for
from fusepose.errors import ConfigError
from fusepose.export.ir import is_ir, onnx_to_ir
from fusepose.export.metadata import build_metadata, write_metadata
from fusepose.export.onnx import export_onnx
from fusepose.files import atomic_path, json_safe
from fusepose.models.deploy import InferenceWrapper, output_names

logger = logging.getLogger(__name__)

ExportWrapper = InferenceWrapper  # the name used before the wrapper moved to fusepose.models


def default_dynamic(desc: ModelDescription) -> bool | str:
    """What varies between inputs of a model: the short-side resize gives every image its own
    H x W (dynamic axes), letterbox and crop inputs are fixed (top-down: the batch of crops)."""
    if desc.geometry.mode == "short_side":
        return True
    return "batch" if desc.family.needs_boxes else False  # as many crops as people


def _codec_spec(desc: ModelDescription) -> dict[str, Any]:
    """The full codec arguments (for readers of the ONNX file without fusepose)."""
    codec = build_codec(desc.codec, num_keypoints=desc.num_keypoints,
                        flip_index=desc.flip_index, input_size=desc.geometry.size)  # fmt: skip
    kwargs = {k: v for k, v in vars(codec).items() if not k.startswith("_")}
    rename = {"do_adjust": "adjust", "do_refine": "refine"}
    kwargs = {rename.get(k, k): v for k, v in kwargs.items()}
    return {"type": desc.codec["type"], "kwargs": json_safe(kwargs)}


def export_model(
    model: nn.Module,
    path: str | Path,
    input_hw: tuple[int, int] | None = None,
    *,
    desc: ModelDescription | None = None,
    opset: int = 17,
    dynamic: bool | str = False,
    batch: int = 1,
) -> dict[str, str]:
    """Export ``model`` (with ``.info``) to ``path`` and write its metadata; returns it.
    ``path`` ``FILE.xml``: an OpenVINO IR of the same export.

    desc: the model's description (a checkpoint's, from ``fusepose.modelfile.load_model``);
        default: the registered defaults of ``model.info``.
    input_hw: (H, W) of the traced input (default: the description's input size).
    dynamic: True = dynamic batch, height and width; ``"batch"`` = dynamic batch only;
        False = fixed batch and size (a bottom-up file then letterboxes images into it).
        ``fusepose export`` chooses :func:`default_dynamic` of the description.
    """
    info = model.info
    if desc is None:
        desc = default_description_for(info, num_keypoints=info.num_keypoints)
    if desc.model != info.name:
        raise ConfigError(f"description of {desc.model!r} given for model {info.name!r}")
    h, w = input_hw or desc.geometry.size
    fam = info.family
    # checked where the network sees whole images, at the size a user chooses
    if not fam.needs_boxes and (h % fam.input_multiple or w % fam.input_multiple):
        raise ConfigError(
            f"{fam.title} input {h}x{w}: H and W must be multiples of {fam.input_multiple}"
        )
    if dynamic is not True and (desc.geometry.size != (h, w) or not desc.geometry.fixed):
        # a fixed-shape file runs at its own size (bottom-up: letterboxed into it)
        if desc.geometry.mode == "short_side":
            logger.info("%s: fixed %dx%d export, so images are letterboxed into it (the "
                        "short-side resize needs --dynamic)", info.name, h, w)  # fmt: skip
        desc = desc.replace(geometry=desc.family.fixed_geometry((h, w)))
    path = Path(path)
    if is_ir(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as tmp:
            onnx_path = Path(tmp) / f"{path.stem}.onnx"
            props = export_model(model, onnx_path, (h, w), desc=desc, opset=opset,
                                 dynamic=dynamic, batch=batch)  # fmt: skip
            onnx_to_ir(onnx_path, path)
        return props
    names = output_names(fam)
    in_shape: list[Any] = [
        "B" if dynamic else batch, 3, "H" if dynamic is True else h, "W" if dynamic is True else w
    ]
    # written under a temporary name and renamed once the metadata is in: a kill mid-export
    # leaves no file without its description under the final name
    with atomic_path(path, suffix=".onnx") as tmp:
        export_onnx(InferenceWrapper(model).eval(), tmp, (batch, 3, h, w), opset=opset,
                    dynamic=dynamic, output_names=names)  # fmt: skip
        props = build_metadata(desc, input_name=_graph_input_name(tmp), input_shape=in_shape,
                               codec=_codec_spec(desc))  # fmt: skip
        write_metadata(tmp, props)
    logger.info("exported %s to %s (%s, opset %d)", info.name, path,
                "dynamic" if dynamic is True else f"{h}x{w}", opset)  # fmt: skip
    return props


def _graph_input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)


def compare_onnx(
    model: nn.Module,
    path: str | Path,
    input_hw: tuple[int, int],
    batch: int = 1,
    seed: int = 0,
    num_threads: int | None = None,
    inputs: list[np.ndarray] | None = None,
) -> dict[str, float]:
    """ONNX Runtime (OpenVINO for an IR ``.xml``) against PyTorch on the same inputs: the
    largest absolute difference over all outputs, the same relative to the outputs'
    magnitude, and the outputs' spread.

    inputs: ``(B, 3, H, W)`` float32 network inputs (default one random normal input). Returns
    ``{"max_abs", "max_rel", "ref_std", "ref_max_abs"}``; ``max_rel = max_abs / max |ref|``.
    """
    from fusepose.export.openvino_runtime import OpenVinoRunner
    from fusepose.export.runtime import OnnxRunner

    if inputs is None:
        g = torch.Generator().manual_seed(seed)
        inputs = [torch.randn(batch, 3, *input_hw, generator=g).numpy()]
    wrapper = InferenceWrapper(model).eval()
    device = next(model.parameters()).device
    if is_ir(path):
        runner = OpenVinoRunner(path, num_threads=num_threads)
    else:
        runner = OnnxRunner(path, num_threads=num_threads)
    max_abs, ref_max, ref_std = 0.0, 0.0, 0.0
    for x in inputs:
        with torch.inference_mode():
            ref = [r.float().cpu().numpy() for r in wrapper(torch.from_numpy(x).to(device))]
        got = runner(x)
        if len(got) != len(ref):
            raise ConfigError(f"{path}: {len(got)} outputs, PyTorch gives {len(ref)}")
        for r, o in zip(ref, got, strict=True):
            if r.shape != o.shape:
                raise ConfigError(f"{path}: output shape {o.shape} != PyTorch {r.shape}")
            max_abs = max(max_abs, float(np.max(np.abs(r - o))))
            ref_max = max(ref_max, float(np.max(np.abs(r))))
            ref_std = max(ref_std, float(np.std(r)))
    return {
        "max_abs": max_abs,
        "max_rel": max_abs / ref_max if ref_max > 0 else float("inf"),
        "ref_std": ref_std,
        "ref_max_abs": ref_max,
    }
