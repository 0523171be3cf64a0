"""`fusepose perf` (fusepose.experiments.perf_table.run_perf) end to end at a toy scale."""

from __future__ import annotations

import pytest

from fusepose.errors import ConfigError
from fusepose.experiments.perf_table import PerfConfig, run_perf, to_markdown


def test_unknown_backend_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="torch-compile"):
        run_perf(PerfConfig(models=("lmfnet",), backends=("gpu",), workdir=str(tmp_path)))


@pytest.mark.slow
def test_perf_rows_ratios_and_markdown(tmp_path, coco_dir):
    """Two models, both backends, one real COCO image: every row is timed, a model is 1.00x
    against itself, the speed-up is the ratio of the two medians, and the markdown shows it."""
    cfg = PerfConfig(
        models=("sfm_coco", "lmfnet"),
        baseline="lmfnet",
        backends=("onnx", "torch"),
        precisions=("fp32",),  # one row per (model, backend) on every CPU kind (bf16 ones too)
        input_size=(128, 128),
        runs=2,
        warmup=0,
        threads=1,
        int8=(),
        flip_section=False,
        threads_section=False,
        peak_section=False,
        workdir=str(tmp_path),
    )
    res = run_perf(cfg)
    rows = {(r["model"], r["backend"]): r for r in res["rows"]}
    assert set(rows) == {(m, b) for m in ("sfm_coco", "lmfnet") for b in ("onnx", "torch")}
    for r in rows.values():
        assert r["network_ms"] > 0 and r["total_ms"] >= r["network_ms"]
    for b in ("onnx", "torch"):
        base, other = rows[("lmfnet", b)], rows[("sfm_coco", b)]
        assert base["speedup_total"] == pytest.approx(1.0)
        assert other["speedup_network"] == pytest.approx(
            base["network_ms"] / other["network_ms"], rel=0.01
        )
    lm = res["ratios"]["lmfnet"]
    assert lm["torch_over_onnx_network"] == pytest.approx(
        rows[("lmfnet", "torch")]["network_ms"] / rows[("lmfnet", "onnx")]["network_ms"], rel=0.01
    )
    assert rows[("lmfnet", "onnx")]["input_size"] == [128, 128]
    md = to_markdown(res)
    assert "| lmfnet | onnx |" in md and "| sfm_coco | torch |" in md
    assert res["machine"]["logical_cpus"] >= 1


def test_flop_bound_uses_the_best_dense_rate():
    from fusepose.experiments.perf_table import flop_bound_ms

    # 1.5 GMACs at max(60, 40) GMAC/s = 25 ms; the depthwise rate does not enter
    assert flop_bound_ms(1.5e9, {"matmul": 60.0, "conv1x1": 40.0, "dw3x3": 5.0}) == 25.0
    assert flop_bound_ms(1.5e9, {"matmul": 30.0, "conv1x1": 50.0, "dw3x3": 5.0}) == 30.0
