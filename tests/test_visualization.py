"""Skeleton drawing, heatmap / tag overlays, attention maps, and the visualize CLI."""

from __future__ import annotations

import cv2
import numpy as np
import torch

import fusepose
from fusepose.cli.main import main
from fusepose.skeletons import COCO17, MPII16, Skeleton
from fusepose.structures import PoseInstance, PoseResult
from fusepose.visualization.attention import attention_panels, record_attention
from fusepose.visualization.heatmaps import colorize, heatmap_grid, overlay, tag_map_image
from fusepose.visualization.skeleton import draw_poses, limb_colors

TRIANGLE = Skeleton(
    name="tri", keypoints=("a", "b", "c"), flip_pairs=(), limbs=((0, 1), (1, 2)),
    sigmas=(0.1, 0.1, 0.1),
)  # fmt: skip


def test_limbs_get_their_own_colour_and_low_scores_are_skipped():
    img = np.zeros((200, 200, 3), np.uint8)
    kpts = np.array([[20.0, 100.0], [100.0, 100.0], [100.0, 20.0]])
    drawn = draw_poses(img, [PoseInstance(kpts, [0.9, 0.9, 0.9], 1.0)], TRIANGLE, thickness=3)
    colors = limb_colors(2)
    assert colors[0] != colors[1]
    assert tuple(drawn[100, 60]) == colors[0]  # middle of limb a-b
    assert tuple(drawn[60, 100]) == colors[1]  # middle of limb b-c
    assert tuple(drawn[100, 20]) == (255, 255, 255)  # keypoint a
    # keypoint c below the threshold: neither it nor its limb is drawn
    low = draw_poses(img, [PoseInstance(kpts, [0.9, 0.9, 0.1], 1.0)], TRIANGLE, kpt_thr=0.3)
    assert tuple(low[60, 100]) == (0, 0, 0) and tuple(low[20, 100]) == (0, 0, 0)
    assert img.max() == 0  # the input is not modified


def test_draw_any_builtin_skeleton_on_a_result():
    img = np.full((64, 64, 3), 128, np.uint8)
    for skel in (COCO17, MPII16):
        k = skel.num_keypoints
        rng = np.random.default_rng(k)
        res = PoseResult([PoseInstance(rng.uniform(5, 60, (k, 2)), np.ones(k), 1.0)])
        out = draw_poses(img, res, skel)
        assert out.shape == img.shape and (out != img).any()


def test_heatmap_overlay_is_hot_at_the_peak():
    hm = np.zeros((2, 16, 16), np.float32)
    hm[0, 4, 12] = 1.0
    img = np.zeros((64, 64, 3), np.uint8)
    over = overlay(img, hm[0], alpha=1.0, vmin=0.0, vmax=1.0)
    hot, cold = colorize(np.array([[1.0]]), 0, 1)[0, 0], colorize(np.array([[0.0]]), 0, 1)[0, 0]
    peak = np.unravel_index(np.abs(over.astype(int) - hot).sum(-1).argmin(), (64, 64))
    assert abs(peak[0] - 4 * 4 - 1.5) <= 2 and abs(peak[1] - 12 * 4 - 1.5) <= 2
    assert (over[60, 2] == cold).all()
    grid = heatmap_grid(img, hm, ["a", "b"], cols=3)
    assert grid.shape == (64, 3 * 64, 3)  # max + 2 keypoints in one row


def test_tag_image_separates_people_by_colour():
    img = np.full((64, 64, 3), 100, np.uint8)
    heat = np.zeros((1, 64, 64), np.float32)
    tags = np.zeros((1, 64, 64), np.float32)
    heat[0, 10:20, 10:20], tags[0, 10:20, 10:20] = 1.0, -1.0
    heat[0, 40:50, 40:50], tags[0, 40:50, 40:50] = 1.0, 1.0
    out = tag_map_image(img, heat, tags)
    assert not np.array_equal(out[15, 15], out[45, 45])
    assert (out[30, 30] == 100).all()  # no keypoint: plain grey


def test_attention_maps_of_hsa_side_by_side():
    torch.manual_seed(0)
    model = fusepose.create_model("sfm_coco").eval()
    maps = record_attention(model, torch.randn(1, 3, 128, 96))
    assert maps, "sfm_coco has HSA modules"
    name, first = next(iter(maps.items()))
    assert set(first) >= {"first", "second"}
    assert first["first"].shape[:2] == (1, 1)
    # recording is switched off again afterwards
    assert all(not m.record_maps for _, m in fusepose.models.attention_modules(model))
    img = np.zeros((128, 96, 3), np.uint8)
    panel = attention_panels(img, first, name)
    assert panel.shape[1] == 2 * 96  # first | second


def test_visualize_cli_writes_pngs(tmp_path, coco_dir):
    rc = main(["visualize", "sfm_coco", "--random-weights", "--image",
               str(coco_dir / "000000196141.jpg"), "--out", str(tmp_path), "--box",
               "250", "60", "120", "300"])  # fmt: skip
    assert rc == 0
    assert len(list((tmp_path / "attention").glob("*.png"))) >= 2
    for name in ("poses.png", "heatmaps.png", "attention.png"):
        img = cv2.imread(str(tmp_path / name))
        assert img is not None and img.size > 0, name
    assert cv2.imread(str(tmp_path / "poses.png")).shape == (429, 640, 3)
