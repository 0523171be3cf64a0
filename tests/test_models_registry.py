"""Registry-driven checks over every bottom-up model (docs/design.md, Models)."""

from __future__ import annotations

import pytest
import torch
from model_helpers import SMALL, randomize
from torch.utils.flop_counter import FlopCounterMode

from fusepose.models import attention_modules
from fusepose.models.blocks.attention import CBAM
from fusepose.registry import create_model, get_model_info, list_models

BOTTOM_UP = [n for n in list_models() if get_model_info(n).kind == "bottom_up"]
EXPECTED = {
    "higherhrnet_w32", "higherhrnet_w32_shuffle", "higherhrnet_w32_ghost",
    "lmfnet", "lmfnet_paper", "lmfnet_lite",
}  # fmt: skip


def test_all_bottom_up_models_registered():
    assert EXPECTED <= set(BOTTOM_UP)
    for name in EXPECTED:
        info = get_model_info(name)
        assert info.input_size == (512, 512) and info.num_keypoints == 17
        assert info.paper["params_m"] > 0 and "source" in info.paper


@pytest.mark.parametrize("name", BOTTOM_UP)
def test_forward_shapes_strides_finite_under_flop_counter(name):
    model = randomize(create_model(name)).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:  # also proves the model runs under FlopCounterMode
        out_q, out_h = model(torch.randn(2, 3, 64, 96))
    assert counter.get_total_flops() > 0
    assert out_q.shape == (2, 34, 16, 24)  # 17 heatmaps + 17 tags at stride 4
    assert out_h.shape == (2, 17, 32, 48)  # 17 heatmaps at stride 2
    assert torch.isfinite(out_q).all() and torch.isfinite(out_h).all()
    assert out_q.std() > 0 and out_h.std() > 0


@pytest.mark.parametrize("name", BOTTOM_UP)
def test_backward_reaches_every_parameter(name):
    model = create_model(name).train()
    out_q, out_h = model(torch.randn(2, 3, 64, 64))
    (out_q.square().mean() + out_h.square().mean()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


@pytest.mark.parametrize("name", BOTTOM_UP)
def test_state_dict_roundtrip_and_num_keypoints(name, tmp_path):
    model = randomize(create_model(name, num_keypoints=14), seed=1).eval()
    assert model.info.num_keypoints == 14 and model.info.name == name
    path = tmp_path / "w.pt"
    torch.save({"state_dict": model.state_dict(), "config": model.config}, path)
    ckpt = torch.load(path, weights_only=True)
    fresh = create_model(name, num_keypoints=14, **ckpt["config"]).eval()
    fresh.load_state_dict(ckpt["state_dict"], strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), fresh(x)
    assert a[0].shape == (1, 28, 16, 16) and a[1].shape == (1, 14, 32, 32)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_flops_scale_with_input_area():
    # every op is convolutional, so FLOPs at 128x128 are 4x those at 64x64
    model = create_model("lmfnet", **SMALL).eval()
    totals = []
    for size in (64, 128):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.randn(1, 3, size, size))
        totals.append(counter.get_total_flops())
    assert totals[1] == pytest.approx(4 * totals[0], rel=0.01)


def test_attention_modules_helper():
    assert list(attention_modules(create_model("higherhrnet_w32"))) == []
    model = create_model("lmfnet").eval()
    found = list(attention_modules(model))
    # 4 Shuffle-Necks + (8 + 48 + 48) Ghost-Blocks in Stages 2-4, one CBAM each
    assert len(found) == 4 + 8 + 48 + 48
    assert all(isinstance(m, CBAM) for _, m in found)
    names = dict(found)
    assert "backbone.stage1.0.attention" in names
    assert "backbone.stages.0.0.branches.1.3.attention" in names
    small = len(list(attention_modules(create_model("lmfnet", **SMALL))))
    lite = len(list(attention_modules(create_model("lmfnet_lite", **SMALL))))
    assert small == 4 + 2 + 3 + 4 and lite == small + 1  # + 1 Ghost-Block in the head
    for _, m in found:
        m.record_maps = True
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    mod = names["backbone.stages.0.0.branches.1.3.attention"]
    assert mod.last_maps["channel"].shape == (1, 64, 1, 1)  # branch 1: 64 channels
    assert mod.last_maps["spatial"].shape == (1, 1, 8, 8)  # at stride 8


def test_deploy_variant_is_the_network_the_cpu_protocol_trains():
    """``lmfnet_deploy`` at full size is the network ``fusepose ablate table3 --budget cpu``
    trains for every variant, here L-MFNet's (same flat config, same tensors), so the AP that
    protocol measures for L-MFNet is this network's; one Ghost-Block per branch leaves one CBAM
    per stage branch: 1 (Shuffle-Neck) + 2 + 3 + 4, against 108 in ``lmfnet``."""
    from fusepose.engine.config import load_config, resolve_config
    from fusepose.experiments.ablation import EXPERIMENTS

    exp = EXPERIMENTS["deploy"]
    assert {"lmfnet_deploy", "lmfnet", "higherhrnet_w32"} == set(exp.variants)
    overrides = load_config(resolve_config(exp.configs["cpu"])).model.overrides
    trained = create_model("lmfnet", **overrides)
    deployed = create_model("lmfnet_deploy")
    assert {**trained.config} == {**deployed.config}
    shapes = {k: v.shape for k, v in deployed.state_dict().items()}
    assert {k: v.shape for k, v in trained.state_dict().items()} == shapes
    names = [n for n, _ in attention_modules(deployed)]
    assert len(names) == 1 + 2 + 3 + 4 and "backbone.stage1.0.attention" in names


def test_stage_attention_once_per_stage_branch():
    """``stage_attention``: one CBAM per branch on each HR stage's fused output (the last stage
    outputs branch 0 only), here instead of the Ghost-Blocks' own."""
    model = create_model("lmfnet", ghost_attention=False, stage_attention=True, **SMALL).eval()
    names = [n for n, _ in attention_modules(model)]
    stage = [n for n in names if n.startswith("backbone.stage_attention.")]
    assert len(names) == 4 + 6 and len(stage) == 2 + 3 + 1  # 4 Shuffle-Necks keep theirs
    assert "backbone.stage_attention.2.0" in stage and "backbone.stage_attention.2.1" not in stage
    for _, m in attention_modules(model):
        m.record_maps = True
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    maps = dict(attention_modules(model))["backbone.stage_attention.1.2"].last_maps
    assert maps["channel"].shape == (1, 128, 1, 1) and maps["spatial"].shape == (1, 1, 4, 4)
