"""``fusepose perf --checkpoints DIR`` (issue 22 item 1): every accuracy verdict judged on a
trained checkpoint per model; a row judged on random weights says so and never decides
``best``; the OpenVINO INT8 row of NNCF's accuracy control for a model with a checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fusepose.experiments.perf_checkpoints import NNCF_SCOPE, judge_rows, nncf_variant
from fusepose.experiments.perf_report import to_markdown
from fusepose.experiments.perf_rows import Row, best_paths
from fusepose.experiments.perf_table import PerfConfig, run_perf


def _row(model: str, backend: str, precision: str, ms: float, passed: bool,
         scope: str | None = None) -> Row:  # fmt: skip
    guard = {"median_px": 0.1, "p90_px": 0.5, "passed": passed}
    if (backend, precision) == ("onnx", "fp32"):
        guard = {"reference": True, "passed": True}
    return Row(model, backend, precision, "bottom_up", total_ms=ms, network_ms=ms / 2,
               int8_scope=scope, guard=guard, guard_passed=passed)  # fmt: skip


def test_checkpoint_verdicts_decide_and_random_rows_decide_nothing(tiny_lmfnet):
    """With a checkpoint section for test_lmfnet, its verdict overrides the random-weight guard
    (the ONNX INT8 row passed on random weights, fails on the checkpoint), the NNCF row takes
    its IR's guard, and all its rows are judged on the checkpoint; test_sfm has none: its rows
    say ``random`` and it gets no ``best`` although its rows passed and are the fastest."""
    rows = [
        _row("test_lmfnet", "onnx", "fp32", 10.0, True),
        _row("test_lmfnet", "onnx", "int8", 4.0, True, scope="auto"),
        _row("test_lmfnet", "openvino", "int8", 6.0, False, scope=NNCF_SCOPE),
        _row("test_sfm", "onnx", "fp32", 1.0, True),
        _row("test_sfm", "onnx", "int8", 0.5, True, scope="auto"),
    ]
    section = {
        "checkpoint": str(tiny_lmfnet),
        "AP_onnx_fp32": 0.5,
        "paths": {"onnx_int8": {"AP": 0.3, "passed": False, "why": "AP 0.3 vs 0.5"}},
    }
    nncf = {"test_lmfnet": {"guard": {"AP": 0.498, "passed": True, "why": "within"}}}
    judge_rows(rows, [section], nncf)
    lm_fp32, lm_int8, lm_nncf, sfm_fp32, sfm_int8 = rows
    assert [r.guard_weights for r in rows] == ["checkpoint"] * 3 + ["random"] * 2
    assert lm_int8.guard_passed is False and lm_int8.guard["checkpoint"]["AP"] == 0.3
    assert lm_nncf.guard_passed is True and lm_nncf.guard["checkpoint"]["AP"] == 0.498
    assert lm_fp32.guard["checkpoint"] == {"AP": 0.5, "passed": True, "reference": True}
    assert sfm_int8.guard_passed is True and "checkpoint" not in sfm_int8.guard
    best = best_paths(rows, ["test_lmfnet", "test_sfm"], "test_lmfnet")
    assert set(best) == {"test_lmfnet"}
    assert best["test_lmfnet"]["label"] == "test_lmfnet [openvino int8 nncf]"


@pytest.mark.slow  # about 40 s on a shared 2-core CPU (the checkpoint's COCO section: 8 paths)
@pytest.mark.parametrize("time_checkpoints", [False, True], ids=["registered", "checkpoints"])
def test_perf_with_checkpoints_dir_judges_on_it(tiny_lmfnet, tmp_path, time_checkpoints):
    """``run_perf`` with ``checkpoints``: the checkpoint found in DIR/test_lmfnet/best.pth is
    reused (not retrained: same bytes), its COCO section is in the JSON and decides every
    test_lmfnet row; test_sfm (no checkpoint, no recipe) stays on random weights, gets no
    ``best``, and the markdown says both. The rows time the registered architecture (random
    weights) by default, the checkpoint's own network with ``time_checkpoints``."""
    ck = tmp_path / "ck" / "test_lmfnet"
    ck.mkdir(parents=True)
    shutil.copy(tiny_lmfnet, ck / "best.pth")
    before = (ck / "best.pth").read_bytes()
    cfg = PerfConfig(models=("test_lmfnet", "test_sfm"), baseline="test_lmfnet",
                     backends=("onnx", "torch"), precisions=("fp32",), input_size=(64, 96), runs=2,
                     warmup=0, threads=1, int8=(), flip_section=False, threads_section=False,
                     peak_section=False, workdir=str(tmp_path / "work"),
                     checkpoints=str(tmp_path / "ck"),
                     time_checkpoints=time_checkpoints)  # fmt: skip
    res = run_perf(cfg)
    assert (ck / "best.pth").read_bytes() == before
    assert Path(res["checkpoints"]["test_lmfnet"]["checkpoint"]) == ck / "best.pth"
    weights = {r["label"]: r["guard_weights"] for r in res["rows"]}
    assert weights == {
        "test_lmfnet [onnx]": "checkpoint",
        "test_lmfnet [torch]": "checkpoint",
        "test_sfm [onnx]": "random",
        "test_sfm [torch]": "random",
    }
    assert set(res["best"]) == {"test_lmfnet"}
    # what the rows time: the checkpoint's network when asked, else the registered one
    kinds = {r["label"]: r["weights"].split()[0] for r in res["rows"]}
    assert kinds["test_lmfnet [onnx]"] == ("checkpoint" if time_checkpoints else "random")
    assert kinds["test_sfm [onnx]"] == "random"
    md = to_markdown(res)
    assert "pass on random weights" in md and "No fastest path decided for test_sfm" in md


