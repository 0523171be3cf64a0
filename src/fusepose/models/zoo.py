"""Registered models. Each entry builds a network from explicit arguments.

Bottom-up entries return ``(out_quarter, out_half)``: ``(B, 2K, H/4, W/4)`` (K heatmaps then K
associative-embedding tag maps) and ``(B, K, H/2, W/2)`` heatmaps.
Top-down entries return a tuple of heatmaps ``(B, K, H/4, W/4)``, intermediate first, final last.
"""

from __future__ import annotations

from fusepose.models.registry import register_model

# ---------------------------------------------------------------- bottom-up (HigherHRNet family)

_HHR_SOURCE = (
    "HigherHRNet official README (docs/reconstruction.md#higherhrnet-numbers); "
    "Table 3 of L-MFNet (docs/reconstruction.md#l-mfnet-tables)"
)
_LMF_SOURCE = "Zhang & Gao 2023, L-MFNet, Tables 2-3 (docs/reconstruction.md#l-mfnet-tables)"
_LMF_NOTE = (
    "the paper's (19.9 M, 2.95 GFLOPs) pair is not reachable by a faithful reconstruction at "
    "512 input (docs/reconstruction.md#l-mfnet-complexity); compare with measured params/GMACs"
)


def _build_bottom_up(num_keypoints: int, preset: dict, overrides: dict):
    """HigherHRNet-style model from ``preset`` + ``overrides`` (see ``bottom_up_config``)."""
    from fusepose.models.heads.higher import HigherHRNet, bottom_up_config

    backbone, head = bottom_up_config(**{**preset, **overrides})
    return HigherHRNet(int(num_keypoints), backbone, head)


@register_model(
    "higherhrnet_w32", kind="bottom_up", input_size=(512, 512), num_keypoints=17,
    description="HigherHRNet-W32 (official architecture; loads pose_higher_hrnet_w32_512.pth)",
    paper={"params_m": 28.6, "gflops": 47.9, "AP": 67.1, "AP50": 86.2, "AP75": 73.0,
           "APM": 61.5, "APL": 76.1, "AP_test_dev": 66.4, "ablation_mAP": 66.4,
           "source": _HHR_SOURCE},
)  # fmt: skip
def higherhrnet_w32(num_keypoints: int = 17, **overrides):
    return _build_bottom_up(num_keypoints, {}, overrides)


@register_model(
    "higherhrnet_w32_shuffle", kind="bottom_up", input_size=(512, 512), num_keypoints=17,
    description="HigherHRNet-W32 + Shuffle-Neck Stage 1 (L-MFNet Table 3 ablation)",
    paper={"params_m": 28.4, "gflops": 47.8, "ablation_mAP": 66.5, "source": _LMF_SOURCE},
)  # fmt: skip
def higherhrnet_w32_shuffle(num_keypoints: int = 17, **overrides):
    return _build_bottom_up(num_keypoints, {"stage1_block": "shuffle_neck"}, overrides)


@register_model(
    "higherhrnet_w32_ghost", kind="bottom_up", input_size=(512, 512), num_keypoints=17,
    description="HigherHRNet-W32 + Ghost-Blocks (k=1) in Stages 2-4 (L-MFNet Table 3 ablation)",
    paper={"params_m": 20.1, "gflops": 3.86, "ablation_mAP": 65.2, "source": _LMF_SOURCE,
           "note": _LMF_NOTE},
)  # fmt: skip
def higherhrnet_w32_ghost(num_keypoints: int = 17, **overrides):
    return _build_bottom_up(num_keypoints, {"block": "ghost"}, overrides)


_LMF_PAPER = {
    "params_m": 19.9, "gflops": 2.95, "AP": 65.4, "AP50": 86.2, "AP75": 71.5, "APM": 60.3,
    "APL": 72.3, "ablation_mAP": 65.4, "source": _LMF_SOURCE, "note": _LMF_NOTE,
}  # fmt: skip
_LMF_R1 = {"stage1_block": "shuffle_neck", "block": "ghost", "ghost_kernel_size": 1}


