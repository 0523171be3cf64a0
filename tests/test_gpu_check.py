"""The GPU self-check (``scripts/gpu_check.sh``): a clean skip without CUDA, and its checks run
end to end on CPU with reduced models (the same code path the GPU run takes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"),
                PYTHON=sys.executable, **extra)  # fmt: skip


def test_gpu_check_script_skips_cleanly_without_a_gpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
        env=_env(CUDA_VISIBLE_DEVICES="", FUSEPOSE_GPU_CHECK_OUT=str(out)), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["skipped"] is True and "no CUDA device" in report["reason"]
    assert "skipped" in proc.stderr
    assert json.loads(out.read_text()) == report


@pytest.mark.slow
def test_gpu_check_runs_every_check_on_cpu(tmp_path):
    """``--device cpu --tiny``: training (AMP and channels-last requested), device-vs-CPU
    outputs, ONNX export + parity, the Predictor, and a one-process DDP step (Gloo)."""
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fusepose.benchmark.gpu_check", "--device", "cpu", "--tiny",
         "--steps", "2", "--models", "lmfnet,sfm_coco", "--images", "6", "--workers", "0",
         "--batch", "2", "--size", "128", "--out", str(out)],
        capture_output=True, text=True, env=_env(), timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["device"] == "cpu"
    for name in ("lmfnet", "sfm_coco"):
        m = report["models"][name]
        assert m["ok"], m
        assert m["train_images_per_s"] > 0 and m["channels_last"] is True
        assert m["amp"] is False  # AMP only takes effect on CUDA
        assert m["device_vs_cpu_max_rel"] == 0.0  # the same device: identical outputs
        assert m["onnx_max_rel"] < 1e-3
        assert m["predict_people"]["device"] == m["predict_people"]["cpu"]
        assert m.get("predict_max_px", 0.0) == 0.0
    assert report["ddp"] == {**report["ddp"], "ddp": True, "backend": "gloo", "ok": True}
