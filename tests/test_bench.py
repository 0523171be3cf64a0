"""Latency benchmark: interleaved runs, stage split, --json keys and speedup."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusepose.benchmark.latency import STAGES, benchmark, default_image, gt_people
from fusepose.cli.main import main
from fusepose.inference.predictor import Predictor


class CountingNet:
    """Stand-in network recording the order of calls (to check interleaving)."""

    def __init__(self, label: str, log: list[str]) -> None:
        self.label, self.log = label, log

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.log.append(self.label)
        b, _, h, w = x.shape
        return [np.zeros((b, 17, h // 4, w // 4), np.float32)]


def test_benchmark_interleaves_and_splits_stages(coco_dir):
    log: list[str] = []
    preds = []
    for label in ("a", "b"):
        p = Predictor("sfm_coco", allow_random_weights=True, score_thr=0)
        p._net = CountingNet(label, log)
        preds.append((label, p))
    image = np.zeros((120, 160, 3), np.uint8)
    boxes = np.array([[10.0, 10.0, 50.0, 100.0]])
    res = benchmark(preds, image, boxes=boxes, runs=3, warmup=1)
    assert log == ["a", "b"] * 4  # warm-up + runs, alternating run by run
    for r in res:
        assert len(r.runs) == 3 and r.people == 1
        for run in r.runs:
            parts = run["preprocess_ms"] + run["network_ms"] + run["decode_ms"]
            assert run["total_ms"] == pytest.approx(parts)
            assert min(run[s] for s in STAGES) >= 0
        s = r.summary()
        assert s["total_ms"] == pytest.approx(np.median([x["total_ms"] for x in r.runs]), abs=1e-3)
        assert s["total_min_ms"] <= s["total_ms"]


def test_default_image_has_ground_truth_people():
    path = default_image()
    assert path is not None and path.name == "000000196141.jpg"
    kp, boxes = gt_people(path)
    assert kp.shape == (4, 17, 3) and boxes.shape == (4, 4)  # 4 labelled people in test_coco


def test_bench_cli_json_keys_and_speedup(tmp_path):
    out = tmp_path / "bench.json"
    rc = main(["bench", "sfm_coco", "--compare", "sfm_coco_noatt", "--runs", "2", "--warmup", "0",
               "--threads", "1", "--input", "128", "96", "--json", str(out)])  # fmt: skip
    assert rc == 0
    data = json.loads(out.read_text())
    models = data["models"]
    assert list(models) == ["sfm_coco", "sfm_coco_noatt"]
    for m in models.values():
        assert set(STAGES) <= set(m) and m["runs"] == 2 and m["people"] == 4
    ratio = models["sfm_coco_noatt"]["total_ms"] / models["sfm_coco"]["total_ms"]
    assert data["speedup"] == pytest.approx(ratio, rel=1e-3)


def test_bench_gt_outputs_gives_bottom_up_decode_real_people(tmp_path):
    out = tmp_path / "bench.json"
    rc = main(["bench", "test_lmfnet", "--runs", "1", "--warmup", "0", "--input", "256",
               "--gt-outputs", "--json", str(out)])  # fmt: skip
    assert rc == 0
    m = json.loads(out.read_text())["models"]["test_lmfnet"]
    assert m["people"] == 4 and m["decode_ms"] > 0


def test_compiled_predictor_gets_an_untimed_first_call():
    """A compiled predictor compiles on its first call: benchmark() keeps that call out of the
    timed runs even when asked for no warmup."""

    class Fake:
        kind = "bottom_up"

        def __init__(self, compiled):
            self.compiled, self.calls, self.timings = compiled, 0, {}

        def predict_frame(self, image, **kw):
            self.calls += 1
            self.timings = {s: float(self.calls) for s in STAGES}
            return []

    img = np.zeros((8, 8, 3), np.uint8)
    plain, compiled = Fake(False), Fake(True)
    assert len(benchmark([("p", plain)], img, runs=2, warmup=0)[0].runs) == 2
    assert plain.calls == 2
    res = benchmark([("p", Fake(False)), ("c", compiled)], img, runs=2, warmup=0)
    assert compiled.calls == 3 and all(len(r.runs) == 2 for r in res)
    assert res[1].runs[0][STAGES[0]] == 2.0  # the first (compiling) call is not recorded


def test_bench_onnx_backend_exports_what_it_needs(tmp_path):
    """``--backend onnx`` without ``--onnx``: the model (and the --compare model) are exported
    now, at the first model's input, and both rows run on ONNX Runtime."""
    out = tmp_path / "bench.json"
    rc = main(["bench", "test_sfm", "--backend", "onnx", "--compare", "sfm_coco_noatt",
               "--runs", "1", "--warmup", "0", "--threads", "1", "--input", "128", "96",
               "--workdir", str(tmp_path / "cache"), "--json", str(out)])  # fmt: skip
    assert rc == 0
    models = json.loads(out.read_text())["models"]
    assert list(models) == ["test_sfm (onnx)", "sfm_coco_noatt (onnx)"]
    assert all(m["backend"] == "onnx" and m["input_size"] == [128, 96] for m in models.values())
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 2
