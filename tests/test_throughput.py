"""Throughput streams and the MAC-bound limit of a perf row (fusepose.benchmark.throughput,
fusepose.benchmark.limits). No timing is asserted: only that the numbers are made right."""

from __future__ import annotations

import numpy as np
import pytest

from fusepose.benchmark.limits import dense_rates, row_limit
from fusepose.benchmark.throughput import load_frames, measure_throughput
from fusepose.errors import ConfigError, SourceError
from fusepose.registry import create_model

TINY = {"stem_width": 8, "stage1_planes": 8, "widths": (8, 16, 32, 64), "modules": (1, 1, 1),
        "head_deconv_channels": 8}  # fmt: skip


@pytest.mark.slow
def test_two_single_thread_streams_share_the_frames(coco_dir):
    frames = load_frames(coco_dir)
    assert len(frames) == 4 and frames[0].ndim == 3
    model = create_model("lmfnet_deploy", **TINY).eval()
    res = measure_throughput({"model": model, "input_size": 64}, frames, streams=2, rounds=2,
                             warmup=1)  # fmt: skip
    # 4 frames x 2 rounds, round-robin over 2 streams of one thread each
    assert (res.streams, res.threads_per_stream, res.images) == (2, 1, 8)
    assert res.per_stream_images == [4, 4]
    assert res.seconds > 0 and res.images_per_s == pytest.approx(8 / res.seconds, rel=1e-2)
    assert 0 < res.latency_ms <= res.latency_p90_ms
    assert set(res.to_dict()) >= {"images_per_s", "latency_ms", "streams"}


def test_throughput_refuses_bad_arguments_before_any_work(coco_dir, tmp_path):
    frames = load_frames(coco_dir, max_frames=1)
    assert len(frames) == 1
    with pytest.raises(ConfigError, match="at least one per stream"):
        measure_throughput({"model": "lmfnet"}, frames, streams=2)
    with pytest.raises(ConfigError, match="streams"):
        measure_throughput({"model": "lmfnet"}, frames, streams=1, threads_per_stream=0)
    with pytest.raises(SourceError):
        load_frames(tmp_path / "missing.mp4")


@pytest.mark.slow
def test_a_stream_that_cannot_build_its_predictor_is_reported(coco_dir):
    frames = load_frames(coco_dir, max_frames=1)
    with pytest.raises(ConfigError, match="stream failed.*no weights"):
        measure_throughput({"model": "lmfnet"}, frames, streams=1)


def test_row_limit_hand_computed():
    rates = {"fp32": {"onnx_matmul": 50.0, "torch_conv3x3": 100.0}}
    # 12.2 GMACs at the best fp32 rate, 100 GMAC/s: 122 ms; a 244 ms row is 2x its limit
    lim = row_limit(12.2, "fp32", 244.0, rates)
    assert lim == {"precision": "fp32", "probe": "torch_conv3x3", "rate_gmac_s": 100.0,
                   "limit_ms": 122.0, "over_limit": 2.0}  # fmt: skip
    # no bf16 rate on this CPU: no bf16 limit; an INT8 row is judged at the fp32 rate then
    assert row_limit(12.2, "bf16", 50.0, rates) is None
    assert row_limit(12.2, "int8", 61.0, rates)["over_limit"] == 0.5
    with_bf16 = {**rates, "bf16": {"openvino_conv3x3": 400.0}}
    assert row_limit(12.2, "bf16", 61.0, with_bf16)["limit_ms"] == 30.5
    assert row_limit(12.2, "int8", 61.0, with_bf16)["precision"] == "bf16"
    assert row_limit(12.2, "fp16", 61.0, with_bf16) is None


@pytest.mark.parametrize("bf16", [False, True])
def test_dense_rates_per_precision_follow_the_cpu(bf16, monkeypatch):
    """Both branches of the CPU check: a bf16 section only where bf16 is native (forced here;
    on a CPU without it the bf16 probes still run, emulated, and only their numbers suffer)."""
    import fusepose.benchmark.limits as limits

    monkeypatch.setattr(limits, "has_bf16", lambda: bf16)
    rates = dense_rates(threads=1, reps=1)
    assert set(rates) == ({"fp32", "bf16"} if bf16 else {"fp32"})
    assert {"onnx_matmul", "onnx_conv1x1", "torch_matmul", "torch_conv3x3"} <= set(rates["fp32"])
    for probes in rates.values():
        assert all(np.isfinite(v) and v > 0 for v in probes.values())


def _perf_run(deploy_total, base_total, guard_weights="trained: best.pth", bf16=True,
              extra_rows=()):  # fmt: skip
    """A minimal ``run_perf`` result: the fields the verdict reads. ``guard_weights`` None: the
    rows have no such key (random-weight rows)."""
    rows = [
        {"label": "lmfnet_deploy [openvino bf16]", "model": "lmfnet_deploy", "kind": "bottom_up",
         "precision": "bf16", "gmacs": 3.2, "network_ms": deploy_total - 20,
         "total_ms": deploy_total, "guard_passed": True, "guard": {"median_px": 0.0}},
        {"label": "higherhrnet_w32 [openvino bf16]", "model": "higherhrnet_w32",
         "kind": "bottom_up", "precision": "bf16", "gmacs": 46.2, "network_ms": base_total - 20,
         "total_ms": base_total, "guard_passed": True, "guard": {"median_px": 0.0}},
    ]  # fmt: skip
    if guard_weights is not None:
        for r in rows:
            r["guard_weights"] = guard_weights
    rows += [dict(r) for r in extra_rows]
    best = {}
    for r in rows:  # the run's own best: the fastest row whose guard passed, trained or not
        if r["guard_passed"] and (r["model"] not in best
                                  or r["total_ms"] < best[r["model"]]["total_ms"]):  # fmt: skip
            best[r["model"]] = {"label": r["label"], "total_ms": r["total_ms"]}
    return {"machine": {"isa_kind": "AVX-512 + BF16 + VNNI", "bf16": bf16}, "rows": rows,
            "best": best, "config": {"models": ["lmfnet_deploy", "sfm_coco"],
                                     "baseline": "higherhrnet_w32"}}  # fmt: skip


