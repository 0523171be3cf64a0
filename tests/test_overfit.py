"""Overfit the 4 real COCO val2017 images (``mmpose_coco``), then run the checkpoints through
every verb: one pipeline from checkpoint to people, whichever verb asks.

The README's overfit recipes are trained once per module (slow: minutes on 2 cores)::

    fusepose train configs/lmfnet_coco4-256_1xb4-150e.yaml --out runs/overfit_lmfnet
    fusepose train configs/sfm_coco4-128x96_1xb4-160e.yaml --out runs/overfit_sfm

(``tests/test_overfit_sfm.py``; both are trained once per session, see ``conftest.py``).

A model that can learn must memorise them, scored by pycocotools on its own decoded
predictions. Every verb then reproduces the AP the training validation recorded in the
checkpoint (``fusepose eval --model``, ``--weights`` alone, ``--onnx`` on the export, ``predict``
+ ``eval --results``), with no size or architecture flag, and the two-stage command (L-MFNet
as the person detector of SFM) scores AP >= 0.7.

Before the training, fast checks that the bottom-up training targets themselves, decoded by the
validation path, score what the trained model is asked to reach: the HigherHRNet-style square
crop of the short side hides people at the image edges (AP of the targets < 0.5), the
letterbox geometry shared by training and validation does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import fusepose
from conftest import overfit_config

from fusepose.engine.data import build_dataset, target_codec
from fusepose.engine.validate import run_description
from fusepose.evaluation import evaluate_coco
from fusepose.geometry import affine_points, letterbox_matrix
from fusepose.modelfile import describe

LMFNET_CONFIG = "lmfnet_coco4-256_1xb4-150e.yaml"


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------ targets


def _target_ap(cfg, ann) -> float:
    """AP of the training samples' own targets (encoded heatmaps + ideal tags), decoded by the
    codec and mapped back with the inverse of each sample's matrix."""
    desc = run_description(cfg)
    codec = target_codec(desc, cfg)
    ds = build_dataset(cfg, desc, codec, train=True, rng=np.random.default_rng(0))
    results = []
    for i in range(len(ds)):
        s = ds[i]
        kp = s["keypoints"].numpy()
        h, w = s["image"].shape[1:]
        out_q, out_h = codec.ideal_outputs(kp, input_size=(h, w))
        poses, scores = codec.decode(out_q, out_h)
        inv = cv2.invertAffineTransform(s["meta"]["matrix"])
        iid = int(s["meta"]["image_id"])
        for p, sc in zip(poses, scores, strict=True):
            k = np.concatenate([affine_points(p[:, :2], inv), p[:, 2:]], 1)
            results.append(
                {"image_id": iid, "category_id": 1, "keypoints": k.ravel().tolist(),
                 "score": float(sc)}
            )  # fmt: skip
    return evaluate_coco(str(ann), results)["AP"]


def test_lmfnet_overfit_targets_cover_what_validation_scores(coco_dir):
    ann = coco_dir / "test_coco.json"
    cfg = overfit_config(LMFNET_CONFIG, coco_dir)
    assert cfg.data.resize == "letterbox"
    desc = run_description(cfg)
    ds = build_dataset(cfg, desc, target_codec(desc, cfg), train=True)
    h, w = cfg.data.input_size
    for i in range(len(ds)):
        s = ds[i]
        assert tuple(s["image"].shape) == (3, h, w)
        hw = s["meta"]["image_size"]
        # the training warp is the validation (Predictor) warp for a fixed (H, W) input
        np.testing.assert_allclose(s["meta"]["matrix"], letterbox_matrix(hw, (h, w)))
    assert _target_ap(cfg, ann) >= 0.95
    # the square crop of the short side at the same input height loses the edge people
    crop = overfit_config(LMFNET_CONFIG, coco_dir, "data.resize=crop", f"data.input_size=[{h},{h}]")
    assert _target_ap(crop, ann) < 0.5


# ------------------------------------------------------------------------------ learning


# The overfit proofs hold with margin on every CPU kind: the recipes are seeded and run one
# thread, but each CPU kind rounds its kernels' sums its own way and ends in other weights
# (L-MFNet 0.964-0.982, SFM 0.914-0.943 so far, README table); AP >= 0.8 from < 0.1
# untrained, and the recorded AP equal to the re-evaluated one, is what a model that learned
# shows on any of them.
OVERFIT_AP = 0.8


@pytest.mark.slow
def test_lmfnet_overfits_four_coco_images(overfit_lmfnet):
    assert overfit_lmfnet["AP_before"] < 0.1
    assert overfit_lmfnet["AP_after"] >= OVERFIT_AP, overfit_lmfnet
    desc = describe(overfit_lmfnet["ckpt"])
    assert desc.val_metric == pytest.approx(overfit_lmfnet["AP_after"], abs=1e-6)
    assert desc.geometry.mode == "letterbox"


# ------------------------------------------------------------------------------ one pipeline


