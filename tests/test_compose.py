"""The fast tier end to end: the tiny registered models (``test_lmfnet``, ``test_sfm``, trained a
few steps on the 4 COCO sample images by ``conftest._tiny_run``) through the training loop,
checkpoint, ``inspect``, ``eval``, ``export``, ``eval --onnx``, ``predict``, the two-stage
command, ``bench`` and ``visualize``. It proves that the parts run and compose (every verb
decodes the same people from one file, with no size flag), not that anything learns: the
learning proofs train the README's recipes (``test_overfit*.py``, ``make test-all``)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import fusepose
from test_overfit import verbs_reproduce_val_ap

from fusepose.evaluation.compare import keypoint_change, results_by_image
from fusepose.inference.guard import guard_verdict
from fusepose.modelfile import describe


def _same_people(got: dict) -> int:
    """Every path of ``verbs_reproduce_val_ap`` scored the same people as the checkpoint's
    ``eval --weights``: the PyTorch paths joint for joint (one network, one pipeline), the ONNX
    export within the accuracy guard of any other inference path (median change <= 0.5 px,
    90th percentile <= 2 px, the same people). Not joint for joint there: a barely trained
    network has many near-equal peaks and tags, and fp32 rounding that differs between the
    two runtimes (~1e-6 of the output) can pick the other of two equal peaks for a joint or
    two. Returns how many joints were compared."""
    ref = results_by_image(got["eval --weights"][1])
    joints = 0
    for label, (_, results) in got.items():
        other = results_by_image(results)
        assert set(other) == set(ref), label
        pairs = [(people, other[iid]) for iid, people in ref.items()]
        change = keypoint_change(pairs)
        assert change["people_ref"] == change["people_got"], (label, change)
        if label == "eval --onnx":
            assert guard_verdict(change)[0], (label, change)
        else:
            assert change["max_px"] <= 0.01, (label, change)
        joints += change["joints"]
    return joints


def test_tiny_checkpoints_describe_their_training(tiny_lmfnet, tiny_sfm):
    """The training loop wrote self-describing checkpoints: the config's geometry and the
    validation record (validated every 2nd epoch of 4 on the training images)."""
    from fusepose.modelfile import load_checkpoint

    bu, td = describe(tiny_lmfnet), describe(tiny_sfm)
    assert (bu.model, bu.kind, bu.geometry.mode, list(bu.geometry.size)) == (
        "test_lmfnet", "bottom_up", "letterbox", [64, 96])  # fmt: skip
    assert (td.model, td.kind, list(td.geometry.size)) == ("test_sfm", "top_down", [64, 48])
    assert td.val["boxes"] == "gt"
    for desc, run in ((bu, tiny_lmfnet.parent), (td, tiny_sfm.parent)):
        assert desc.val["epoch"] in (2, 4) and desc.val["ann"].endswith("test_coco.json")
        assert load_checkpoint(run / "last.pth")["epoch"] == 4
        assert len((run / "train.csv").read_text().splitlines()) == 1 + 4


def test_tiny_bottom_up_checkpoint_through_every_verb(tiny_lmfnet, coco_dir, tmp_path):
    got = verbs_reproduce_val_ap(tiny_lmfnet, coco_dir, tmp_path)
    assert set(got) == {"eval --model", "eval --weights", "eval --onnx", "predict + eval --results"}
    assert _same_people(got) >= 100  # an agreement about people, not about empty results


def test_tiny_top_down_checkpoint_through_every_verb(tiny_sfm, coco_dir, tmp_path):
    got = verbs_reproduce_val_ap(tiny_sfm, coco_dir, tmp_path, "--gt-boxes")
    ref = got["eval --weights"][1]
    assert len(ref) == 12  # one person per GT box of the 4 images
    assert _same_people(got) >= 100


def test_tiny_two_stage_bench_and_visualize(tiny_lmfnet, tiny_sfm, coco_dir, tmp_path):
    """The README's two-stage command with the tiny checkpoints (the bottom-up one finds the
    boxes), then ``eval --results`` on what it wrote; ``bench`` and ``visualize`` run the same
    files at their stored input size."""
    res = tmp_path / "two_stage.json"
    fusepose("predict", tiny_sfm, "--detector", tiny_lmfnet, "--source", coco_dir, "--save-json",
             res, "--no-progress")  # fmt: skip
    people = json.loads(res.read_text())
    assert people and all(len(p["keypoints"]) == 17 * 3 for p in people)
    assert {p["image_id"] for p in people} <= {785, 40083, 196141, 197388}
    report = tmp_path / "r.json"
    fusepose("eval", "--gt", coco_dir / "test_coco.json", "--results", res, "--report", report,
             "--no-per-keypoint")  # fmt: skip
    assert 0.0 <= json.loads(report.read_text())["AP"] <= 1.0
    bench = tmp_path / "bench.json"
    fusepose("bench", tiny_lmfnet, "--runs", "1", "--warmup", "0", "--threads", "1", "--json",
             bench)  # fmt: skip
    assert json.loads(bench.read_text())["models"]["test_lmfnet"]["input_size"] == [64, 96]
    fusepose("visualize", tiny_lmfnet, "--image", coco_dir / "000000196141.jpg", "--out",
             tmp_path / "vis", "--what", "heatmaps")  # fmt: skip
    assert (tmp_path / "vis" / "poses.png").is_file()


@pytest.mark.parametrize("pattern", ["*", "test_*"])
def test_test_models_stay_out_of_the_zoo_listing(pattern):
    """``fusepose models`` lists the zoo; the tiny test models only when asked by name."""
    out = fusepose("models", pattern)
    listed = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    if pattern == "*":
        assert "lmfnet" in listed and "sfm_coco" in listed
        assert not listed & {"test_lmfnet", "test_sfm"}
    else:
        assert listed == {"test_lmfnet", "test_sfm"}
