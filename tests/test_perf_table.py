"""`fusepose perf` (fusepose.experiments.perf_table.run_perf) end to end at a toy scale: the
tiny registered test models."""

from __future__ import annotations

import pytest

from fusepose.errors import ConfigError
from fusepose.experiments.perf_table import PerfConfig, run_perf, to_markdown


def test_unknown_backend_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="torch-compile"):
        run_perf(PerfConfig(models=("lmfnet",), backends=("gpu",), workdir=str(tmp_path)))


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-cpu", "no-bf16-cpu"])
def test_perf_rows_ratios_and_markdown(tmp_path, coco_dir, force_isa, bf16):
    """Two tiny models, both backends, every precision, one real COCO image: every row is
    timed and keyed by (model, backend, precision); the baseline's fp32 row is 1.00x against
    itself, every other row's speed-up is the ratio to the baseline's fp32 median on the same
    backend, and the markdown shows it. A bf16 CPU adds torch bf16 rows, another CPU kind
    lists them as skipped: both branches run on any CPU (``has_bf16`` forced; PyTorch
    emulates bf16 where the CPU lacks it)."""
    force_isa(bf16=bf16)
    cfg = PerfConfig(
        models=("test_sfm", "test_lmfnet"),
        baseline="test_lmfnet",
        backends=("onnx", "torch"),
        input_size=(64, 64),
        runs=2,
        warmup=0,
        threads=1,
        int8=("test_lmfnet",),
        int8_calibration=2,
        flip_section=False,
        threads_section=False,
        peak_section=False,
        mac_bound=False,  # the MAC-bound column: tests/test_perf_speed.py
        workdir=str(tmp_path),
    )
    res = run_perf(cfg)
    rows = {(r["model"], r["backend"], r["precision"]): r for r in res["rows"]}
    assert len(rows) == len(res["rows"])  # no two rows share a key
    expected = {(m, b, "fp32") for m in ("test_sfm", "test_lmfnet") for b in ("onnx", "torch")}
    expected.add(("test_lmfnet", "onnx", "int8"))
    if bf16:
        expected |= {(m, "torch", "bf16") for m in ("test_sfm", "test_lmfnet")}
    assert set(rows) == expected
    skipped = {(s["model"], s["backend"], s["precision"]) for s in res.get("skipped", [])}
    assert (("test_lmfnet", "torch", "bf16") in skipped) is not bf16
    assert ("test_lmfnet", "onnx", "bf16") in skipped  # no bf16 kernels in ONNX Runtime
    for r in rows.values():
        assert r["network_ms"] > 0 and r["total_ms"] >= r["network_ms"]
    for (model, backend, precision), r in rows.items():
        base = rows[("test_lmfnet", backend, "fp32")]
        assert r["speedup_network"] == pytest.approx(base["network_ms"] / r["network_ms"],
                                                     rel=0.01)  # fmt: skip
        if (model, precision) == ("test_lmfnet", "fp32"):
            assert r["speedup_total"] == pytest.approx(1.0)
    lm = res["ratios"]["test_lmfnet"]
    assert lm["torch_over_onnx_network"] == pytest.approx(
        rows[("test_lmfnet", "torch", "fp32")]["network_ms"]
        / rows[("test_lmfnet", "onnx", "fp32")]["network_ms"], rel=0.01
    )  # fmt: skip
    assert rows[("test_lmfnet", "onnx", "fp32")]["input_size"] == [64, 64]
    md = to_markdown(res)
    assert "| test_lmfnet | onnx |" in md and "| test_sfm | torch |" in md
    assert ("| test_sfm | torch bf16 |" in md) is bf16
    assert res["machine"]["logical_cpus"] >= 1


def test_flop_bound_uses_the_best_dense_rate():
    from fusepose.experiments.perf_table import flop_bound_ms

    # 1.5 GMACs at max(60, 40) GMAC/s = 25 ms; the depthwise rate does not enter
    assert flop_bound_ms(1.5e9, {"matmul": 60.0, "conv1x1": 40.0, "dw3x3": 5.0}) == 25.0
    assert flop_bound_ms(1.5e9, {"matmul": 30.0, "conv1x1": 50.0, "dw3x3": 5.0}) == 30.0