def test_speed_verdicts_range_over_runs_and_trained_guards():
    from fusepose.benchmark.verdict import speed_target, speed_verdicts, verdict_markdown

    assert speed_target({"bf16": True}) == 1.5 and speed_target({"bf16": False}) == 2.0
    # 90 / 50 = 1.8x, 86 / 57.3 = 1.50x, 100 / 50 = 2.0x: all >= 1.5x (bf16 CPU)
    runs = [_perf_run(50.0, 90.0), _perf_run(57.3, 86.0), _perf_run(50.0, 100.0)]
    v = speed_verdicts(runs, ["lmfnet_deploy"])
    d = v["models"]["lmfnet_deploy"]
    assert v["target"] == 1.5 and d["total_ratios"] == [1.8, 1.501, 2.0]
    assert d["total_range"] == [1.501, 2.0]
    assert d["network_range"] == [1.769, 2.667]  # 66 / 37.3 and 80 / 30
    assert d["passed"] and d["trained"]
    assert "1.50-2.00x" in verdict_markdown(v) and "**met**" in verdict_markdown(v)
    # one slow run fails it; two runs are too few
    slow = speed_verdicts([*runs[:2], _perf_run(70.0, 100.0)], ["lmfnet_deploy"])
    assert not slow["models"]["lmfnet_deploy"]["passed"]
    assert "1.43x < 1.5x" in slow["models"]["lmfnet_deploy"]["why"]
    two = speed_verdicts(runs[:2], ["lmfnet_deploy"])["models"]["lmfnet_deploy"]
    assert "3 needed" in two["why"]
    # guards judged on random weights do not count: "random" or no guard_weights key at all
    for gw in ("random (He init)", None):
        rand = speed_verdicts([_perf_run(50.0, 90.0, guard_weights=gw)] * 3, ["lmfnet_deploy"])
        d = rand["models"]["lmfnet_deploy"]
        assert not d["trained"] and not d["passed"] and d["total_ratios"] == [1.8] * 3
    # the same ratios miss the AVX2 target of 2x
    avx2 = speed_verdicts([_perf_run(50.0, 90.0, bf16=False)] * 3, ["lmfnet_deploy"])
    assert avx2["target"] == 2.0 and not avx2["models"]["lmfnet_deploy"]["passed"]
    # a model with no accurate path in a run has no ratio there
    missing = speed_verdicts(runs, ["lmfnet"])["models"]["lmfnet"]
    assert missing["total_ratios"] == [None] * 3 and not missing["passed"]


def test_verdict_takes_the_fastest_path_judged_on_a_trained_checkpoint():
    """A faster path whose guard passed only on random weights is the run's ``best`` but not
    the verdict's: 90 / 50 = 1.8x, not 90 / 30 = 3x."""
    from fusepose.benchmark.verdict import speed_verdicts

    fast_random = {"label": "lmfnet_deploy [onnx int8]", "model": "lmfnet_deploy",
                   "kind": "bottom_up", "precision": "int8", "network_ms": 20.0,
                   "total_ms": 30.0, "guard_passed": True, "guard_weights": "random"}  # fmt: skip
    failed = {**fast_random, "label": "lmfnet_deploy [openvino int8]", "total_ms": 25.0,
              "guard_passed": False, "guard_weights": "trained: best.pth"}  # fmt: skip
    run = _perf_run(50.0, 90.0, extra_rows=[fast_random, failed])
    assert run["best"]["lmfnet_deploy"]["label"] == "lmfnet_deploy [onnx int8]"
    d = speed_verdicts([run] * 3, ["lmfnet_deploy"])["models"]["lmfnet_deploy"]
    assert d["total_ratios"] == [1.8] * 3 and d["trained"]
    assert d["paths"][0] == "lmfnet_deploy [openvino bf16] vs higherhrnet_w32 [openvino bf16]"


def test_add_mac_bounds_per_row_precision():
    from fusepose.benchmark.verdict import add_mac_bounds

    res = _perf_run(50.0, 90.0)
    add_mac_bounds(res, {"fp32": {"onnx_matmul": 100.0}, "bf16": {"torch_conv3x3": 460.0}})
    # 46.2 GMACs at 460 GMAC/s: 100.43 ms; the 70 ms row is 0.697x of it
    hhr = res["rows"][1]["mac_bound"]
    assert hhr["limit_ms"] == 100.43 and hhr["over_limit"] == 0.697
    assert res["rows"][0]["mac_bound"]["rate_gmac_s"] == 460.0
    assert res["dense_rates"]["fp32"] == {"onnx_matmul": 100.0}
