"""SFM backbone, HSA block and inverted residual: shapes, gradients and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fusepose.errors import ConfigError
from fusepose.models.backbones.sfm import SFM, SFMConfig
from fusepose.models.blocks.hsa import HSA
from fusepose.models.blocks.inverted_residual import InvertedResidual
from fusepose.registry import create_model, list_models

SFM_NAMES = [
    "sfm_coco",
    "sfm_coco_noatt",
    "sfm_coco_sa",
    "sfm_mpii",
    "sfm_mpii_noatt",
    "sfm_mpii_sa",
]


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# ---------------------------------------------------------------------------- HSA


def _tiny_input() -> torch.Tensor:
    # (1, 3, 2, 3): per-pixel channel mean and max are easy to compute by hand
    x = np.array(
        [
            [[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]],
            [[2.0, 1.0, -0.5], [-3.0, 4.0, 2.0]],
            [[0.0, 4.0, 1.5], [0.0, 2.0, 2.0]],
        ],
        dtype=np.float32,
    )
    return torch.from_numpy(x)[None]


def _set_center_taps(hsa: HSA, a: float, b: float, c: float | None = None, d: float = 0.0):
    with torch.no_grad():
        hsa.conv1.weight.zero_()
        hsa.conv1.weight[0, 0, 3, 3] = a  # mean channel
        hsa.conv1.weight[0, 1, 3, 3] = b  # max channel
        if c is not None:
            hsa.conv2.weight.zero_()
            hsa.conv2.weight[0, 0, 3, 3] = c
            hsa.conv2.bias.fill_(d)


@pytest.mark.parametrize("mode", ["hsa", "hsa_gated", "spatial"])
def test_hsa_center_taps_hand_computed(mode):
    x = _tiny_input()
    xn = x[0].numpy()
    a1 = _sigmoid(0.5 * xn.mean(0) - 0.25 * xn.max(0))
    a2 = _sigmoid(2.0 * a1 - 1.0)
    expected = {"hsa": xn * a2, "hsa_gated": xn * a1 * a2, "spatial": xn * a1}[mode]
    hsa = HSA(mode)
    _set_center_taps(hsa, 0.5, -0.25, None if mode == "spatial" else 2.0, -1.0)
    y = hsa(x)
    np.testing.assert_allclose(y[0].detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_hsa_off_center_tap_is_cross_correlation_with_zero_padding():
    # conv1 tap one column right of centre: a1[y, x] = sigmoid(mean[y, x + 1]), 0 beyond the edge.
    # conv2 dilated by 2, tap one column left of centre: a2[y, x] = sigmoid(a1[y, x - 2]).
    x = _tiny_input()
    mean = x[0].numpy().mean(0)
    shifted = np.zeros_like(mean)
    shifted[:, :-1] = mean[:, 1:]
    a1 = _sigmoid(shifted)
    pre2 = np.zeros_like(a1)
    pre2[:, 2:] = a1[:, :-2]
    a2 = _sigmoid(pre2)
    hsa = HSA("hsa", dilation=2)
    hsa.record_maps = True
    with torch.no_grad():
        hsa.conv1.weight.zero_()
        hsa.conv1.weight[0, 0, 3, 4] = 1.0
        hsa.conv2.weight.zero_()
        hsa.conv2.weight[0, 0, 3, 2] = 1.0
        hsa.conv2.bias.zero_()
    y = hsa(x)
    np.testing.assert_allclose(hsa.last_maps["first"][0, 0].numpy(), a1, rtol=1e-6)
    np.testing.assert_allclose(hsa.last_maps["second"][0, 0].numpy(), a2, rtol=1e-6)
    np.testing.assert_allclose(y[0].detach().numpy(), x[0].numpy() * a2, rtol=1e-6)


def test_hsa_output_is_input_times_second_map_and_maps_recorded():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 7)
    hsa = HSA("hsa")
    assert hsa.last_maps == {}
    hsa(x)
    assert hsa.last_maps == {}  # record_maps defaults to False
    hsa.record_maps = True
    y = hsa(x)
    a1, a2 = hsa.last_maps["first"], hsa.last_maps["second"]
    assert a1.shape == a2.shape == (2, 1, 9, 7)
    assert not a2.requires_grad
    torch.testing.assert_close(y, x * a2)
    # a2 is the sigmoid of the second conv applied to a1 (the "attention of the attention map")
    torch.testing.assert_close(a2, torch.sigmoid(hsa.conv2(a1)))


def test_hsa_none_is_identity_and_param_counts():
    x = torch.randn(1, 4, 5, 5)
    none = HSA("none")
    assert none(x) is x
    assert sum(p.numel() for p in none.parameters()) == 0
    # 2*7*7 (no bias) for the first-order conv; 7*7 + 1 bias for the second-order conv
    assert sum(p.numel() for p in HSA("spatial").parameters()) == 98
    assert sum(p.numel() for p in HSA("hsa").parameters()) == 98 + 50
    assert sum(p.numel() for p in HSA("hsa_gated").parameters()) == 98 + 50


def test_hsa_global_matches_hand_computed_nonlocal():
    torch.manual_seed(1)
    x = torch.randn(1, 3, 2, 3)
    hsa = HSA("hsa_global")
    _set_center_taps(hsa, 1.0, 0.5)
    hsa.record_maps = True
    y = hsa(x)[0].detach().numpy()
    xn = x[0].numpy()
    a1 = _sigmoid(xn.mean(0) + 0.5 * xn.max(0)).reshape(-1)  # (N,)
    logits = np.outer(a1, a1)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # softmax over j, rows i
    expected = np.einsum("ij,cj->ci", p, xn.reshape(3, -1)).reshape(3, 2, 3)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        hsa.last_maps["second"][0, 0].numpy().reshape(-1), p.sum(0), rtol=1e-5
    )


def test_hsa_rejects_unknown_mode():
    with pytest.raises(ConfigError, match="mode"):
        HSA("secondorder")


# ---------------------------------------------------------------------------- inverted residual


def test_inverted_residual_params_shape_and_identity():
    ir = InvertedResidual(48, 64, stride=2, expansion=4)
    hidden = 192
    expected = 48 * hidden + 2 * hidden + 9 * hidden + 2 * hidden + hidden * 64 + 2 * 64
    assert sum(p.numel() for p in ir.parameters()) == expected
    assert ir(torch.randn(1, 48, 9, 6)).shape == (1, 64, 5, 3)
    assert not ir.use_residual
    # stride 1, cin == cout: with the last BN zeroed, the block is exactly the identity
    same = InvertedResidual(16, 16, 1, 4).eval()
    with torch.no_grad():
        last_bn = same.conv[-1]
        last_bn.weight.zero_()
        last_bn.bias.zero_()
    x = torch.randn(2, 16, 6, 5)
    torch.testing.assert_close(same(x), x)


# ---------------------------------------------------------------------------- SFM


def test_all_sfm_variants_registered():
    assert set(SFM_NAMES) <= set(list_models("sfm_*"))


@pytest.mark.parametrize("name", SFM_NAMES)
def test_sfm_forward_shapes_no_nan(name):
    torch.manual_seed(0)
    model = create_model(name)
    h, w = model.info.input_size
    k = model.info.num_keypoints
    assert (h, w, k) == ((256, 192, 17) if "coco" in name else (256, 256, 16))
    outs = model.eval()(torch.randn(1, 3, h, w))
    assert isinstance(outs, tuple) and len(outs) == 2  # intermediate, final
    for o in outs:
        assert o.shape == (1, k, h // 4, w // 4)
        assert torch.isfinite(o).all()


def test_sfm_layer_table_resolutions_and_widths():
    backbone = SFM(SFMConfig()).eval()
    x = torch.randn(1, 3, 256, 192)
    stem = backbone.stem(x)
    assert stem.shape == (1, 48, 64, 48)
    enc, dec = backbone.pyramids[0](stem)
    expected = [(48, 64, 48), (64, 32, 24), (80, 16, 12), (96, 8, 6)]
    assert [tuple(e.shape[1:]) for e in enc] == expected
    assert [tuple(d.shape[1:]) for d in dec] == expected
    # encoder depths (8, 5, 3, 2) inverted residuals per level
    assert [len(s) for s in backbone.pyramids[0].encoders] == [8, 5, 3, 2]
    # HSA on every decoder node of both pyramids
    assert sum(isinstance(m, HSA) for m in backbone.modules()) == 8


def test_sfm_bridges_feed_second_pyramid():
    # Pyramid 2's finest output must depend on pyramid 1's coarse encoder features through the
    # bridges: perturbing pyramid 1's level-3 encoder changes pyramid 2's output.
    torch.manual_seed(0)
    backbone = SFM(SFMConfig()).eval()
    stem = backbone.stem(torch.randn(1, 3, 64, 64))
    p1, p2 = backbone.pyramids
    enc, dec = p1(stem)
    base = p2(dec[0], (enc, dec))[1][0]
    enc2 = list(enc)
    enc2[3] = enc[3] + 1.0
    moved = p2(dec[0], (enc2, dec))[1][0]
    assert not torch.allclose(base, moved)


def test_sfm_backward_every_param_gets_grad():
    torch.manual_seed(0)
    model = create_model("sfm_coco").train()
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_sfm_params_near_paper_and_attention_cost():
    def n_params(name):
        return sum(p.numel() for p in create_model(name).parameters())

    full, noatt, sa = n_params("sfm_coco"), n_params("sfm_coco_noatt"), n_params("sfm_coco_sa")
    assert math.isclose(full, 1.5e6, rel_tol=0.05)
    assert full - noatt == 8 * (98 + 50)  # 8 HSA blocks
    assert sa - noatt == 8 * 98
    # MPII differs only by the two heads' output channels (17 -> 16): 2 * (48 + 1)
    assert full - n_params("sfm_mpii") == 2 * 49


def test_sfm_num_keypoints_override_and_config_errors():
    model = create_model("sfm_coco", num_keypoints=14, num_pyramids=1)
    assert model.info.num_keypoints == 14
    outs = model.eval()(torch.randn(1, 3, 64, 32))
    assert len(outs) == 1 and outs[0].shape == (1, 14, 16, 8)
    with pytest.raises(ConfigError, match="unknown keys"):
        create_model("sfm_coco", widht=(1, 2))
    with pytest.raises(ConfigError, match="attention"):
        create_model("sfm_coco", attention="bogus")
    sa = create_model("sfm_coco_sa")
    assert sa.config.attention == "spatial"
    assert all(m.mode == "spatial" for m in sa.modules() if isinstance(m, HSA))
    assert create_model("sfm_mpii_noatt").config.attention == "none"


def test_sfm_attention_maps_recorded_per_decoder_node():
    from fusepose.models import attention_modules

    model = create_model("sfm_coco").eval()
    mods = dict(attention_modules(model))
    assert len(mods) == 8 and all(isinstance(m, HSA) for m in mods.values())
    for m in mods.values():
        m.record_maps = True
    model(torch.randn(1, 3, 128, 96))
    # decoder levels 0..3 of each pyramid run at 32x24, 16x12, 8x6, 4x3 for a 128x96 input
    grids = sorted({tuple(m.last_maps["second"].shape) for m in mods.values()})
    assert grids == [(1, 1, 4, 3), (1, 1, 8, 6), (1, 1, 16, 12), (1, 1, 32, 24)]
    for m in mods.values():
        assert m.last_maps["first"].shape == m.last_maps["second"].shape
        assert ((m.last_maps["second"] > 0) & (m.last_maps["second"] < 1)).all()
