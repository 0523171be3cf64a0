"""`fusepose eval`: report files with the exact metric keys (the verb run in this process; the
one-line error contract through a real subprocess, as a shell sees it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CliRun, run_cli

REPO = Path(__file__).resolve().parents[1]
COCO_KEYS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
PCKH_KEYS = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean_unweighted", "Mean@0.1"]
README_STATS = [0.8608896054440609, 0.993145468392993, 0.9108910891089109, 0.7755775577557756,
                0.9372524752475248, 0.875, 1.0, 0.9166666666666666, 0.78, 0.9428571428571428]  # fmt: skip


def _eval(*args: str) -> CliRun:
    return run_cli("eval", *args)


def _eval_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fusepose.cli.main", "eval", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_coco_report(shared_data, tmp_path, backend):
    report = tmp_path / "out" / "coco.json"
    p = _eval(
        "--gt", shared_data / "mmpose_coco/test_coco.json",
        "--results", shared_data / "xtcocoapi_eval/example_coco_preds.json",
        "--backend", backend, "--report", report,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    data = json.loads(report.read_text())
    assert list(data)[:10] == COCO_KEYS
    assert [data[k] for k in COCO_KEYS] == README_STATS
    assert data["metric"] == "coco" and data["backend"] == backend and data["n_results"] == 73
    assert set(data["per_keypoint"]["keypoints"]) == {
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    }  # fmt: skip
    # The printed table carries the same numbers (4 decimals) and the per-keypoint summary.
    assert "0.8609" in p.stdout and "per-keypoint similarity" in p.stdout


def test_crowd_report(shared_data, tmp_path):
    report = tmp_path / "crowd.json"
    d = shared_data / "xtcocoapi_eval"
    p = _eval("--gt", d / "example_crowdpose_val.json", "--results", d / "example_crowdpose_preds.json",
              "--crowd", "--report", report)  # fmt: skip
    assert p.returncode == 0, p.stderr
    data = json.loads(report.read_text())
    assert list(data)[:9] == ["AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard"]
    assert data["AP"] == 0.7877215935879303 and data["AR75"] == 0.7777777777777778
    assert (data["AP_easy"], data["AP_medium"], data["AP_hard"]) == (1.0, 0.9802, 0.4116)
    assert data["backend"] == "faster"


def test_pckh_report(shared_data, tmp_path):
    report = tmp_path / "pckh.json"
    mat = shared_data / "mpii_valid_eval/detections_our_format.mat"
    p = _eval("--gt", mat, "--results", mat, "--report", report)
    assert p.returncode == 0, p.stderr
    data = json.loads(report.read_text())
    assert list(data)[:10] == PCKH_KEYS
    expected = [95.60, 92.71, 83.36, 76.74, 81.93, 73.36, 65.45, 82.34, 81.46, 28.97]
    assert [round(data[k], 2) for k in PCKH_KEYS] == expected
    assert round(data["Mean"], 4) == 82.3367
    assert data["metric"] == "pckh" and data["n_results"] == 2958
    assert len(data["per_joint"]) == 16 and data["joint_counts"]["head"] == 2932
    assert "95.60" in p.stdout


def test_errors_are_one_line_exit_2(shared_data, tmp_path):
    gt = shared_data / "mmpose_coco/test_coco.json"
    results = json.loads((shared_data / "xtcocoapi_eval/example_coco_preds.json").read_text())
    del results[2]["score"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(results))
    report = tmp_path / "r.json"
    p = _eval_process("--gt", gt, "--results", bad, "--report", report)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0
    assert "bad.json" in p.stderr and "missing field(s) ['score']" in p.stderr
    assert not report.exists()
    p = _eval("--gt", tmp_path / "gt.txt", "--results", bad)
    assert p.returncode == 2 and "--metric" in p.stderr
    d = shared_data / "xtcocoapi_eval"
    p = _eval("--gt", d / "example_crowdpose_val.json", "--results", d / "example_crowdpose_preds.json")
    assert p.returncode == 2 and "no 'area' field" in p.stderr and "--no-area" in p.stderr


def test_model_mode_gt_boxes(coco_dir, tmp_path):
    """Run a (randomly initialised) top-down model, the tiny ``test_sfm`` (crops of the 3:4
    aspect of sfm_coco's 256x192), through `fusepose eval --model` on 1 image.

    The weights are random, so AP is meaningless; what must hold: the CLI's saved results score
    the same through the Python API, there is one person per GT box (top-down), and each
    person's keypoints lie around its box in original-image pixels.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("fusepose.inference.predictor")
    from fusepose import create_model
    from fusepose.evaluation import evaluate_coco

    gt = json.loads((coco_dir / "test_coco.json").read_text())
    image_id = 40083  # 2 people with keypoints
    sub = {
        "images": [i for i in gt["images"] if i["id"] == image_id],
        "categories": gt["categories"],
        "annotations": [a for a in gt["annotations"] if a["image_id"] == image_id],
    }
    boxes = [a["bbox"] for a in sub["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    (tmp_path / "sub.json").write_text(json.dumps(sub))
    torch.manual_seed(0)
    torch.save(create_model("test_sfm").state_dict(), tmp_path / "w.pth")
    report, saved = tmp_path / "report.json", tmp_path / "res.json"
    p = _eval(
        "--model", "test_sfm", "--weights", tmp_path / "w.pth", "--data", tmp_path / "sub.json",
        "--images", coco_dir, "--gt-boxes", "--report", report, "--save-results", saved,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    data = json.loads(report.read_text())
    assert list(data)[:10] == COCO_KEYS and data["model"] == "test_sfm"
    results = json.loads(saved.read_text())
    # One person per GT box: the two people are far apart, so OKS-NMS (0.9) keeps both.
    assert len(results) == data["n_results"] == len(boxes) == 2
    again = evaluate_coco(tmp_path / "sub.json", saved, per_keypoint=False)
    assert [again[k] for k in COCO_KEYS] == [data[k] for k in COCO_KEYS]
    for r in results:
        kp = np.asarray(r["keypoints"]).reshape(17, 3)
        assert r["image_id"] == image_id
        inside = []
        for x, y, w, h in boxes:
            # The crop: the box widened to the 192:256 input aspect, then padded x 1.25.
            w2 = max(w, h * 192 / 256)
            half = 0.625 * np.array([w2, w2 * 256 / 192])
            inside.append(np.all(np.abs(kp[:, :2] - [x + w / 2, y + h / 2]) <= half + 2.0))
        assert any(inside)