@register_model(
    "lmfnet", kind="bottom_up", input_size=(512, 512), num_keypoints=17,
    description="L-MFNet R1: Shuffle-Neck + Ghost-Blocks (k=1) + CBAM, HigherHRNet head",
    paper=_LMF_PAPER,
)  # fmt: skip
def lmfnet(num_keypoints: int = 17, **overrides):
    return _build_bottom_up(num_keypoints, _LMF_R1, overrides)


@register_model(
    "lmfnet_paper", kind="bottom_up", input_size=(512, 512), num_keypoints=17,
    description="L-MFNet R2 (paper budget): Shuffle-Neck + Ghost-Blocks with 3x3 primary conv",
    paper=_LMF_PAPER,
)  # fmt: skip
def lmfnet_paper(num_keypoints: int = 17, **overrides):
    return _build_bottom_up(num_keypoints, {**_LMF_R1, "ghost_kernel_size": 3}, overrides)


@register_model(
    "lmfnet_lite", kind="bottom_up", input_size=(512, 512), num_keypoints=17,
    description="L-MFNet R3: R1 with Ghost-Blocks in the deconvolution head too",
    paper={**_LMF_PAPER, "note": "R3 is a reconstruction variant with no row of its own; "
           "the figures are L-MFNet's. " + _LMF_NOTE},
)  # fmt: skip
def lmfnet_lite(num_keypoints: int = 17, **overrides):
    return _build_bottom_up(num_keypoints, {**_LMF_R1, "head_block": "ghost"}, overrides)


# Deployment variant, not in the paper
# (docs/reconstruction.md#lmfnet_deploy-a-deviation-from-the-paper-for-cpus): L-MFNet R1 at the
# depth and stem / stage-1 width that `fusepose ablate table3 --budget cpu` trains every row at:
# one HR module per stage, one Ghost-Block per branch (so one CBAM per stage branch, 10 instead
# of 108), one Shuffle-Neck, one head block. Designed from the CPU profile of
# docs/performance.md (per-block attention glue and small ops, not MACs, set L-MFNet's time on
# CPUs with bf16 matrix units); the AP that protocol measures for L-MFNet is this network's.
_LMF_DEPLOY = {**_LMF_R1, "stem_width": 32, "stage1_planes": 32, "stage1_blocks": 1,
               "modules": (1, 1, 1), "blocks_per_branch": 1, "head_num_blocks": 1}  # fmt: skip


@register_model(
    "lmfnet_deploy", kind="bottom_up", input_size=(512, 512), num_keypoints=17,
    description="L-MFNet deploy variant: 1 HR module per stage, 1 Ghost-Block (with its CBAM) "
    "per branch, 1 Shuffle-Neck, 1 head block, stem 32 (a deviation from the paper)",
    paper={"source": "not in the paper: fusepose's deployment variant of L-MFNet R1 "
           "(docs/reconstruction.md#lmfnet_deploy-a-deviation-from-the-paper-for-cpus)"},
)  # fmt: skip
def lmfnet_deploy(num_keypoints: int = 17, **overrides):
    return _build_bottom_up(num_keypoints, _LMF_DEPLOY, overrides)


# ---------------------------------------------------------------- top-down (SFM family)

_SFM_SOURCE = "Ren et al., arXiv 2107.13693 (abstract + poster); docs/reconstruction.md#sfm-claims"
_SFM_PAPER_COCO = {
    "params_m": 1.5, "gflops": 1.7, "AP": 71.7, "AP50": 90.7, "source": _SFM_SOURCE,
}  # fmt: skip
_SFM_PAPER_MPII = {
    "params_m": 1.50, "gflops": 1.70, "PCKh@0.5": 89.0, "PCKh@0.1": 42.0, "source": _SFM_SOURCE,
    "note": "the poster quotes the same 1.7 G for COCO 256x192; at 256x256 the same network "
    "costs 4/3 as much (docs/reconstruction.md#sfm-claims)",
}  # fmt: skip


def _build_sfm(num_keypoints: int, **overrides):
    """SFM backbone (two cascaded pyramids, HSA on decoder nodes) + one heatmap head per
    pyramid; ``overrides`` are :class:`~fusepose.models.backbones.sfm.SFMConfig` fields."""
    from fusepose.models.backbones.sfm import SFM, SFMConfig
    from fusepose.models.heads.topdown import TopDownHeatmapNet

    cfg = SFMConfig.from_overrides(**overrides)
    model = TopDownHeatmapNet(SFM(cfg), cfg.widths[0], int(num_keypoints), cfg.num_pyramids)
    model.config = cfg
    return model