def verbs_reproduce_val_ap(ckpt: Path, coco_dir: Path, tmp_path: Path, *boxes: str) -> dict:
    """eval --model / --weights / --onnx and predict + eval --results all give the AP the
    checkpoint recorded (1e-6), with no size flag. Returns ``{label: (report, results)}``:
    each path's metrics and the people it scored (COCO results)."""
    desc = describe(ckpt)
    data = ("--data", coco_dir / "test_coco.json", "--images", coco_dir, "--no-per-keypoint")
    onnx = tmp_path / "model.onnx"
    out = fusepose("export", "--weights", ckpt, "--output", onnx)
    assert "(ok" in out
    info = json.loads(fusepose("inspect", onnx, "--json"))
    assert info["val_AP"] == desc.val_metric and info["resize"] == desc.geometry.mode
    reports = {
        "eval --model": ("eval", "--model", desc.model, "--weights", ckpt),
        "eval --weights": ("eval", "--weights", ckpt),
        "eval --onnx": ("eval", "--onnx", onnx),
    }
    got = {}
    for label, argv in reports.items():
        name = label.split()[-1][2:]
        report, results = tmp_path / f"{name}.json", tmp_path / f"{name}_results.json"
        fusepose(*argv, *data, *boxes, "--report", report, "--save-results", results)
        got[label] = (_report(report), _report(results))
    if not boxes:  # bottom-up: predict writes what eval scores (every person: --score-thr 0)
        res = tmp_path / "predict.json"
        fusepose("predict", ckpt, "--source", coco_dir, "--save-json", res, "--score-thr", "0",
                 "--ann", coco_dir / "test_coco.json", "--no-progress")  # fmt: skip
        report = tmp_path / "predict_report.json"
        fusepose("eval", "--gt", coco_dir / "test_coco.json", "--results", res,
                 "--no-per-keypoint", "--report", report)  # fmt: skip
        got["predict + eval --results"] = (_report(report), _report(res))
    for label, (report, _) in got.items():
        assert report["AP"] == pytest.approx(desc.val_metric, abs=1e-6), (label, report["AP"])
    return got


@pytest.mark.slow
def test_every_verb_reproduces_the_lmfnet_checkpoint(overfit_lmfnet, coco_dir, tmp_path):
    ckpt = overfit_lmfnet["ckpt"]
    verbs_reproduce_val_ap(ckpt, coco_dir, tmp_path)
    # bench and visualize run the same file with no size flag
    bench = tmp_path / "bench.json"
    fusepose("bench", ckpt, "--runs", "1", "--warmup", "0", "--threads", "1", "--json", bench)
    assert _report(bench)["models"]["lmfnet"]["input_size"] == [256, 384]
    fusepose("visualize", ckpt, "--image", coco_dir / "000000196141.jpg", "--out",
              tmp_path / "vis", "--what", "heatmaps")  # fmt: skip
    assert (tmp_path / "vis" / "poses.png").is_file()


def torch_and_onnx_give_the_same_people(ckpt, coco_dir, tmp_path):
    """The exported file computes the checkpoint's network and decodes to the same people, with
    and without flip: on every image and batch (flipped copies included) the outputs agree to
    fp32 rounding (1e-4 of their magnitude), and the people scored by the dataset loop agree
    within the accuracy guard of any inference path (median joint change <= 0.5 px, 90th
    percentile <= 2 px, :func:`fusepose.inference.guard.guard_verdict`).

    Why not the same AP to 0.005, as this test once said: on the L-MFNet overfit checkpoint
    trained on an Intel Xeon (AVX-512 + AMX) the flip test scored AP 0.8176 in PyTorch and
    0.8236 in ONNX Runtime while their outputs differed by 1.3e-6 of their magnitude: plain
    fp32 rounding of two kernel libraries (no bf16, no reduced-precision math mode; the
    torch path runs fp32 kernels). The two part in the decode. HigherHRNet's tag grouping
    (``group_joints``, the official ``match_by_tag``) ranks a joint's candidates by their
    *rounded* tag distance to a person, then by heatmap value; there two right-ankle peaks
    535 px apart were at the same rounded distance from one person with heatmap values
    equal to 1e-5, so the rounding noise chose the ankle. Noise of 1e-6 of the outputs added
    to the PyTorch outputs themselves moves that AP between 0.8176 and 0.8298 (no flip:
    0.953-0.964). Which checkpoint has such a tie depends on the weights, hence on the CPU
    kind that trained them; the outputs' agreement and the guard hold on every one."""
    from fusepose.data.io import read_image
    from fusepose.evaluation.compare import keypoint_change, results_by_image
    from fusepose.export.package import default_dynamic, export_model
    from fusepose.inference import Predictor, evaluate_dataset
    from fusepose.inference.boxes import whole_image_box
    from fusepose.inference.guard import guard_verdict
    from fusepose.modelfile import load_model

    model, desc = load_model(ckpt)
    onnx = tmp_path / "m.onnx"
    export_model(model, onnx, desc=desc, dynamic=default_dynamic(desc))
    boxes = "gt" if desc.kind == "top_down" else "auto"
    for flip in (False, True):
        pt, po = Predictor(ckpt, flip=flip), Predictor(onnx, flip=flip)
        for path in sorted(coco_dir.glob("*.jpg")):
            img = read_image(path)
            prepared = pt.pipeline.prepare(img, whole_image_box(img))
            for batch in prepared.batches:
                for a, b in zip(pt.network(batch), po.runner(batch), strict=True):
                    assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max(), (flip, path.name)
        a = evaluate_dataset(pt, coco_dir / "test_coco.json", coco_dir, boxes=boxes)
        b = evaluate_dataset(po, coco_dir / "test_coco.json", coco_dir, boxes=boxes)
        ra, rb = results_by_image(a["results"]), results_by_image(b["results"])
        change = keypoint_change([(ra[iid], rb[iid]) for iid in ra])
        assert set(ra) == set(rb) and guard_verdict(change)[0], (flip, a["AP"], b["AP"], change)


@pytest.mark.slow
def test_torch_and_onnx_give_the_same_people_lmfnet(overfit_lmfnet, coco_dir, tmp_path):
    torch_and_onnx_give_the_same_people(overfit_lmfnet["ckpt"], coco_dir, tmp_path)
