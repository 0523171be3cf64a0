"""ONNX export of fusepose networks.

Exporter choice (measured with torch 2.13 on CPU, ``lmfnet`` at 64x64): the legacy TorchScript
exporter (``dynamo=False``) exports in about 10 s, supports opset 17 directly and dynamic
batch/height/width axes, and matches PyTorch in ONNX Runtime. The torch.export-based exporter
(``dynamo=True``) took about 20x longer on the same model and could not down-convert its
opset-18 graph to opset 17 (onnx version-converter error), so it is opt-in only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: Sequence[int],
    opset: int = 17,
    dynamic: bool | str = False,
    output_names: Sequence[str] | None = None,
    *,
    input_name: str = "input",
    dynamo: bool = False,
) -> Path:
    """Export ``model`` (eval mode) to ``path`` and check the file with ``onnx.checker``.

    input_shape: (B, 3, H, W) of the traced input (random normal, on the model's device).
    dynamic: True makes the batch, height and width axes of the input (and of every output)
        dynamic, named ``B``, ``H``, ``W`` (outputs: ``B``, ``<name>_H``, ``<name>_W``);
        ``"batch"`` makes the batch axis alone dynamic.
    output_names: one name per returned tensor (e.g. ``["out_q", "out_h"]``).
    dynamo: use the torch.export-based exporter instead of the TorchScript one.
    Returns the path written. The model's train/eval mode is restored afterwards.
    """
    import onnx

    if len(input_shape) != 4:
        raise ValueError(f"export_onnx: input_shape must be (B, C, H, W), got {tuple(input_shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dummy = torch.randn(*input_shape, device=device)
    names = list(output_names) if output_names is not None else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            if dynamo:
                kwargs = {}
                if dynamic:
                    dims = {0: torch.export.Dim("B")}
                    if dynamic is True:
                        dims.update({2: torch.export.Dim("H"), 3: torch.export.Dim("W")})
                    kwargs["dynamic_shapes"] = (dims,)
                torch.onnx.export(
                    model, (dummy,), str(path), opset_version=opset, dynamo=True,
                    input_names=[input_name], output_names=names, **kwargs,
                )  # fmt: skip
            else:
                axes = None
                if dynamic:
                    hw = dynamic is True
                    axes = {input_name: {0: "B", 2: "H", 3: "W"} if hw else {0: "B"}}
                    for n in names or []:
                        axes[n] = {0: "B", 2: f"{n}_H", 3: f"{n}_W"} if hw else {0: "B"}
                torch.onnx.export(
                    model, (dummy,), str(path), opset_version=opset, dynamo=False,
                    input_names=[input_name], output_names=names, dynamic_axes=axes,
                    do_constant_folding=True,
                )  # fmt: skip
    finally:
        model.train(was_training)
    onnx.checker.check_model(str(path))
    logger.info("wrote %s (opset %d, input %s, dynamic=%s)", path, opset, tuple(input_shape),
                dynamic)  # fmt: skip
    return path
