"""COCO OKS evaluation, results validation and OKS-NMS against the official tools and hand values."""

from __future__ import annotations

import ast
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fusepose.errors import ConfigError, DataError, ResultsError
from fusepose.evaluation import coco as coco_mod
from fusepose.evaluation import (
    evaluate_coco,
    oks_iou,
    oks_nms,
    rescore_topdown,
    topdown_postprocess,
    validate_results,
    write_results,
)
from fusepose.skeletons import COCO17, CROWDPOSE14

COCO_KEYS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
# README, full-precision pycocotools 2.0.11 `stats` for test_coco.json + example_coco_preds.json.
README_STATS = [0.8608896054440609, 0.993145468392993, 0.9108910891089109, 0.7755775577557756,
                0.9372524752475248, 0.875, 1.0, 0.9166666666666666, 0.78, 0.9428571428571428]  # fmt: skip
IOU_THRS = np.linspace(0.5, 0.95, 10)


@pytest.fixture(scope="module")
def coco_gt_path(coco_dir: Path) -> Path:
    return coco_dir / "test_coco.json"


@pytest.fixture(scope="module")
def coco_preds_path(shared_data: Path) -> Path:
    return shared_data / "xtcocoapi_eval" / "example_coco_preds.json"


def _gt_as_results(gt: dict) -> list[dict]:
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
        if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0)
    ]


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_reference_stats_exact(coco_gt_path, coco_preds_path, backend):
    res = evaluate_coco(coco_gt_path, coco_preds_path, backend=backend)
    assert [res[k] for k in COCO_KEYS] == README_STATS
    assert all(type(res[k]) is float for k in COCO_KEYS)
    # The tool's own text table is kept, its progress chatter is not.
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets= 20 ] = 0.861" in res["summary"]
    assert "DONE" not in res["summary"] and "index" not in res["summary"]
    assert res["n_results"] == 73


def test_reference_stats_silent(coco_gt_path, coco_preds_path, capsys):
    evaluate_coco(coco_gt_path, coco_preds_path, backend="pycocotools")
    evaluate_coco(coco_gt_path, coco_preds_path, backend="faster")
    assert capsys.readouterr().out == ""


def test_crowdpose_reference(shared_data):
    d = shared_data / "xtcocoapi_eval"
    res = evaluate_coco(
        d / "example_crowdpose_val.json",
        d / "example_crowdpose_preds.json",
        backend="faster",
        iou_type="keypoints_crowd",
        use_area=False,
    )
    assert res["AP"] == 0.7877215935879303
    assert res["AP50"] == 0.9881188118811886
    assert res["AP75"] == 0.7314356435643564
    assert res["AR"] == 0.8222222222222223
    assert res["AR50"] == 1.0
    assert res["AR75"] == 0.7777777777777778
    assert (round(res["AP_easy"], 4), round(res["AP_medium"], 4), round(res["AP_hard"], 4)) == (
        1.0,
        0.9802,
        0.4116,
    )
    # Default 14-keypoint sigmas are CrowdPose's: passing them explicitly changes nothing.
    res2 = evaluate_coco(
        d / "example_crowdpose_val.json",
        d / "example_crowdpose_preds.json",
        backend="faster",
        iou_type="keypoints_crowd",
        use_area=False,
        sigmas=CROWDPOSE14.sigmas,
        per_keypoint=False,
    )
    assert res2["AP"] == res["AP"] and res2["per_keypoint"] is None


def test_gt_without_area(shared_data):
    d = shared_data / "xtcocoapi_eval"
    with pytest.raises(DataError, match=r"example_crowdpose_val\.json: annotation id \d+ has no 'area'"):
        evaluate_coco(d / "example_crowdpose_val.json", d / "example_crowdpose_preds.json")
    with pytest.raises(ConfigError, match="faster"):
        evaluate_coco(d / "example_crowdpose_val.json", d / "example_crowdpose_preds.json", use_area=False)
    with pytest.raises(ConfigError, match="keypoints_crowd"):
        evaluate_coco(
            d / "example_crowdpose_val.json",
            d / "example_crowdpose_preds.json",
            iou_type="keypoints_crowd",
        )


def test_crowd_mode_needs_crowd_index(coco_gt_path, coco_preds_path):
    with pytest.raises(DataError, match="crowdIndex"):
        evaluate_coco(coco_gt_path, coco_preds_path, backend="faster", iou_type="keypoints_crowd")


