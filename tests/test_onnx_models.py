"""ONNX export (opset 17, legacy TorchScript exporter) + ONNX Runtime parity for the
bottom-up models, via ``fusepose.export.onnx.export_onnx``."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from model_helpers import SMALL, randomize
from torch import nn

from fusepose.export.onnx import export_onnx
from fusepose.models.blocks.shuffle import channel_shuffle
from fusepose.registry import create_model, get_model_info, list_models

BOTTOM_UP = [n for n in list_models() if get_model_info(n).kind == "bottom_up"]
# 1 module per stage, 1 block per branch / head: every block type, a fraction of the export time
# float32 CPU kernels differ in summation order; relative to the output's range
RTOL = 1e-4


def _parity(model: nn.Module, path, shapes) -> list[float]:
    """Max abs difference ONNX Runtime vs PyTorch per output, asserted within RTOL."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["out_q", "out_h"]
    diffs = []
    for shape in shapes:
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = [t.numpy() for t in model(x)]
        got = sess.run(None, {"input": x.numpy()})
        for r, o in zip(ref, got, strict=True):
            assert o.shape == r.shape
            scale = float(np.abs(r).max())
            assert scale > 1e-3  # non-trivial outputs, so the comparison means something
            diff = float(np.abs(o - r).max())
            assert diff <= RTOL * max(1.0, scale), (shape, diff, scale)
            diffs.append(diff)
    return diffs


@pytest.mark.parametrize("name", BOTTOM_UP)
def test_export_small_variant_matches_pytorch(name, tmp_path):
    model = randomize(create_model(name, **SMALL)).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", (1, 3, 64, 64),
                       output_names=["out_q", "out_h"])  # fmt: skip
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 17
    _parity(model, path, [(1, 3, 64, 64)])
    assert model.training is False


def test_dynamic_axes(tmp_path):
    model = randomize(create_model("lmfnet", **SMALL)).train()
    path = export_onnx(model, tmp_path / "dyn.onnx", (1, 3, 64, 64), dynamic=True,
                       output_names=["out_q", "out_h"])  # fmt: skip
    assert model.training  # mode restored
    model.eval()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == ["B", 3, "H", "W"]
    _parity(model, path, [(1, 3, 64, 64), (2, 3, 96, 128)])


def test_channel_shuffle_exports_as_reshape_transpose_reshape(tmp_path):
    class Shuffle(nn.Module):
        def forward(self, x):
            return channel_shuffle(x, 2)

    path = export_onnx(Shuffle(), tmp_path / "shuffle.onnx", (1, 8, 4, 4), output_names=["y"])
    ops = [n.op_type for n in onnx.load(str(path)).graph.node if n.op_type != "Constant"]
    assert ops == ["Reshape", "Transpose", "Reshape"]
    x = np.arange(8 * 16, dtype=np.float32).reshape(1, 8, 4, 4)
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    np.testing.assert_array_equal(y[0], x[:, [0, 4, 1, 5, 2, 6, 3, 7]])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["higherhrnet_w32", "lmfnet"])
def test_export_full_model_matches_pytorch(name, tmp_path):
    model = randomize(create_model(name)).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", (1, 3, 64, 64),
                       output_names=["out_q", "out_h"])  # fmt: skip
    _parity(model, path, [(1, 3, 64, 64)])