@register_model(
    "sfm_coco", kind="top_down", input_size=(256, 192), num_keypoints=17,
    description="SFM + HSA-A (interpretation of Ren et al. 2021), COCO 256x192",
    paper=_SFM_PAPER_COCO,
)  # fmt: skip
def sfm_coco(num_keypoints: int = 17, **overrides):
    return _build_sfm(num_keypoints, **overrides)


@register_model(
    "sfm_coco_noatt", kind="top_down", input_size=(256, 192), num_keypoints=17,
    description="SFM ablation without attention, COCO 256x192",
)  # fmt: skip
def sfm_coco_noatt(num_keypoints: int = 17, **overrides):
    return _build_sfm(num_keypoints, **{"attention": "none", **overrides})


@register_model(
    "sfm_coco_sa", kind="top_down", input_size=(256, 192), num_keypoints=17,
    description="SFM ablation with plain (CBAM) spatial attention, COCO 256x192",
)  # fmt: skip
def sfm_coco_sa(num_keypoints: int = 17, **overrides):
    return _build_sfm(num_keypoints, **{"attention": "spatial", **overrides})


@register_model(
    "sfm_mpii", kind="top_down", input_size=(256, 256), num_keypoints=16, dataset="mpii",
    description="SFM + HSA-A (interpretation of Ren et al. 2021), MPII 256x256",
    paper=_SFM_PAPER_MPII,
)  # fmt: skip
def sfm_mpii(num_keypoints: int = 16, **overrides):
    return _build_sfm(num_keypoints, **overrides)


@register_model(
    "sfm_mpii_noatt", kind="top_down", input_size=(256, 256), num_keypoints=16, dataset="mpii",
    description="SFM ablation without attention, MPII 256x256",
)  # fmt: skip
def sfm_mpii_noatt(num_keypoints: int = 16, **overrides):
    return _build_sfm(num_keypoints, **{"attention": "none", **overrides})


@register_model(
    "sfm_mpii_sa", kind="top_down", input_size=(256, 256), num_keypoints=16, dataset="mpii",
    description="SFM ablation with plain (CBAM) spatial attention, MPII 256x256",
)  # fmt: skip
def sfm_mpii_sa(num_keypoints: int = 16, **overrides):
    return _build_sfm(num_keypoints, **{"attention": "spatial", **overrides})


# ---------------------------------------------------------------- tiny models for the test suite

# The fast test tier trains, exports and serves these (timm's ``test_*`` entries): the real
# blocks, heads, deploy wrapper and codecs at a few thousand parameters and 64 px, so a
# training step or an export takes milliseconds to seconds. They prove that things run and
# compose, not that they learn; ``fusepose models`` leaves them out (ModelInfo.test_only).
_TEST_LMFNET = {
    **_LMF_R1, "stem_width": 8, "stage1_planes": 4, "stage1_blocks": 1, "widths": (4, 8, 12, 16),
    "modules": (1, 1, 1), "blocks_per_branch": 1, "head_num_blocks": 1, "head_deconv_channels": 4,
}  # fmt: skip
_TEST_SFM = {"widths": (8, 8, 16, 16), "depths": (1, 1, 1, 1), "expansion": 2.0, "stem_width": 8}


@register_model(
    "test_lmfnet", kind="bottom_up", input_size=(64, 64), num_keypoints=17, test_only=True,
    description="test model: L-MFNet R1 blocks (Shuffle-Neck, Ghost, CBAM) at 13 k params, 64 px",
)  # fmt: skip
def test_lmfnet(num_keypoints: int = 17, **overrides):
    return _build_bottom_up(num_keypoints, _TEST_LMFNET, overrides)


@register_model(
    "test_sfm", kind="top_down", input_size=(64, 48), num_keypoints=17, test_only=True,
    description="test model: SFM + HSA blocks (two pyramids) at 14 k params, 64x48 crops",
)  # fmt: skip
def test_sfm(num_keypoints: int = 17, **overrides):
    return _build_sfm(num_keypoints, **{**_TEST_SFM, **overrides})
