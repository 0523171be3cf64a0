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