def test_nncf_row_of_a_checkpoint_that_finds_no_one_is_skipped_with_its_reason(tiny_lmfnet,
                                                                               tmp_path):  # fmt: skip
    """The tiny checkpoint finds no one on the COCO images (AP 0): there is no AP for NNCF's
    accuracy control to keep, so the row is listed as skipped with that reason, not made."""
    nncf: dict = {}
    skipped: list = []
    got = nncf_variant("test_lmfnet", tiny_lmfnet, (64, 96), tmp_path, 1, nncf, skipped)
    assert got is None and nncf == {}
    assert len(skipped) == 1 and skipped[0]["precision"] == "int8 nncf"
    assert "accuracy control needs a trained model" in skipped[0]["why"]


@pytest.mark.slow
def test_perf_nncf_row_on_the_trained_lmfnet_passes_its_guard(overfit_lmfnet, tmp_path):
    """``fusepose perf --checkpoints DIR`` on the README's overfit L-MFNet: the OpenVINO INT8
    row made by NNCF's accuracy control exists, is judged on the checkpoint and passes
    (AP within 0.01, median <= 0.5 px, p90 <= 2 px on the written file)."""
    ck = tmp_path / "ck" / "lmfnet"
    ck.mkdir(parents=True)
    (ck / "best.pth").symlink_to(overfit_lmfnet["ckpt"])
    cfg = PerfConfig(models=("lmfnet",), baseline="lmfnet", backends=("openvino",),
                     precisions=("fp32", "int8"), input_size=(256, 384), runs=2, warmup=1,
                     int8=("lmfnet",), flip_section=False, threads_section=False,
                     peak_section=False, workdir=str(tmp_path / "work"),
                     checkpoints=str(tmp_path / "ck"), time_checkpoints=True)  # fmt: skip
    res = run_perf(cfg)
    row = next(r for r in res["rows"] if r["int8_scope"] == NNCF_SCOPE)
    g = row["guard"]["checkpoint"]
    assert row["guard_weights"] == "checkpoint" and row["guard_passed"], g
    assert g["AP"] >= g["AP_fp32"] - 0.01 and g["median_px"] <= 0.5 and g["p90_px"] <= 2.0


def test_a_checkpoint_there_is_reused_even_without_a_recipe(tiny_lmfnet, tmp_path):
    """``DIR/test_lmfnet/best.pth`` is reused (checked, never retrained) although test_lmfnet
    has no guard recipe; test_sfm has neither file nor recipe: no entry (random weights)."""
    from fusepose.benchmark.checkpoints import GUARD_RECIPES, ensure_checkpoints

    assert "test_lmfnet" not in GUARD_RECIPES and "test_sfm" not in GUARD_RECIPES
    (tmp_path / "test_lmfnet").mkdir()
    shutil.copy(tiny_lmfnet, tmp_path / "test_lmfnet" / "best.pth")

    def fail(*args, **kwargs):
        raise AssertionError("trained although nothing was to be trained")

    got = ensure_checkpoints(tmp_path, ["test_lmfnet", "test_sfm"], trainer=fail)
    assert got == {"test_lmfnet": tmp_path / "test_lmfnet" / "best.pth"}
