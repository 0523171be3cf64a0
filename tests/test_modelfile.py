"""Model files describe themselves: the description round trip, checkpoints of both formats,
the weights a checkpoint was validated with, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import fusepose
from fusepose.description import ModelDescription, TestSettings
from fusepose.engine.config import config_to_dict, load_config
from fusepose.errors import CheckpointError, ConfigError
from fusepose.geometry import InputGeometry
from fusepose.modelfile import (
    default_description,
    describe,
    description_from_config,
    load_model,
    save_checkpoint,
)
from fusepose.skeletons import COCO17, MPII16

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = {"modules": (1, 1, 1), "blocks_per_branch": 1, "head_num_blocks": 1}


def test_description_round_trips_through_json():
    desc = default_description("lmfnet", geometry=InputGeometry("letterbox", (256, 384)))
    desc = desc.replace(test_flip=True, val={"metric": "AP", "value": 0.5, "epoch": 3},
                        overrides={"widths": (32, 64, 128, 256)})  # fmt: skip
    back = ModelDescription.from_json(desc.to_json())
    assert back == desc
    assert back.overrides["widths"] == (32, 64, 128, 256)  # tuples again for the factory
    assert back.summary()["val_AP"] == 0.5 and back.summary()["input_size"] == [256, 384]


def test_description_rejects_what_cannot_run():
    with pytest.raises(ConfigError, match="cannot use the 'crop' geometry"):
        default_description("lmfnet", geometry=InputGeometry("crop", (256, 192)))
    with pytest.raises(ConfigError, match="16 keypoints"):
        default_description("lmfnet", skeleton=MPII16)
    with pytest.raises(ConfigError, match="nms_thr"):
        TestSettings(nms_thr=1.5)
    with pytest.raises(CheckpointError, match="lacks"):
        ModelDescription.from_dict({"model": "lmfnet"}, "x.pth")
    with pytest.raises(ConfigError, match="short-side resize takes one size"):
        InputGeometry.short_side(512).with_size((256, 384))


def test_format_1_checkpoints_are_described_as_their_validation_ran(tmp_path):
    """Checkpoints written before descriptions existed: the geometry comes from their training
    config (letterbox (H, W), or HigherHRNet's short side for the square crop), the val AP from
    ``best_metric``; with only ``model_config``, the registered defaults."""
    cfg = config_to_dict(load_config(CONFIGS / "lmfnet_coco4-256_1xb4-150e.yaml"))
    # a file is described only when its weights fit the architecture it describes
    weights = fusepose.create_model("lmfnet", **cfg["model"]["overrides"]).state_dict()
    path = save_checkpoint(tmp_path / "old.pth", {
        "format_version": 1, "model_name": "lmfnet", "state_dict": weights, "config": cfg,
        "model_config": cfg["model"], "best_metric": 0.93,
    })  # fmt: skip
    desc = describe(path)
    assert desc.geometry == InputGeometry("letterbox", (256, 384))
    assert desc.val_metric == 0.93 and desc.val["ann"] == cfg["data"]["val_ann"]
    assert desc.test.flip is False and desc.overrides["modules"] == (1, 1, 1)
    crop = config_to_dict(load_config(CONFIGS / "lmfnet_coco-512_1xb12-300e.yaml"))
    assert description_from_config(crop).geometry == InputGeometry.short_side(512)
    assert description_from_config(crop).test.flip is True  # eval.flip_test of the recipe
    bare = save_checkpoint(tmp_path / "mc.pth", {
        "format_version": 1, "model_name": "sfm_coco",
        "state_dict": fusepose.create_model("sfm_coco").state_dict(),
    })  # fmt: skip
    d = describe(bare)
    assert d.geometry == InputGeometry("crop", (256, 192)) and d.test.nms_thr == 0.9
    cfg["data"]["resize"] = "stretch"
    with pytest.raises(ConfigError, match="stretch"):
        description_from_config(cfg)


def test_load_model_rebuilds_the_architecture_and_takes_the_validated_weights(tmp_path):
    """With ``eval.use_ema`` the validation scored the EMA weights: load_model returns those,
    not the raw training weights (which a resume needs)."""
    torch.manual_seed(0)
    raw = fusepose.create_model("lmfnet", **SMALL)
    ema = fusepose.create_model("lmfnet", **SMALL)
    cfg = config_to_dict(load_config(None, ["model.name=lmfnet", "train.ema_decay=0.99"]))
    cfg["model"]["overrides"] = dict(SMALL)
    desc = description_from_config(cfg, {"metric": "AP", "value": 0.4})
    ck = {"format_version": 2, "model_name": "lmfnet", "state_dict": raw.state_dict(),
          "ema": {"state_dict": ema.state_dict(), "updates": 1}, "config": cfg,
          "description": desc.to_dict()}  # fmt: skip
    path = save_checkpoint(tmp_path / "ema.pth", ck)
    model, got = load_model(path)
    assert got == desc
    key = "head.final_layers.0.weight"
    assert torch.equal(model.state_dict()[key], ema.state_dict()[key])
    assert not torch.equal(model.state_dict()[key], raw.state_dict()[key])
    cfg["eval"]["use_ema"] = False
    path2 = save_checkpoint(tmp_path / "raw.pth", {**ck, "config": cfg})
    assert torch.equal(load_model(path2)[0].state_dict()[key], raw.state_dict()[key])


def test_bare_state_dicts_need_the_model_name(tmp_path):
    model = fusepose.create_model("sfm_coco")
    path = tmp_path / "bare.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="pass the model name"):
        load_model(path)
    loaded, desc = load_model(path, "sfm_coco")
    assert desc.model == "sfm_coco" and desc.skeleton == COCO17
    with pytest.raises(CheckpointError, match="checkpoint is for lmfnet, not sfm_coco"):
        ck = save_checkpoint(tmp_path / "lm.pth", {"model_name": "lmfnet", "state_dict": {}})
        load_model(ck, "sfm_coco")


def test_inspect_prints_the_issue_keys(tmp_path, capsys):
    from fusepose.cli.main import main

    desc = default_description("sfm_coco").replace(val={"metric": "AP", "value": 0.7})
    path = save_checkpoint(tmp_path / "s.pth", {
        "model_name": "sfm_coco", "state_dict": fusepose.create_model("sfm_coco").state_dict(),
        "description": desc.to_dict(),
    })  # fmt: skip
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"model", "num_keypoints", "skeleton", "input_size", "resize", "val_AP"} <= set(info)
    assert info["input_size"] == [256, 192] and info["resize"] == "crop"
    assert info["val_AP"] == 0.7 and info["skeleton"] == "coco" and info["num_keypoints"] == 17
