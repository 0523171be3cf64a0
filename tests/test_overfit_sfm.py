"""The SFM overfit checkpoint (``configs/sfm_coco4-128x96_1xb4-160e.yaml``, trained once per
session, see ``conftest.py``) through every verb, and the two-stage command with the L-MFNet
overfit checkpoint as its person detector. Kept apart from ``test_overfit.py`` so the two
trainings run on the two xdist workers at once."""

from __future__ import annotations

import pytest
from cli_helpers import fusepose
from test_overfit import (
    OVERFIT_AP,
    _report,
    torch_and_onnx_give_the_same_people,
    verbs_reproduce_val_ap,
)

from fusepose.modelfile import describe


@pytest.mark.slow
def test_sfm_overfits_four_coco_images_on_gt_boxes(overfit_sfm):
    assert overfit_sfm["AP_before"] < 0.1
    assert overfit_sfm["AP_after"] >= OVERFIT_AP, overfit_sfm  # every CPU kind: test_overfit
    desc = describe(overfit_sfm["ckpt"])
    assert desc.val_metric == pytest.approx(overfit_sfm["AP_after"], abs=1e-6)
    assert desc.val["boxes"] == "gt"


@pytest.mark.slow
def test_every_verb_reproduces_the_sfm_checkpoint(overfit_sfm, coco_dir, tmp_path):
    verbs_reproduce_val_ap(overfit_sfm["ckpt"], coco_dir, tmp_path, "--gt-boxes")


@pytest.mark.slow
def test_torch_and_onnx_give_the_same_people_sfm(overfit_sfm, coco_dir, tmp_path):
    torch_and_onnx_give_the_same_people(overfit_sfm["ckpt"], coco_dir, tmp_path)


@pytest.mark.slow
def test_two_stage_lmfnet_detector_and_sfm(overfit_lmfnet, overfit_sfm, coco_dir, tmp_path):
    """The README's two-stage command: the L-MFNet checkpoint finds the people, SFM places
    their joints; no size flags."""
    res = tmp_path / "two_stage.json"
    fusepose("predict", overfit_sfm["ckpt"], "--detector", overfit_lmfnet["ckpt"], "--source",
             coco_dir, "--save-json", res, "--no-progress")  # fmt: skip
    report = tmp_path / "r.json"
    fusepose("eval", "--gt", coco_dir / "test_coco.json", "--results", res, "--report", report,
             "--no-per-keypoint")  # fmt: skip
    assert _report(report)["AP"] >= 0.7
