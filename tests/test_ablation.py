"""`fusepose ablate`: every variant of a paper's ablation trained with one recipe, scored with one
protocol and timed together; the table beside the paper's; resume skips finished variants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusepose.experiments.ablation import EXPERIMENTS, ablation_markdown
from fusepose.models.registry import get_model_info

KEYS = ("name", "params_M", "gmacs", "latency_ms", "AP", "paper_params_M", "paper_gflops",
        "paper_AP", "paper")  # fmt: skip


def _ablate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fusepose.cli.main", "ablate", *args],
                          capture_output=True, text=True, timeout=900)  # fmt: skip


def _check_outputs(out: Path, experiment: str) -> list[dict]:
    res = json.loads((out / "ablation.json").read_text())
    exp = EXPERIMENTS[experiment]
    rows = res["rows"]
    assert [r["name"] for r in rows] == list(exp.variants)
    for r in rows:
        assert set(KEYS) <= set(r), set(KEYS) - set(r)
        info = get_model_info(r["name"])
        assert r["paper"] == info.paper  # the registry's figures, untouched
        assert r["paper_AP"] == info.paper.get(exp.paper_metric)
        assert r["params_M"] > 0 and r["gmacs"] > 0 and r["latency_ms"] > 0
        assert 0.0 <= r["AP"] <= 1.0
        assert Path(r["checkpoint"]).is_file() and r["steps"] == 2
    # a trained network of each row is the one counted: different variants, different counts
    assert len({round(r["params_M"], 6) for r in rows}) == len(rows) or experiment != "table3"
    md = (out / "ablation.md").read_text()
    for r in rows:
        line = next(line for line in md.splitlines() if line.startswith(f"| {r['name']} |"))
        if r["paper_AP"] is not None:
            assert f"{r['paper_AP']:.1f}" in line  # the paper's number beside the measured one
        assert f"{r['AP']:.3f}" in line
    for png in ("ablation_ap_gmacs.png", "ablation_ap_latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return rows


@pytest.mark.slow
def test_ablate_table3_smoke(tmp_path):
    out = tmp_path / "t3"
    r = _ablate("table3", "--budget", "smoke", "--out", str(out), "--latency-runs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _check_outputs(out, "table3")
    by = {row["name"]: row for row in rows}
    # the ablation's point: Ghost-Blocks cut the full network's MACs, Shuffle-Neck a little
    assert by["higherhrnet_w32_ghost"]["full_gmacs"] < by["higherhrnet_w32"]["full_gmacs"]
    assert by["higherhrnet_w32_shuffle"]["full_gmacs"] < by["higherhrnet_w32"]["full_gmacs"]


@pytest.mark.slow
def test_ablate_sfm_attention_smoke_and_resume(tmp_path):
    out = tmp_path / "sfm"
    r = _ablate("sfm-attention", "--budget", "smoke", "--out", str(out), "--latency-runs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _check_outputs(out, "sfm-attention")
    runs = out / "runs"
    stamps = {n: (runs / n / "last.pth").stat().st_mtime_ns for n in EXPERIMENTS[
        "sfm-attention"].variants}  # fmt: skip

    # interrupted after the last variant's training, before it was scored: its result goes,
    # its checkpoint stays; the rerun skips the finished ones and resumes the last one
    last = rows[-1]["name"]
    (runs / last / "result.json").unlink()
    csv_before = (runs / last / "train.csv").read_text()
    r = _ablate("sfm-attention", "--budget", "smoke", "--out", str(out), "--latency-runs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    for name in EXPERIMENTS["sfm-attention"].variants[:-1]:
        assert f"{name}: done earlier" in r.stdout
        assert (runs / name / "last.pth").stat().st_mtime_ns == stamps[name]  # not retrained
    assert f"resuming {last}" in r.stdout
    assert (runs / last / "train.csv").read_text() == csv_before  # no step trained again
    again = _check_outputs(out, "sfm-attention")
    assert again[-1]["resumed"] is True and again[-1]["AP"] == rows[-1]["AP"]

    # another recipe into the same folder is refused (rows would mix)
    r = _ablate("sfm-attention", "--budget", "smoke", "--out", str(out), "--set",
                "optim.lr=1e-2")  # fmt: skip
    assert r.returncode == 2 and "other settings" in r.stderr


def test_markdown_puts_the_papers_numbers_beside_the_measured_ones():
    row = {"name": "lmfnet", "paper_params_M": 19.9, "full_params_M": 4.66, "paper_gflops": 2.95,
           "full_gmacs": 12.2, "params_M": 0.82, "gmacs": 0.2, "latency_ms": 31.5, "AP": 0.4321,
           "paper_AP": 65.4, "input_size": [128, 128], "full_input_size": [512, 512]}  # fmt: skip
    res = {"title": "T", "budget": "cpu", "config": "configs/x.yaml", "val_images": 120,
           "data": {"train_ann": "a", "val_ann": "b"}, "paper_metric": "ablation_mAP",
           "paper_claim": "c", "rows": [row],
           "latency": {"runs": 10, "image_size": [128, 128], "threads": 1}}  # fmt: skip
    line = next(x for x in ablation_markdown(res).splitlines() if x.startswith("| lmfnet |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells == ["lmfnet", "19.9", "4.66", "2.95", "12.20", "0.820", "0.200", "31.5",
                     "0.432", "65.4"]  # fmt: skip


def test_unknown_experiment_variant_and_budget_are_user_errors(tmp_path):
    from fusepose.errors import ConfigError
    from fusepose.experiments.ablation import run_ablation

    with pytest.raises(ConfigError, match="experiment"):
        run_ablation("table9", tmp_path)
    with pytest.raises(ConfigError, match="--variants"):
        run_ablation("table3", tmp_path, variants=["sfm_coco"])
    with pytest.raises(ConfigError, match="--budget"):
        run_ablation("table3", tmp_path, budget="huge")
    with pytest.raises(ConfigError, match="--data: missing"):
        run_ablation("table3", tmp_path, data={"train_ann": "x.json"})


def _gt_and_perfect(n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    images, anns, res = [], [], []
    for i in range(1, n + 1):
        kp = np.concatenate([rng.uniform(20, 80, (17, 2)), np.full((17, 1), 2.0)], 1)
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100})
        anns.append({"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "area": 2000.0,
                     "bbox": [20, 20, 60, 60], "num_keypoints": 17,
                     "keypoints": kp.reshape(-1).tolist()})  # fmt: skip
        res.append({"image_id": i, "category_id": 1, "score": 1.0,
                    "keypoints": kp.reshape(-1).tolist()})  # fmt: skip
    cats = [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(17)], "skeleton": []}]
    return {"images": images, "annotations": anns, "categories": cats}, res


def test_bootstrap_ap_spread():
    """GT as predictions: AP 1 on every resample (no spread). Predictions on half the images:
    the resamples' AP varies with how many of those were drawn, around the full set's AP."""
    from fusepose.evaluation import bootstrap_ap, evaluate_coco

    gt, res = _gt_and_perfect(8)
    b = bootstrap_ap(gt, res, resamples=20)
    assert b == {"AP_std": 0.0, "AP_lo": 1.0, "AP_hi": 1.0}
    half = [r for r in res if r["image_id"] <= 4]
    full = evaluate_coco(gt, half, backend="faster", per_keypoint=False)["AP"]
    b = bootstrap_ap(gt, half, resamples=40, seed=1)
    assert b["AP_std"] > 0.05 and b["AP_lo"] < full < b["AP_hi"]
