"""MPII PCKh against the README reference table (Tompson et al. predictions) and hand cases."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io as sio

from fusepose.errors import DataError, ResultsError
from fusepose.evaluation import PCKH_KEYS, evaluate_pckh, load_mpii_gt, load_pckh_predictions
from fusepose.evaluation.pckh import pckh_per_joint


@pytest.fixture(scope="module")
def mat_path(shared_data: Path) -> Path:
    return shared_data / "mpii_valid_eval" / "detections_our_format.mat"


@pytest.fixture(scope="module")
def gt(mat_path):
    return load_mpii_gt(mat_path)


def test_gt_layout(gt):
    assert gt.joints.shape == (2958, 16, 2)
    assert int(gt.annotated.sum()) == 44240  # README: 44,240 annotated, 3,088 missing
    assert int((~gt.annotated).sum()) == 3088
    assert gt.joint_names[9] == "head" and gt.joint_names[6] == "pelv"


def test_reference_table(mat_path, gt):
    preds = load_pckh_predictions(mat_path, gt)  # pos_pred_src (16, 2, N) -> (N, 16, 2)
    r = evaluate_pckh(preds, gt)
    table = {"Head": 95.60, "Shoulder": 92.71, "Elbow": 83.36, "Wrist": 76.74, "Hip": 81.93,
             "Knee": 73.36, "Ankle": 65.45, "Mean_unweighted": 81.46, "Mean@0.1": 28.97}  # fmt: skip
    for key, ref in table.items():
        assert round(r[key], 2) == ref, key
    assert round(r["Mean"], 4) == 82.3367
    assert list(r)[: len(PCKH_KEYS)] == list(PCKH_KEYS)
    assert len(r["per_joint"]) == 16 and len(r["per_joint@0.1"]) == 16
    assert sum(r["joint_counts"]) == 44240
    # HRNet's printed "Mean@0.1" is its pckAll[11], threshold 0.11: README 33.14.
    hits, counts = pckh_per_joint(preds, gt, 0.11)
    keep = [j for j in range(16) if j not in (6, 7)]
    assert round(100 * hits[keep].sum() / counts[keep].sum(), 2) == 33.14


def test_gt_as_prediction_scores_100(gt):
    r = evaluate_pckh(gt.joints, gt)
    assert all(r[k] == 100.0 for k in PCKH_KEYS)
    # A 0-based pipeline: 1 is added once, here.
    r0 = evaluate_pckh(gt.joints - 1.0, gt, one_based=False)
    assert all(r0[k] == 100.0 for k in PCKH_KEYS)
    noisy = gt.joints + np.random.default_rng(0).normal(0.0, 3.0, gt.joints.shape)
    shifted = evaluate_pckh(noisy, gt, one_based=False)
    assert shifted == evaluate_pckh(noisy + 1.0, gt)
    assert shifted["Mean@0.1"] != evaluate_pckh(noisy, gt)["Mean@0.1"]


def test_hand_counted_misses(gt):
    preds = gt.joints.copy()
    lwri, rsho, pelvis = 15, 12, 6
    people = np.flatnonzero(gt.annotated[:, lwri])[:3]
    # 0.6 head sizes away: a miss at 0.5. 0.4 head sizes: still a hit at 0.5, a miss at 0.1.
    preds[people, lwri, 0] += 0.6 * gt.head_size[people]
    p2 = np.flatnonzero(gt.annotated[:, rsho])[0]
    preds[p2, rsho, 1] += 0.4 * gt.head_size[p2]
    preds[:, pelvis] += 1e4  # pelvis is excluded from every mean
    r = evaluate_pckh(preds, gt)
    n_lwri, n_rwri = gt.annotated[:, lwri].sum(), gt.annotated[:, 10].sum()
    assert r["Wrist"] == pytest.approx(0.5 * (100.0 + 100.0 * (n_lwri - 3) / n_lwri))
    assert r["Shoulder"] == 100.0 and r["per_joint"][pelvis] == 0.0
    n14 = gt.annotated[:, [j for j in range(16) if j not in (6, 7)]].sum()
    assert r["Mean"] == pytest.approx(100.0 * (n14 - 3) / n14)
    assert r["Mean@0.1"] == pytest.approx(100.0 * (n14 - 4) / n14)
    assert r["Mean_unweighted"] == pytest.approx((13 * 100.0 + 100.0 * (n_lwri - 3) / n_lwri) / 14)
    assert n_rwri > 0


def test_prediction_formats_round_trip(tmp_path, gt):
    preds = gt.joints + 0.25
    ref = evaluate_pckh(preds, gt)
    sio.savemat(tmp_path / "pred.mat", {"preds": preds})
    with h5py.File(tmp_path / "pred.h5", "w") as f:
        f["preds"] = preds
    np.save(tmp_path / "pred.npy", preds)
    with_scores = np.concatenate([preds, np.ones((len(preds), 16, 1))], axis=2)
    np.save(tmp_path / "pred3.npy", with_scores)
    for name in ("pred.mat", "pred.h5", "pred.npy", "pred3.npy"):
        loaded = load_pckh_predictions(tmp_path / name, gt)
        np.testing.assert_array_equal(loaded, preds)
        assert evaluate_pckh(loaded, gt)["Mean"] == ref["Mean"]


def test_bad_predictions(tmp_path, gt):
    np.save(tmp_path / "short.npy", gt.joints[:10])
    with pytest.raises(ResultsError, match=r"short\.npy: 10 predicted people but the ground truth has 2958"):
        load_pckh_predictions(tmp_path / "short.npy", gt)
    np.save(tmp_path / "shape.npy", np.zeros((2958, 14, 2)))
    with pytest.raises(ResultsError, match=r"shape\.npy: predictions have shape \(2958, 14, 2\), expected \(N, 16, 2\)"):
        load_pckh_predictions(tmp_path / "shape.npy", gt)
    nan = gt.joints.copy()
    nan[5, 3, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(ResultsError, match=r"nan\.npy: person 5, joint 3 is not a finite number"):
        load_pckh_predictions(tmp_path / "nan.npy", gt)
    sio.savemat(tmp_path / "other.mat", {"joints": gt.joints})
    with pytest.raises(ResultsError, match=r"other\.mat: no 'preds' or 'pos_pred_src' variable \(found \['joints'\]\)"):
        load_pckh_predictions(tmp_path / "other.mat", gt)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["part"] = gt.joints
    with pytest.raises(ResultsError, match=r"other\.h5: no 'preds' dataset"):
        load_pckh_predictions(tmp_path / "other.h5", gt)
    (tmp_path / "p.txt").write_text("1 2")
    with pytest.raises(ResultsError, match=r"p\.txt: unknown predictions format"):
        load_pckh_predictions(tmp_path / "p.txt", gt)
    with pytest.raises(ResultsError, match="expected"):
        evaluate_pckh(np.zeros((2958, 16)), gt)


def test_bad_gt(tmp_path, mat_path):
    m = sio.loadmat(mat_path)
    sio.savemat(tmp_path / "gt.mat", {k: m[k] for k in ("jnt_missing", "pos_gt_src", "dataset_joints")})
    with pytest.raises(DataError, match=r"gt\.mat: missing field 'headboxes_src'"):
        load_mpii_gt(tmp_path / "gt.mat")
    with pytest.raises(DataError, match=r"absent\.mat: MPII ground-truth file not found"):
        load_mpii_gt(tmp_path / "absent.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataError, match=r"junk\.mat: not a readable \.mat"):
        load_mpii_gt(tmp_path / "junk.mat")