# ----------------------------------------------------------------------------- GT as results


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
@pytest.mark.parametrize("rel", ["mmpose_coco/test_coco.json", "mmpose_ochuman/test_ochuman.json"])
def test_gt_as_results_is_perfect(shared_data, rel, backend):
    gt = json.loads((shared_data / rel).read_text())
    res = evaluate_coco(gt, _gt_as_results(gt), backend=backend)
    assert res["AP"] == 1.0 and res["AR"] == 1.0 and res["AP75"] == 1.0
    pk = res["per_keypoint"]
    assert pk["matched"] == pk["gt_people"] == len(_gt_as_results(gt))
    assert all(v["mean_ks"] == 1.0 for v in pk["keypoints"].values() if v["n"])


@pytest.mark.parametrize("rel", ["mmpose_crowdpose/test_crowdpose.json", "xtcocoapi_eval/example_crowdpose_val.json"])
def test_gt_as_results_crowdpose(shared_data, rel):
    gt = json.loads((shared_data / rel).read_text())
    res = evaluate_coco(gt, _gt_as_results(gt), backend="faster", iou_type="keypoints_crowd", use_area=False)
    assert res["AP"] == 1.0 and res["AR"] == 1.0
    assert list(res["per_keypoint"]["keypoints"])[12:] == list(gt["categories"][0]["keypoints"])[12:]


# ----------------------------------------------------------------------------- hand-computed OKS


def test_known_offset_gives_hand_oks(coco_gt_path):
    full = json.loads(coco_gt_path.read_text())
    ann = max((a for a in full["annotations"] if a["num_keypoints"] >= 10), key=lambda a: a["area"])
    gt = {
        "images": [i for i in full["images"] if i["id"] == ann["image_id"]],
        "categories": full["categories"],
        "annotations": [ann],
    }
    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    vis = kp[:, 2] > 0
    sig = np.asarray(COCO17.sigmas)
    # Pick the offset that puts the hand OKS at 0.72 (between the 0.70 and 0.75 thresholds).
    # OKS = mean_j exp(-d^2 / (2 s^2 k_j^2)), s^2 = area, k_j = 2 sigma_j, over labelled joints.
    dx, dy = 3.0, 4.0  # d = 5 px for every joint, then scaled below
    s2 = ann["area"]

    def hand_oks(scale: float) -> tuple[float, np.ndarray]:
        d2 = (scale * 5.0) ** 2
        ks = np.exp(-d2 / (2 * s2 * (2 * sig) ** 2))
        return float(ks[vis].mean()), ks

    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if hand_oks(mid)[0] > 0.72 else (lo, mid)
    scale = round(lo, 2)
    oks, ks = hand_oks(scale)
    assert 0.70 + 1e-3 < oks < 0.75 - 1e-3
    moved = kp.copy()
    moved[:, 0] += dx * scale
    moved[:, 1] += dy * scale
    moved[:, 2] = 1.0
    res_list = [{"image_id": ann["image_id"], "category_id": 1, "keypoints": moved.ravel().tolist(), "score": 0.9}]
    for backend in ("pycocotools", "faster"):
        res = evaluate_coco(gt, res_list, backend=backend)
        # One GT, one detection: AP at threshold t is 1 when OKS >= t, else 0.
        assert res["AP"] == pytest.approx(float(np.mean(IOU_THRS <= oks)), abs=1e-12)
        assert res["AP"] == pytest.approx(0.5, abs=1e-12)
        assert res["AP50"] == pytest.approx(1.0, abs=1e-12) and res["AP75"] == 0.0
        per = res["per_keypoint"]["keypoints"]
        for j, name in enumerate(COCO17.keypoints):
            if vis[j]:
                assert per[name]["n"] == 1
                assert per[name]["mean_ks"] == pytest.approx(ks[j], rel=1e-9)
            else:
                assert per[name]["n"] == 0 and math.isnan(per[name]["mean_ks"])


# ----------------------------------------------------------------------------- validation


def _good(coco_preds_path: Path) -> list[dict]:
    return json.loads(coco_preds_path.read_text())


