"""The official HigherHRNet-W32 checkpoint maps onto ``higherhrnet_w32`` and computes the same
function (reference recorded from the official code: shared/data/official_reference)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fusepose.errors import CheckpointError
from fusepose.models.convert import (
    convert_official_higherhrnet,
    is_official_higherhrnet,
    official_to_fusepose_name,
)
from fusepose.registry import create_model


@pytest.fixture(scope="module")
def reference(shared_data: Path) -> dict:
    path = shared_data / "official_reference" / "higherhrnet_w32_official_reference.json"
    return json.loads(path.read_text())


def _fill(reference: dict) -> dict[str, torch.Tensor]:
    """The official state dict filled by the reference's fill rule (see its ``fill_rule``)."""
    sd = {}
    for entry in reference["state_dict"]:
        name, shape = entry["name"], entry["shape"]
        n = math.prod(shape)
        b = np.sin(0.1 * np.arange(n, dtype=np.float64) + len(name))
        if name.endswith("num_batches_tracked"):
            v = np.zeros(n)
        elif name.endswith("running_var"):
            v = 1 + 0.5 * b**2
        elif name.endswith("running_mean"):
            v = 0.1 * b
        else:
            v = 0.01 * b
        sd[name] = torch.from_numpy(v.reshape(shape)).to(getattr(torch, entry["dtype"]))
    return sd


def test_official_names_map_one_to_one(reference):
    ours = create_model("higherhrnet_w32").state_dict()
    official = reference["state_dict"]
    assert len(official) == 1810
    mapped = {}
    for entry in official:
        new = official_to_fusepose_name(entry["name"])
        assert new not in mapped, f"two official names map to {new}"
        mapped[new] = entry
    assert set(mapped) == set(ours)  # every entry, no leftovers on either side
    for new, entry in mapped.items():
        assert list(ours[new].shape) == entry["shape"], new
        assert str(ours[new].dtype) == f"torch.{entry['dtype']}", new


def test_reference_forward_pass(reference):
    model = create_model("higherhrnet_w32").eval()
    sd = {f"module.{k}": v for k, v in _fill(reference).items()}  # DataParallel-style prefix
    assert is_official_higherhrnet(sd)
    model.load_state_dict(convert_official_higherhrnet(sd), strict=True)
    rf = reference["reference_forward"]
    x = np.sin(0.01 * np.arange(3 * 256 * 256, dtype=np.float64)).reshape(1, 3, 256, 256)
    with torch.no_grad():
        outs = model(torch.from_numpy(x).float())
    assert len(outs) == len(rf["outputs"]) == 2
    for out, exp in zip(outs, rf["outputs"], strict=True):
        o = out.double()
        assert list(o.shape) == exp["shape"]
        for key, value in (("sum", o.sum()), ("abs_sum", o.abs().sum()),
                           ("min", o.min()), ("max", o.max())):  # fmt: skip
            assert value.item() == pytest.approx(exp[key], rel=1e-4, abs=1e-9), key
        np.testing.assert_allclose(o.flatten()[:8].numpy(), exp["first8"], rtol=1e-4, atol=1e-9)


def test_checkpoint_file_roundtrip(reference, tmp_path):
    # an official-style .pth (DataParallel prefix), read the way load_checkpoint does
    path = tmp_path / "pose_higher_hrnet_w32_512.pth"
    torch.save({f"module.{k}": v for k, v in _fill(reference).items()}, path)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model("higherhrnet_w32")
    missing, unexpected = model.load_state_dict(
        convert_official_higherhrnet(sd, source=str(path)), strict=True
    )
    assert not missing and not unexpected
    name = "stage4.2.fuse_layers.0.3.0.weight"  # 1x1 conv 256 -> 32 feeding branch 0
    ours = model.state_dict()["backbone.stages.2.2.fuse_layers.0.3.0.conv.weight"]
    assert torch.equal(ours, sd[f"module.{name}"])


def test_non_official_state_dicts_are_rejected(reference):
    ours = create_model("lmfnet").state_dict()
    assert not is_official_higherhrnet(ours)
    with pytest.raises(CheckpointError, match="my.pth"):
        convert_official_higherhrnet(ours, source="my.pth")
    sd = _fill(reference)
    sd["stage2.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"ckpt\.pth.*stage2\.0\.extra\.weight"):
        convert_official_higherhrnet(sd, source="ckpt.pth")


def test_load_weights_accepts_official_checkpoint(reference, tmp_path):
    checkpoint = pytest.importorskip("fusepose.engine.checkpoint")
    path = tmp_path / "pose_higher_hrnet_w32_512.pth"
    sd = {f"module.{k}": v for k, v in _fill(reference).items()}
    torch.save(sd, path)
    model = create_model("higherhrnet_w32")
    checkpoint.load_weights(model, path, strict=True)
    got = model.state_dict()["head.deconv_layers.0.blocks.3.conv2.weight"]
    assert torch.equal(got, sd["module.deconv_layers.0.4.0.conv2.weight"])
