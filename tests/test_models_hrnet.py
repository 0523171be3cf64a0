"""Blocks, backbone and head of the HRNet family (docs/reconstruction.md)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from fusepose.errors import ConfigError
from fusepose.models.backbones.hrnet import GhostConfig, HRModule, HRNetBackbone, HRNetConfig
from fusepose.models.blocks.attention import CBAM
from fusepose.models.blocks.ghost import GhostBlock, GhostModule
from fusepose.models.blocks.resnet import BasicBlock, Bottleneck
from fusepose.models.blocks.shuffle import ShuffleNeck, channel_shuffle, channel_split
from fusepose.models.heads.higher import HigherHRNet, bottom_up_config
from fusepose.registry import create_model


def nparams(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------ shuffle


def test_channel_shuffle_hand_computed_permutation():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    # groups=2: view (2, 3) -> transpose -> (3, 2): channels 0,3,1,4,2,5
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    # groups=3: view (3, 2) -> transpose -> (2, 3): channels 0,2,4,1,3,5
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_channel_shuffle_keeps_spatial_content():
    x = torch.randn(2, 8, 5, 7)
    y = channel_shuffle(x, 2)
    for out_c, in_c in enumerate([0, 4, 1, 5, 2, 6, 3, 7]):
        assert torch.equal(y[:, out_c], x[:, in_c])


def test_channel_split_returns_views():
    x = torch.randn(2, 10, 4, 4)
    a, b = channel_split(x)
    assert a.shape == (2, 5, 4, 4) and b.shape == (2, 5, 4, 4)
    assert a.data_ptr() == x.data_ptr()  # a view, no copy
    assert torch.equal(torch.cat([a, b], 1), x)
    a3, b7 = channel_split(x, 3)
    assert a3.shape[1] == 3 and b7.shape[1] == 7


def test_shuffle_neck_param_count_hand_computed():
    # C_in=64 -> 128: pre 1x1 g=64: 128 weights + BN 256; branch A 1x1 4096 + BN 128;
    # CBAM(64): MLP 64*4+4 + 4*64+64, spatial 2*7*7; branch B: 4096+128, DW 64*9+128, 4096+128.
    expected = (128 + 256) + (4096 + 128) + (260 + 320 + 98) + (4224 + 704 + 4224)
    assert nparams(ShuffleNeck(64, 128)) == expected
    block = ShuffleNeck(128, 128)
    assert block.pre.conv.groups == 64 and block.pre.conv.weight.shape == (128, 2, 1, 1)
    x = torch.randn(2, 64, 8, 8)
    assert ShuffleNeck(64, 128)(x).shape == (2, 128, 8, 8)


def test_shuffle_neck_output_is_shuffled_concat_of_branches():
    torch.manual_seed(0)
    block = ShuffleNeck(16, 16).eval()
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        y = block(x)
        pre = block.pre(x)
        a = block.attention(block.branch_a(pre[:, :8]))
        b = block.branch_b(pre[:, 8:])
    # after the 2-group shuffle, even channels come from branch A, odd from branch B
    assert torch.allclose(y[:, 0::2], a) and torch.allclose(y[:, 1::2], b)


# ------------------------------------------------------------------ ghost


def test_ghost_module_structure_and_params():
    gm = GhostModule(32, 32, kernel_size=1)
    # primary 1x1 32->16 (+BN 32), cheap 3x3 depthwise 16->16 (+BN 32)
    assert nparams(gm) == 32 * 16 + 32 + 16 * 9 + 32
    gm3 = GhostModule(32, 32, kernel_size=3)
    assert gm3.primary.conv.weight.shape == (16, 32, 3, 3)
    assert gm3.cheap.conv.groups == 16 and gm3.cheap.conv.weight.shape == (16, 1, 3, 3)


def test_ghost_module_output_is_intrinsic_then_ghost_maps():
    torch.manual_seed(0)
    gm = GhostModule(8, 11, kernel_size=1).eval()  # m = ceil(11 / 2) = 6
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        y = gm(x)
        intrinsic = gm.primary(x)
        ghost = gm.cheap(intrinsic)
    assert y.shape == (2, 11, 5, 5) and intrinsic.shape[1] == 6
    assert torch.allclose(y[:, :6], intrinsic)
    assert torch.allclose(y[:, 6:], ghost[:, :5])


def test_ghost_block_attention_positions():
    torch.manual_seed(0)
    short = GhostBlock(32, 32, attention_position="shortcut").eval()
    resid = GhostBlock(32, 32, attention_position="residual").eval()
    assert nparams(short) == nparams(resid)  # #ghost-block: identical parameter count
    resid.load_state_dict(short.state_dict())
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        ys, yr = short(x), resid(x)
        y = short.ghost2(short.ghost1(x))
        expected_s = torch.relu(short.bn(y + short.attention(x)))
        expected_r = torch.relu(short.bn(short.attention(y) + x))
    assert torch.allclose(ys, expected_s, atol=1e-6)
    assert torch.allclose(yr, expected_r, atol=1e-6)
    assert not torch.allclose(ys, yr)
    with pytest.raises(ValueError):
        GhostBlock(8, 8, attention_position="middle")


# ------------------------------------------------------------------ CBAM


@pytest.mark.parametrize(("channels", "hidden"), [(8, 1), (32, 2), (64, 4), (256, 16)])
def test_cbam_hidden_units(channels, hidden):
    cbam = CBAM(channels)
    assert cbam.channel.mlp[0].out_channels == hidden
    assert cbam.spatial.conv.weight.shape == (1, 2, 7, 7) and cbam.spatial.conv.bias is None


def test_cbam_sequential_record_maps():
    torch.manual_seed(0)
    cbam = CBAM(32).eval()
    x = torch.randn(2, 32, 6, 9)
    with torch.no_grad():
        cbam(x)
    assert cbam.last_maps == {}  # nothing recorded by default
    cbam.record_maps = True
    with torch.no_grad():
        y = cbam(x)
    mc, ms = cbam.last_maps["channel"], cbam.last_maps["spatial"]
    assert mc.shape == (2, 32, 1, 1) and ms.shape == (2, 1, 6, 9)
    assert not mc.requires_grad and not ms.requires_grad
    # hand-computed CBAM: Mc from pooled x; Ms from [mean_c; max_c] of x * Mc
    mlp = cbam.channel.mlp
    with torch.no_grad():
        mc_ref = torch.sigmoid(
            mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True))
        )
        xc = x * mc_ref
        pooled = torch.cat([xc.mean(1, keepdim=True), xc.amax(1, keepdim=True)], 1)
        ms_ref = torch.sigmoid(nn.functional.conv2d(pooled, cbam.spatial.conv.weight, padding=3))
    assert torch.allclose(mc, mc_ref, atol=1e-6) and torch.allclose(ms, ms_ref, atol=1e-6)
    assert torch.allclose(y, xc * ms_ref, atol=1e-6)


def test_cbam_parallel_variant():
    torch.manual_seed(0)
    cbam = CBAM(16, parallel=True).eval()
    cbam.record_maps = True
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad():
        y = cbam(x)
        ms_from_x = cbam.spatial(x)
    mc, ms = cbam.last_maps["channel"], cbam.last_maps["spatial"]
    assert torch.allclose(ms, ms_from_x)  # both maps are computed from F itself
    assert torch.allclose(y, (x * mc + x * ms) / 2, atol=1e-6)


# ------------------------------------------------------------------ ResNet blocks


def test_resnet_blocks_official_details():
    b = Bottleneck(64, 64)
    assert b.downsample is not None and b.conv3.out_channels == 256
    assert Bottleneck(256, 64).downsample is None
    assert BasicBlock(32, 32).downsample is None
    for m in list(b.modules()) + list(BasicBlock(32, 32).modules()):
        if isinstance(m, nn.BatchNorm2d):
            assert m.momentum == 0.1
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
    x = torch.randn(2, 64, 8, 8)
    assert b(x).shape == (2, 256, 8, 8)


# ------------------------------------------------------------------ backbone + head


def test_hr_module_fusion_structure():
    mod = HRModule((8, 16, 32), 1, "basic", GhostConfig())
    # into branch 2 from branch 0: two stride-2 3x3 convs, 8 -> 8 (ReLU) -> 32 (no ReLU)
    chain = mod.fuse_layers[2][0]
    assert [c.conv.stride for c in chain] == [(2, 2), (2, 2)]
    assert chain[0].conv.out_channels == 8 and chain[1].conv.out_channels == 32
    assert isinstance(chain[0].act, nn.ReLU) and isinstance(chain[1].act, nn.Identity)
    # into branch 0 from branch 2: 1x1 conv 32 -> 8 + BN, nearest upsample x4
    up = mod.fuse_layers[0][2]
    assert up[0].conv.kernel_size == (1, 1) and up[1].scale_factor == 4
    xs = [torch.randn(1, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate((8, 16, 32))]
    ys = mod(xs)
    assert [tuple(y.shape) for y in ys] == [tuple(x.shape) for x in xs]
    single = HRModule((8, 16, 32), 1, "basic", GhostConfig(), multi_scale_output=False)
    assert len(single.fuse_layers) == 1 and len(single(xs)) == 1


@pytest.mark.parametrize("stage1_block", ["bottleneck", "shuffle_neck"])
@pytest.mark.parametrize("block", ["basic", "ghost"])
def test_backbone_output_stride_and_width(stage1_block, block):
    cfg = HRNetConfig(stage1_block=stage1_block, block=block, modules=(1, 1, 1),
                      blocks_per_branch=1)  # fmt: skip
    net = HRNetBackbone(cfg).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, 64, 96))
    assert y.shape == (1, 32, 16, 24)
    stage1_out = 256 if stage1_block == "bottleneck" else 128
    assert net.transitions[0][0][0].conv.in_channels == stage1_out
    # the last stage's last module fuses into branch 0 only
    assert len(net.stages[-1][-1].fuse_layers) == 1
    assert len(net.stages[-1][0].fuse_layers) == (4 if len(net.stages[-1]) > 1 else 1)


def test_higherhrnet_w32_layers_match_architecture_table():
    m = HigherHRNet(17)
    bb = m.backbone
    assert bb.stem.conv1.conv.stride == (2, 2) and bb.stem.conv2.conv.out_channels == 64
    assert len(bb.stage1) == 4 and isinstance(bb.stage1[0], Bottleneck)
    assert [len(s) for s in bb.stages] == [1, 4, 3]
    assert [len(s[0].branches) for s in bb.stages] == [2, 3, 4]
    assert all(len(br) == 4 for s in bb.stages for mod in s for br in mod.branches)
    head = m.head
    assert head.final_layers[0].out_channels == 34 and head.final_layers[0].bias is not None
    deconv = head.deconv_layers[0].deconv
    assert isinstance(deconv, nn.ConvTranspose2d)
    assert deconv.in_channels == 66 and deconv.out_channels == 32
    assert deconv.kernel_size == (4, 4) and deconv.stride == (2, 2) and deconv.bias is None
    assert len(head.deconv_layers[0].blocks) == 4
    assert head.final_layers[1].out_channels == 17


def test_official_init():
    torch.manual_seed(0)
    m = HigherHRNet(17)
    w = torch.cat([mod.weight.flatten() for mod in m.modules()
                   if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d))])  # fmt: skip
    assert abs(w.std().item() - 0.001) < 5e-5 and abs(w.mean().item()) < 5e-5
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)
        if isinstance(mod, nn.Conv2d) and mod.bias is not None:
            assert torch.all(mod.bias == 0)


# ------------------------------------------------------------------ parameter counts

# docs/reconstruction.md#measured-counts (an independent rebuild; official: 28,645,331)
_DOC_PARAMS_M = {
    "higherhrnet_w32": 28.645,
    "higherhrnet_w32_shuffle": 28.307,
    "higherhrnet_w32_ghost": 4.996,
    "lmfnet": 4.657,
    "lmfnet_paper": 15.929,
    "lmfnet_lite": 4.590,
}


@functools.cache
def _registered_params(name: str) -> int:
    return nparams(create_model(name))


@pytest.mark.parametrize("name", sorted(_DOC_PARAMS_M))
def test_param_counts_match_architecture_doc(name):
    n = _registered_params(name)
    assert round(n / 1e6, 3) == _DOC_PARAMS_M[name], n


def test_higherhrnet_w32_param_count_official(shared_data):
    import json

    ref = json.loads((shared_data / "official_reference" /
                      "higherhrnet_w32_official_reference.json").read_text())  # fmt: skip
    n = _registered_params("higherhrnet_w32")
    assert abs(n - 28.645e6) / 28.645e6 < 0.005
    assert n == ref["num_parameters"] == 28_645_331


def test_ablation_direction_table3():
    p = {name: _registered_params(name) for name in _DOC_PARAMS_M}
    assert p["lmfnet"] < p["higherhrnet_w32_ghost"] < p["higherhrnet_w32_shuffle"]
    assert p["higherhrnet_w32_shuffle"] < p["higherhrnet_w32"]
    assert p["lmfnet_lite"] < p["lmfnet"] < p["lmfnet_paper"] < p["higherhrnet_w32"]


def test_ghost_k3_count_matches_doc():
    n = nparams(HigherHRNet(17, *bottom_up_config(block="ghost", ghost_kernel_size=3)))
    assert round(n / 1e6, 3) == 16.268  # #measured-counts "+ Ghost-Block only, k = 3"


def test_attention_free_lmfnet_count_matches_doc():
    # #measured-counts: "R1 without any attention has 4.46 M"
    n = nparams(create_model("lmfnet", ghost_attention=False, stage1_attention=False))
    assert math.isclose(n / 1e6, 4.46, abs_tol=0.005)


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="colour"):
        create_model("lmfnet", colour="red")
    with pytest.raises(ConfigError, match="stage1_block"):
        create_model("lmfnet", stage1_block="nope")


def test_input_size_must_be_multiple_of_32():
    model = create_model("lmfnet", modules=(1, 1, 1), blocks_per_branch=1).eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 64, 80))


# docs/reconstruction.md#measured-counts: GMACs at 256x256 in the HRNet-repository convention,
# which multiplies the transposed conv (66 -> 32, 4x4) by its *output* grid (128x128) instead
# of its input grid (64x64): over-count = 66 * 32 * 16 * (128 * 128 - 64 * 64) MACs.
_DOC_GMACS_256_REPO = {
    "higherhrnet_w32": 11.97,
    "higherhrnet_w32_shuffle": 10.80,
    "higherhrnet_w32_ghost": 4.63,
    "lmfnet": 3.47,
    "lmfnet_lite": 2.35,
}
_DECONV_OVERCOUNT_256 = 66 * 32 * 16 * (128 * 128 - 64 * 64)


@pytest.mark.parametrize("name", sorted(_DOC_GMACS_256_REPO))
def test_macs_at_256_match_architecture_doc(name):
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(name).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, 256, 256))
    macs = counter.get_total_flops() / 2  # FlopCounterMode counts a multiply-add as 2 FLOPs
    expected = _DOC_GMACS_256_REPO[name] * 1e9 - _DECONV_OVERCOUNT_256
    assert macs == pytest.approx(expected, rel=3e-3), macs / 1e9