def _forbid_metrics(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("a metric was computed before validation failed")

    monkeypatch.setattr(coco_mod, "_run_pycocotools", boom)
    monkeypatch.setattr(coco_mod, "_run_faster", boom)


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda r: r[3].pop("score"), r"entry 3 is missing field\(s\) \['score'\]"),
        (lambda r: r[0].pop("image_id"), r"entry 0 is missing field\(s\) \['image_id'\]"),
        (lambda r: r[1].pop("category_id"), r"missing field\(s\) \['category_id'\]"),
        (lambda r: r[1].pop("keypoints"), r"missing field\(s\) \['keypoints'\]"),
        (lambda r: r[2].__setitem__("keypoints", r[2]["keypoints"][:-3]), r"entry 2: wrong keypoint count: 48 values, expected 51"),
        (lambda r: r[2].__setitem__("image_id", 123456789), r"entry 2: image_id 123456789 is not an image id"),
        (lambda r: r[4]["keypoints"].__setitem__(7, float("nan")), r"entry 4: 'keypoints'\[7\] = nan is not a finite number"),
        (lambda r: r[4]["keypoints"].__setitem__(0, float("inf")), r"'keypoints'\[0\] = inf is not a finite"),
        (lambda r: r[5].__setitem__("score", float("nan")), r"entry 5: 'score' = nan is not a finite number"),
        (lambda r: r[5].__setitem__("category_id", 2), r"entry 5: category_id 2 is not a category"),
        (lambda r: r.__setitem__(0, [1, 2, 3]), r"entry 0 is a list, not an object"),
    ],
)
def test_malformed_results_raise_before_metrics(coco_gt_path, coco_preds_path, monkeypatch, mutate, pattern):
    results = _good(coco_preds_path)
    mutate(results)
    _forbid_metrics(monkeypatch)
    with pytest.raises(ResultsError, match=pattern):
        evaluate_coco(coco_gt_path, results)
    with pytest.raises(ResultsError, match=pattern):
        validate_results(results, coco_gt_path)


def test_malformed_results_file_named(coco_gt_path, coco_preds_path, tmp_path, monkeypatch):
    _forbid_metrics(monkeypatch)
    bad = tmp_path / "bad_results.json"
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ResultsError, match=r"bad_results\.json: results must be a JSON list"):
        evaluate_coco(coco_gt_path, bad)
    bad.write_text("[{not json")
    with pytest.raises(ResultsError, match=r"bad_results\.json: not a readable JSON"):
        evaluate_coco(coco_gt_path, bad)
    with pytest.raises(ResultsError, match=r"missing\.json: results file not found"):
        evaluate_coco(coco_gt_path, tmp_path / "missing.json")
    with pytest.raises(DataError, match=r"nope\.json: ground-truth file not found"):
        evaluate_coco(tmp_path / "nope.json", coco_preds_path)
    results = _good(coco_preds_path)
    results[0]["keypoints"] = np.asarray(results[0]["keypoints"]).reshape(17, 3).tolist()
    with pytest.raises(ResultsError, match=r"nested lists: flatten"):
        evaluate_coco(coco_gt_path, results)


def test_write_results_round_trip(coco_gt_path, coco_preds_path, tmp_path):
    results = _good(coco_preds_path)
    as_numpy = [dict(r, keypoints=np.asarray(r["keypoints"]), score=np.float32(r["score"])) for r in results]
    out = write_results(tmp_path / "sub" / "res.json", as_numpy)
    back = json.loads(out.read_text())
    assert [r["keypoints"] for r in back] == [r["keypoints"] for r in results]
    assert [r["score"] for r in back] == [float(np.float32(r["score"])) for r in results]
    assert list(out.parent.iterdir()) == [out]  # no temp file left behind
    from_file = evaluate_coco(coco_gt_path, out, per_keypoint=False)
    from_list = evaluate_coco(coco_gt_path, back, per_keypoint=False)
    assert [from_file[k] for k in COCO_KEYS] == [from_list[k] for k in COCO_KEYS]
    # numpy keypoints are accepted as they are (validated, then handed to the tools as lists).
    arrays = [dict(r, keypoints=np.asarray(r["keypoints"])) for r in back]
    for backend in ("pycocotools", "faster"):
        from_arrays = evaluate_coco(coco_gt_path, arrays, backend=backend, per_keypoint=False)
        assert [from_arrays[k] for k in COCO_KEYS] == [from_list[k] for k in COCO_KEYS]


def test_inputs_not_mutated_and_empty_results(coco_gt_path, coco_preds_path):
    gt = json.loads(coco_gt_path.read_text())
    results = _good(coco_preds_path)
    gt0, res0 = copy.deepcopy(gt), copy.deepcopy(results)
    evaluate_coco(gt, results)
    evaluate_coco(gt, results, backend="faster")
    assert gt == gt0 and results == res0
    for backend in ("pycocotools", "faster"):
        res = evaluate_coco(gt, [], backend=backend)
        assert res["AP"] == 0.0 and res["AR"] == 0.0 and res["per_keypoint"]["matched"] == 0


def test_sigmas_for_custom_keypoint_count(coco_gt_path):
    gt = json.loads(coco_gt_path.read_text())
    # Keep 5 keypoints (the face): a custom set with no built-in sigmas.
    for a in gt["annotations"]:
        a["keypoints"] = a["keypoints"][:15]
        a["num_keypoints"] = sum(1 for v in a["keypoints"][2::3] if v > 0)
    gt["categories"][0]["keypoints"] = gt["categories"][0]["keypoints"][:5]
    res = _gt_as_results(gt)
    with pytest.raises(ConfigError, match="5 keypoints per person; no built-in OKS sigmas"):
        evaluate_coco(gt, res)
    with pytest.raises(ConfigError, match="need 5 positive"):
        evaluate_coco(gt, res, sigmas=[0.1] * 4)
    out = evaluate_coco(gt, res, sigmas=COCO17.sigmas[:5])
    assert out["AP"] == 1.0
    assert list(out["per_keypoint"]["keypoints"]) == list(COCO17.keypoints[:5])


