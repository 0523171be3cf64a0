"""Checkpoint contract (design.md): atomic save, safe load, clear errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from fusepose.engine import checkpoint as ck
from fusepose.errors import CheckpointError
from fusepose.registry import ModelInfo


class Tiny(nn.Module):
    def __init__(self, name: str = "tiny_a") -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.info = ModelInfo(name=name, kind="top_down", input_size=(8, 8))


def _ckpt(model: nn.Module) -> dict:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return {
        "format_version": ck.FORMAT_VERSION,
        "model_name": model.info.name,
        "model_config": {"name": model.info.name, "overrides": {"width": 4}},
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "step": 7,
        "best_metric": 0.5,
        "rng": ck.get_rng_state(),
    }


def test_round_trip_weights_and_fields(tmp_path):
    m = Tiny()
    path = ck.save_checkpoint(tmp_path / "a.pth", _ckpt(m))
    got = ck.load_checkpoint(path)
    assert got["epoch"] == 3 and got["step"] == 7 and got["model_name"] == "tiny_a"
    for k, v in m.state_dict().items():
        assert torch.equal(got["state_dict"][k], v)
    m2 = Tiny()
    assert not torch.equal(m2.conv.weight, m.conv.weight)
    ck.load_weights(m2, path)
    assert torch.equal(m2.conv.weight, m.conv.weight)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_rng_state_round_trip_restores_all_generators(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    ck.save_checkpoint(tmp_path / "r.pth", {**_ckpt(Tiny()), "rng": ck.get_rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ck.set_rng_state(ck.load_checkpoint(tmp_path / "r.pth")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    m = Tiny()
    ck.save_checkpoint(path, _ckpt(m))
    before = path.read_bytes()

    real_save = torch.save

    def crashing_save(obj, f, *a, **kw):
        f.write(b"PARTIAL")  # some bytes reach the temp file, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError):
        ck.save_checkpoint(path, {**_ckpt(m), "epoch": 99})
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert ck.load_checkpoint(path)["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]


def test_wrong_model_names_both(tmp_path):
    path = ck.save_checkpoint(tmp_path / "a.pth", _ckpt(Tiny("tiny_a")))
    with pytest.raises(CheckpointError, match=r"a\.pth.*checkpoint is for tiny_a, not tiny_b"):
        ck.load_weights(Tiny("tiny_b"), path)


def test_truncated_and_foreign_files(tmp_path):
    path = ck.save_checkpoint(tmp_path / "a.pth", _ckpt(Tiny()))
    data = path.read_bytes()
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pth"):
        ck.load_checkpoint(trunc)
    with pytest.raises(CheckpointError, match="trunc.pth"):
        ck.load_weights(Tiny(), trunc)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pth"):
        ck.load_checkpoint(text)
    other = tmp_path / "list.pth"
    torch.save([1, 2, 3], other)
    with pytest.raises(CheckpointError, match="list.pth.*not a fusepose checkpoint"):
        ck.load_checkpoint(other)
    with pytest.raises(CheckpointError, match="missing.pth.*not found"):
        ck.load_checkpoint(tmp_path / "missing.pth")


def test_bare_state_dict_and_ddp_prefix(tmp_path):
    m = Tiny()
    bare = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in m.state_dict().items()}, bare)
    m2 = Tiny()
    ck.load_weights(m2, bare)
    assert torch.equal(m2.bn.running_var, m.bn.running_var)
    assert torch.equal(m2.conv.bias, m.conv.bias)


def test_shape_mismatch_is_checkpoint_error(tmp_path):
    m = Tiny()
    sd = m.state_dict()
    sd["conv.weight"] = torch.zeros(5, 3, 3, 3)
    p = tmp_path / "bad.pth"
    torch.save(sd, p)
    with pytest.raises(CheckpointError, match="bad.pth"):
        ck.load_weights(Tiny(), p)


def test_predictor_rebuilds_the_trained_architecture_from_a_checkpoint(tmp_path):
    """A checkpoint of a reduced model (architecture overrides) loads through the Predictor,
    and loading it into the default-size model fails with a one-line summary."""
    import fusepose
    from fusepose.engine.checkpoint import load_weights, save_checkpoint
    from fusepose.errors import CheckpointError
    from fusepose.modelfile import describe

    overrides = {"modules": [1, 1, 1], "blocks_per_branch": 1, "head_num_blocks": 1}
    model = fusepose.create_model("lmfnet", num_keypoints=17, **overrides)
    path = save_checkpoint(
        tmp_path / "small.pth",
        {
            "format_version": 1,
            "model_name": "lmfnet",
            "model_config": {"name": "lmfnet", "num_keypoints": 17, "overrides": overrides},
            "state_dict": model.state_dict(),
        },
    )
    assert describe(path).overrides["modules"] == (1, 1, 1)
    predictor = fusepose.Predictor("lmfnet", weights=path)
    for k, v in model.state_dict().items():
        assert torch.equal(predictor.model.state_dict()[k], v), k
    with pytest.raises(CheckpointError) as e:
        load_weights(fusepose.create_model("lmfnet"), path)
    assert "missing" in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 500
