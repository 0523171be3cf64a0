"""Issue 22's parts of `fusepose perf` (fusepose.experiments.perf_speed): every row's MAC-bound
time at the best dense rate of its precision measured in the run, the throughput section, the
run's verdict, torch.compile bf16 rows, and `fusepose perf --verdict` over separate runs' JSON
files. Tiny registered models; no timing is asserted, only how the numbers are made."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_cli
from test_throughput import _perf_run

import fusepose.experiments.perf_speed as perf_speed
import fusepose.experiments.perf_table as perf_table
from fusepose.errors import ConfigError
from fusepose.experiments.perf_table import PerfConfig, run_perf, to_markdown

RATES = {"fp32": {"onnx_matmul": 10.0, "torch_conv3x3": 40.0},
         "bf16": {"openvino_matmul": 80.0, "torch_matmul": 20.0}}  # fmt: skip
PEAK = {"matmul": 10.0, "conv1x1": 8.0, "dw3x3": 1.0}


def _tiny_cfg(tmp_path, **kw) -> PerfConfig:
    base = dict(models=("test_lmfnet", "test_sfm"), baseline="test_lmfnet",
                backends=("onnx", "torch"), precisions=("fp32", "bf16"), input_size=(64, 64),
                runs=2, warmup=0, threads=1, int8=(), flip_section=False, threads_section=False,
                peak_section=False, workdir=str(tmp_path))  # fmt: skip
    return PerfConfig(**{**base, **kw})


def test_every_row_shows_its_mac_bound_at_the_best_dense_rate(tmp_path, coco_dir, force_isa,
                                                              monkeypatch):  # fmt: skip
    """Rates are fixed here (the probes are tested in test_throughput.py); the peak is measured
    once and handed to the dense-rate probes. fp32 rows: GMACs / 40 GMAC/s (the best fp32
    probe, not the 10 of the MatMul); bf16 rows: GMACs / 80 GMAC/s."""
    force_isa(bf16=True)
    seen = {}

    def fake_rates(threads, reps=10, peak=None):
        seen["peak"] = peak
        return RATES

    monkeypatch.setattr(perf_table, "measure_peak", lambda threads, reps=10: PEAK)
    monkeypatch.setattr(perf_speed, "dense_rates", fake_rates)
    res = run_perf(_tiny_cfg(tmp_path, input_size=(128, 128)))
    assert seen["peak"] is PEAK and res["dense_rates"] == RATES
    precisions = set()
    for r in res["rows"]:
        b = r["mac_bound"]
        best = {"fp32": 40.0, "bf16": 80.0}[r["precision"]]
        limit = r["gmacs"] / best * 1e3  # GMACs / (GMAC/s) in ms
        assert r["gmacs"] > 0 and b["rate_gmac_s"] == best
        assert b["limit_ms"] == pytest.approx(limit, abs=0.006)
        assert b["over_limit"] == pytest.approx(r["network_ms"] / limit, rel=2e-3)
        precisions.add(r["precision"])
    assert precisions == {"fp32", "bf16"}
    md = to_markdown(res)
    assert "MAC-bound ms (network / bound)" in md
    assert "fp32 40.0 GMAC/s (torch_conv3x3), bf16 80.0 GMAC/s (openvino_matmul)" in md
    onnx = next(r for r in res["rows"] if r["label"] == "test_lmfnet [onnx]")
    cell = f"{onnx['mac_bound']['limit_ms']:.1f} ({onnx['mac_bound']['over_limit']:.2f}x)"
    assert f"| {cell} |" in md
    # no model of the baseline's kind (test_sfm is top-down): no verdict line in this run
    assert "verdict" not in res and "Speed verdict" not in md


def test_no_mac_bound_leaves_rows_and_table_as_before(tmp_path, coco_dir, monkeypatch):
    monkeypatch.setattr(perf_speed, "dense_rates", lambda *a, **k: pytest.fail("probed"))
    res = run_perf(_tiny_cfg(tmp_path, models=("test_lmfnet",), backends=("onnx",),
                             precisions=("fp32",), mac_bound=False))  # fmt: skip
    assert "dense_rates" not in res and all("mac_bound" not in r for r in res["rows"])
    assert "MAC-bound" not in to_markdown(res)


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-cpu", "no-bf16-cpu"])
def test_torch_compile_gets_a_bf16_row_where_the_cpu_has_bf16(tmp_path, force_isa, bf16):
    """The rows `_variants` plans (nothing compiled here): torch-compile fp32 always, bf16 only
    on a bf16 CPU (else listed as skipped), never INT8."""
    force_isa(bf16=bf16)
    cfg = _tiny_cfg(tmp_path, backends=("torch-compile",), precisions=("fp32", "bf16", "int8"))
    s = perf_table._Session(cfg, lambda m: None, tmp_path, np.zeros((8, 8, 3), np.uint8), None,
                            np.zeros((1, 4)), tmp_path)  # fmt: skip
    eager = object()
    planned = perf_table._variants(s, "test_lmfnet", None, eager, (64, 64))
    expected = [("torch-compile", "fp32", None, eager)]
    expected += [("torch-compile", "bf16", None, eager)] if bf16 else []
    assert planned == expected
    skipped = [(d["backend"], d["precision"]) for d in s.skipped]
    assert skipped == ([] if bf16 else [("torch-compile", "bf16")])


def test_negative_streams_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--streams -1"):
        run_perf(_tiny_cfg(tmp_path, streams=-1))


@pytest.mark.slow
def test_throughput_section_two_streams_beside_latency(tmp_path, coco_dir):
    res = run_perf(_tiny_cfg(tmp_path, models=("test_lmfnet",), backends=("onnx",),
                             precisions=("fp32",), mac_bound=False, streams=2))  # fmt: skip
    t = res["throughput"]
    d = t["models"]["test_lmfnet"]
    assert d["label"] == "test_lmfnet [onnx]" and t["streams"] == 2
    # 4 COCO images x ceil(2 runs x 2 streams / 4) = 4 frames, in each mode
    assert t["frames"] == 4 and d["latency"]["images"] == 4 and d["streams"]["images"] == 4
    assert d["latency"]["streams"] == 1 and d["latency"]["threads_per_stream"] == 1
    assert d["streams"]["per_stream_images"] == [2, 2]
    assert d["gain"] == pytest.approx(
        d["streams"]["images_per_s"] / d["latency"]["images_per_s"], rel=2e-3
    )
    assert "images/s (2 streams)" in to_markdown(res)


def _write_runs(tmp_path, runs):
    paths = []
    for i, run in enumerate(runs):
        paths.append(tmp_path / f"run{i + 1}.json")
        paths[-1].write_text(json.dumps(run))
    return paths


def test_perf_verdict_combines_three_runs_into_the_range(tmp_path):
    """`fusepose perf --verdict` over three hand-written runs: 90 / 50 = 1.8x, 86 / 57.3 =
    1.501x, 100 / 50 = 2.0x, so the range 1.50-2.00x, met (>= 1.5x on this bf16 CPU, every
    guard trained); sfm_coco (no rows of the baseline's kind) is not a candidate."""
    paths = _write_runs(tmp_path, [_perf_run(50.0, 90.0), _perf_run(57.3, 86.0),
                                   _perf_run(50.0, 100.0)])  # fmt: skip
    out, md = tmp_path / "verdict.json", tmp_path / "verdict.md"
    run = run_cli("perf", "--verdict", *paths, "--json", out, "--markdown", md)
    assert run.returncode == 0, run.stderr
    v = json.loads(out.read_text())
    assert list(v["models"]) == ["lmfnet_deploy"] and v["runs"] == 3
    d = v["models"]["lmfnet_deploy"]
    assert d["total_ratios"] == [1.8, 1.501, 2.0] and d["total_range"] == [1.501, 2.0]
    assert d["passed"] and v["target"] == 1.5
    assert "1.50-2.00x" in run.stdout and "**met**" in md.read_text()


def test_perf_verdict_refuses_mixed_or_repeated_runs(tmp_path):
    a, b, c = _write_runs(tmp_path, [_perf_run(50.0, 90.0), _perf_run(50.0, 90.0, bf16=False),
                                     {"rows": []}])  # fmt: skip
    twice = run_cli("perf", "--verdict", a, a)
    assert twice.returncode == 2 and "given twice" in twice.stderr
    mixed = run_cli("perf", "--verdict", a, b)
    assert mixed.returncode == 2 and "one CPU kind per verdict" in mixed.stderr
    bad = run_cli("perf", "--verdict", a, c)
    assert bad.returncode == 2 and "not a `fusepose perf --json` file" in bad.stderr
    copy = tmp_path / "copy.json"
    copy.write_text(json.dumps({**_perf_run(50.0, 90.0), "date_utc": "2026-01-01 10:00:00"}))
    copy2 = tmp_path / "copy2.json"
    copy2.write_text(copy.read_text())
    same = run_cli("perf", "--verdict", copy, copy2)
    assert same.returncode == 2 and "the same run as" in same.stderr
    alone = tmp_path / "alone.json"
    alone.write_text(json.dumps({**_perf_run(50.0, 90.0), "config": {
        "models": ["higherhrnet_w32"], "baseline": "higherhrnet_w32"}}))  # fmt: skip
    nothing = run_cli("perf", "--verdict", alone)
    assert nothing.returncode == 2 and "no model of higherhrnet_w32's kind" in nothing.stderr
    gone = run_cli("perf", "--verdict", tmp_path / "missing.json")
    assert gone.returncode == 2 and "missing.json" in gone.stderr


def test_one_run_gives_its_verdict_line_but_never_the_verdict():
    """A perf run's own verdict (the JSON's ``verdict``, the markdown's table): the candidate of
    the baseline's kind (not sfm_coco, which has no rows here), its ratio 90 / 50 = 1.8x, and
    not met: one run of the three the range needs."""
    from fusepose.experiments.perf_report import SECTIONS

    run = _perf_run(50.0, 90.0)
    v = perf_speed.verdict_section(run)
    d = v["models"]["lmfnet_deploy"]
    assert list(v["models"]) == ["lmfnet_deploy"] and d["total_ratios"] == [1.8]
    assert not d["passed"] and "1 run(s) with both best paths, 3 needed" in d["why"]
    lines = [line for section in SECTIONS if section.__name__ == "_verdict"
             for line in section({**run, "verdict": v}, {})]  # fmt: skip
    assert any("| lmfnet_deploy |" in line and "1.80x" in line and "missed" in line
               for line in lines)  # fmt: skip
    assert perf_speed.verdict_section({**run, "rows": run["rows"][:1]}) is None  # no baseline