# ----------------------------------------------------------------------------- boundaries


def test_evaluation_never_imports_models():
    import fusepose.evaluation as ev

    for path in sorted(Path(ev.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for n in names:
                assert not n.startswith(("fusepose.models", "torch")), f"{path.name} imports {n}"


# ----------------------------------------------------------------------------- NMS / rescoring


def _person(offset: float, score: float, k: int = 17) -> dict:
    base = np.stack([np.linspace(100, 180, k), np.linspace(50, 250, k), np.full(k, 0.9)], axis=1)
    base[:, 0] += offset
    return {"keypoints": base, "score": score, "area": 80.0 * 200.0}


def test_oks_iou_matches_pycocotools(coco_gt_path):
    """With equal areas and all joints labelled, OKS-NMS's OKS is COCOeval.computeOks."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_kp = _person(0, 1.0)["keypoints"].copy()
    gt_kp[:, 2] = 2
    area = 80.0 * 200.0
    dts = [_person(off, 0.5)["keypoints"] for off in (0.0, 2.0, 7.5, 30.0)]
    gt = {
        "images": [{"id": 1, "width": 400, "height": 400}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": gt_kp.ravel().tolist(),
                         "num_keypoints": 17, "area": area, "bbox": [100, 50, 80, 200], "iscrowd": 0}],
    }  # fmt: skip
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    dt = coco.loadRes([{"image_id": 1, "category_id": 1, "keypoints": d.ravel().tolist(), "score": 1.0 - i / 10}
                       for i, d in enumerate(dts)])  # fmt: skip
    ev = COCOeval(coco, dt, "keypoints")
    ev.params.imgIds = [1]
    ev._prepare()
    official = ev.computeOks(1, 1)[:, 0]  # dts sorted by score = input order here
    ours = oks_iou(gt_kp, np.stack(dts), area, np.full(len(dts), area))
    np.testing.assert_allclose(ours, official, rtol=1e-12)


def test_oks_nms_hand_cases():
    sig = np.asarray(COCO17.sigmas)
    area = 80.0 * 200.0
    d = 6.0
    hand = float(np.mean(np.exp(-(d**2) / (2 * area * (2 * sig) ** 2))))  # OKS of a 6 px shift
    people = [_person(0, 0.8), _person(d, 0.9), _person(300, 0.1)]
    # Above the threshold -> the lower-scored near-duplicate goes; the far person stays.
    assert oks_nms(people, thr=hand - 1e-6) == [1, 2]
    # Threshold above the pair's OKS -> everyone stays, ordered by score.
    assert oks_nms(people, thr=hand + 1e-6) == [1, 0, 2]
    assert oks_nms([], 0.9) == []
    # vis_thr: joints under the threshold in either person are left out of the mean.
    a, b = _person(0, 0.9), _person(d, 0.8)
    b["keypoints"][:10, 2] = 0.05
    expected = float(np.mean(np.exp(-(d**2) / (2 * area * (2 * sig[10:]) ** 2))))
    assert oks_iou(a["keypoints"], b["keypoints"][None], area, np.array([area]), vis_thr=0.2)[0] == pytest.approx(expected)


def test_rescore_and_topdown_postprocess():
    # box 0.9 x mean(0.5, 0.7) (0.1 is under 0.2) = 0.54; no joint above -> 0.
    got = rescore_topdown([0.9, 0.5], [[0.1, 0.5, 0.7], [0.1, 0.2, 0.0]], thr=0.2)
    np.testing.assert_allclose(got, [0.9 * 0.6, 0.0])
    p1, p2, p3 = _person(0, 0.9), _person(1.0, 0.95), _person(0, 0.7)
    p2["keypoints"][:, 2] = 0.5  # higher box score, but lower keypoint confidence
    results = []
    for img, p in ((1, p1), (1, p2), (2, p3)):
        results.append({"image_id": img, "category_id": 1, "keypoints": p["keypoints"].ravel().tolist(),
                        "score": p["score"], "area": p["area"]})  # fmt: skip
    out = topdown_postprocess(results)
    assert [r["image_id"] for r in out] == [1, 2]
    assert out[0]["score"] == pytest.approx(0.9 * 0.9)  # p1 wins after rescoring (0.81 > 0.475)
    assert out[1]["score"] == pytest.approx(0.7 * 0.9)
    assert results[0]["score"] == 0.9  # inputs untouched
