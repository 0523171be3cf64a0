"""Inference paths (issue 16): precision flags, OpenVINO, ``--backend auto`` and its accuracy
guard, the export check on random weights, perf peers. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fusepose.cli.main import main
from fusepose.cpu import cpu_flags, has_bf16, isa, machine_id
from fusepose.errors import ConfigError
from fusepose.evaluation.compare import keypoint_change
from fusepose.export.package import export_model
from fusepose.export.runtime import OnnxRunner
from fusepose.inference.auto import choose_path
from fusepose.inference.backends import InferencePath, make_network
from fusepose.inference.guard import GUARD_MEDIAN_PX, guard_verdict
from fusepose.inference.predictor import Predictor
from fusepose.structures import PoseInstance, PoseResult

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "fusepose" / "assets" / "000000000785.jpg"


def _result(kpts: np.ndarray) -> PoseResult:
    return PoseResult([PoseInstance(k, np.ones(len(k)), 1.0) for k in kpts], (100, 100))


# ------------------------------------------------------------------------------ the CPU


def test_isa_flags_come_from_cpuinfo():
    flags = cpu_flags()
    assert set(isa()) <= flags
    assert has_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags
                          or bool(torch.cpu._is_avx512_bf16_supported()))  # fmt: skip
    assert machine_id() == machine_id() and len(machine_id()) == 12


AVX2_FLAGS = "avx2 fma"
ZEN4_FLAGS = "avx2 fma avx512f avx512bw avx512_vnni avx512_bf16"


@pytest.mark.parametrize("flags, kind, bf16, vnni", [
    (AVX2_FLAGS, "AVX2", False, False),
    (AVX2_FLAGS + " avx_vnni", "AVX2 + VNNI", False, True),
    ("avx2 fma avx512f avx512bw avx512_vnni", "AVX-512 + VNNI", False, True),
    (ZEN4_FLAGS, "AVX-512 + BF16 + VNNI", True, True),
    (ZEN4_FLAGS + " amx_bf16 amx_int8", "AVX-512 + BF16 + VNNI", True, True),
], ids=["avx2", "avx2-vnni", "avx512-vnni", "avx512-bf16-vnni", "amx"])  # fmt: skip
def test_each_cpu_kind_is_read_from_its_flags(monkeypatch, flags, kind, bf16, vnni):
    """The decisions every ISA branch takes, from each kind's /proc/cpuinfo flags, on any
    machine: the kind's name, native bf16 (else the one-line reason), VNNI, and INT8 weights
    of 7 bits without VNNI (AVX2's saturating ``vpmaddubsw``)."""
    import fusepose.cpu as cpu
    from fusepose.export.quantize import default_reduce_range

    monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("Some CPU", frozenset(flags.split())))
    # PyTorch's own probe reads this machine: answer as the kind would
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: "amx_bf16" in flags)
    assert cpu.isa_kind() == kind
    assert (cpu.has_bf16(), cpu.has_vnni()) == (bf16, vnni)
    assert (cpu.unavailable_bf16() is None) is bf16
    assert default_reduce_range() is not vnni
    assert cpu.isa() == [f for f in cpu.ISA_FLAGS if f in flags.split()]


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-cpu", "no-bf16-cpu"])
def test_bf16_says_unavailable_or_runs(capsys, force_isa, bf16):
    """Both branches on any CPU (``fusepose.cpu.has_bf16`` forced): on a CPU without bf16 the
    flag is a one-line error (exit 2), never a crash; on one with it, the prediction runs
    (where the CPU really lacks bf16, PyTorch emulates it: its numerics, not its speed)."""
    force_isa(bf16=bf16)
    rc = main(["predict", "test_lmfnet", "--random-weights", "--precision", "bf16",
               "--source", str(SAMPLE)])  # fmt: skip
    err = capsys.readouterr().err
    if bf16:
        assert rc == 0, err
    else:
        assert rc == 2 and "bf16 is not available on this CPU" in err
        assert len([ln for ln in err.splitlines() if "error" in ln]) == 1


@pytest.mark.parametrize("vnni", [True, False], ids=["vnni-cpu", "avx2-cpu"])
def test_int8_weights_keep_7_bits_without_vnni(force_isa, vnni, tiny_sfm_file, tmp_path):
    """The INT8 weight range follows the CPU (``fusepose.cpu.has_vnni`` forced, both branches
    on any CPU): 7 bits ([-64, 64]) where ONNX Runtime's u8 x s8 kernel (AVX2
    ``vpmaddubsw``) saturates 16-bit pair sums, the full 8 bits ([-127, 127]) with VNNI."""
    import onnx
    from onnx import numpy_helper

    force_isa(vnni=vnni)
    path, pred = tiny_sfm_file
    net = make_network(InferencePath("onnx", "int8"), onnx_file=path,
                       desc=pred.description, pipeline=pred.pipeline, cache_dir=tmp_path)  # fmt: skip
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(net.path)).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]  # fmt: skip
    assert len(weights) >= 10
    top = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert top == (127 if vnni else 64)


def test_paths_a_backend_cannot_run_are_one_line_errors():
    for backend, prec, text in (("torch", "int8", "no PyTorch path"),
                                ("onnx", "bf16", "no bf16 kernels")):  # fmt: skip
        with pytest.raises(ConfigError, match=text):
            make_network(InferencePath(backend, prec), module=None)


@pytest.mark.slow
def test_every_path_keeps_the_trained_checkpoints_ap(overfit_lmfnet, coco_dir, tmp_path,
                                                     record_property):
    """The guard on a trained model, on every CPU kind: COCO AP of the overfit L-MFNet in
    PyTorch and ONNX Runtime fp32 (equal within 0.01), OpenVINO fp32 (passes its guard: the
    same fp32 math), and the lossy paths, INT8 (ONNX Runtime, OpenVINO) and bf16 (emulated
    where the CPU lacks it). A lossy path need not pass: whether it keeps the AP depends on
    the CPU (INT8 weights are 7-bit on AVX2, 8-bit with VNNI, where an AMD EPYC gave AP 0.943
    against fp32 0.984), so the test states what holds everywhere: the guard's verdict is
    exactly its thresholds applied to the measured change and AP (an inaccurate path fails,
    and ``auto`` never chooses a failed path: test_auto_never_chooses_a_path_that_fails_its_
    guard), and no path is broken (AP within 0.1 of fp32)."""
    pytest.importorskip("openvino")
    from fusepose.benchmark.int8_study import int8_checkpoint_ap
    from fusepose.inference.guard import GUARD_AP_DROP, GUARD_P90_PX

    res = int8_checkpoint_ap(overfit_lmfnet["ckpt"], coco_dir / "test_coco.json", tmp_path,
                             threads=1)  # fmt: skip
    record_property("paths", json.dumps(res["paths"]))
    fp32 = res["AP_onnx_fp32"]
    assert fp32 >= 0.8 and abs(res["AP_torch_fp32"] - fp32) <= 0.01  # learned (test_overfit)
    assert res["paths"]["openvino_fp32"]["passed"], res["paths"]["openvino_fp32"]
    for key in ("onnx_int8", "openvino_fp32", "openvino_int8", "torch_bf16"):
        g = res["paths"][key]
        accurate = (g["AP"] >= fp32 - GUARD_AP_DROP and g["median_px"] <= GUARD_MEDIAN_PX
                    and g["p90_px"] <= GUARD_P90_PX)  # fmt: skip
        assert g["passed"] is accurate, (key, g)
        assert g["AP"] >= fp32 - 0.1, (key, g)


# ------------------------------------------------------------------------------ OpenVINO


@pytest.fixture(scope="module")
def tiny_sfm_file(tmp_path_factory) -> tuple[Path, Predictor]:
    """The tiny top-down test model with random inference weights, exported (batch dynamic)."""
    pred = Predictor("test_sfm", allow_random_weights=True, optimize=False)
    path = tmp_path_factory.mktemp("ov") / "sfm.onnx"
    export_model(pred.model, path, (64, 48), desc=pred.description, dynamic="batch")
    return path, pred


@pytest.fixture(scope="module")
def sfm_file(tiny_sfm_file) -> tuple[Path, Predictor]:
    pytest.importorskip("openvino")
    return tiny_sfm_file


def test_openvino_runs_the_same_file_as_onnxruntime(sfm_file):
    """Same ONNX file, same metadata and pipeline: outputs allclose, decoded joints within
    0.5 px, through the Predictor."""
    path, _ = sfm_file
    ort_pred = Predictor(path, num_threads=1)
    ov_pred = Predictor(path, backend="openvino", num_threads=1)
    assert ov_pred.backend == "openvino" and ov_pred.precision == "fp32"
    assert ov_pred.description == ort_pred.description
    x = ort_pred.sample_input()
    a, b = ort_pred.runner(np.repeat(x, 3, 0)), ov_pred.runner(np.repeat(x, 3, 0))
    assert a[0].shape == b[0].shape == (3, 17, 16, 12)
    assert np.abs(a[0] - b[0]).max() <= 1e-3 * np.abs(a[0]).max()
    boxes = np.array([[250.0, 40.0, 200.0, 380.0]])
    ra = ort_pred(str(SAMPLE), boxes=boxes, score_thr=0)
    rb = ov_pred(str(SAMPLE), boxes=boxes, score_thr=0)
    change = keypoint_change([(ra, rb)])
    assert change["joints"] >= 10 and change["max_px"] <= 0.5


def test_int8_on_both_runtimes_from_one_quantized_file(sfm_file, tmp_path):
    path, pred = sfm_file
    net = make_network(InferencePath("onnx", "int8"), onnx_file=path, desc=pred.description,
                       pipeline=pred.pipeline, cache_dir=tmp_path)  # fmt: skip
    assert isinstance(net, OnnxRunner) and net.precision == "int8"
    ov = make_network(InferencePath("openvino", "int8"), onnx_file=path, desc=pred.description,
                      pipeline=pred.pipeline, cache_dir=tmp_path)  # fmt: skip
    assert ov.precision == "int8" and ov.path == net.path  # the cached file, made once
    assert len(list((tmp_path / "int8").glob("*.onnx"))) == 1


# ------------------------------------------------------------------------------ the guard


def test_keypoint_change_and_verdict_hand_computed():
    rng = np.random.default_rng(0)
    ref = rng.uniform(10, 90, (2, 10, 2))
    moved = ref[::-1].copy()  # people in the other order: matching must pair them back
    moved[0, :2] += [3.0, 4.0]  # two of the 20 joints move 5 px
    change = keypoint_change([(_result(ref), _result(moved))])
    # sorted distances: 18 zeros then 5, 5; 90th percentile at index 0.9 * 19 = 17.1
    assert change["joints"] == 20 and change["median_px"] == 0.0
    assert change["p90_px"] == pytest.approx(0.5) and change["max_px"] == pytest.approx(5.0)
    assert change["mean_px"] == pytest.approx(0.5) and change["share_over_10px"] == 0.0
    assert guard_verdict(change)[0] is True
    moved[0, 2:4] += [3.0, 4.0]  # four joints: index 17.1 falls between two 5s
    change = keypoint_change([(_result(ref), _result(moved))])
    assert change["p90_px"] == pytest.approx(5.0)
    assert guard_verdict(change) == (False, "90th percentile keypoint change 5.00 px > 2.0")
    change = keypoint_change([(_result(ref), _result(ref + [1.0, 0.0]))])
    assert change["median_px"] == pytest.approx(1.0) and change["median_px"] > GUARD_MEDIAN_PX
    assert guard_verdict(change) == (False, "median keypoint change 1.00 px > 0.5")
    same = keypoint_change([(_result(ref), _result(ref))])
    assert guard_verdict(same)[0] is True
    assert guard_verdict(same, ap=0.95, ap_ref=0.97)[0] is False  # AP 0.02 below fp32
    assert guard_verdict(same, ap=0.965, ap_ref=0.97)[0] is True
    nobody = keypoint_change([(_result(ref), PoseResult([], (100, 100)))])
    assert nobody["joints"] == 0 and guard_verdict(nobody)[0] is False


class _Broken:
    """A deliberately broken path: the fastest of all (it replays the reference's outputs of
    the first call), but its heatmaps are shifted by 4 cells (16 px at stride 4)."""

    precision = "int8"

    def __init__(self, reference):
        self.reference, self.cache = reference, {}

    def __call__(self, x):
        key = x.tobytes()[:4096] + bytes(str(x.shape), "ascii")
        if key not in self.cache:
            self.cache[key] = [np.roll(o, 4, axis=-1) for o in self.reference(x)]
        return self.cache[key]


def test_auto_never_chooses_a_path_that_fails_its_guard(sfm_file, tmp_path):
    path, pred = sfm_file
    module = pred.model
    calls: list[str] = []

    def build(p, **kw):
        calls.append(p.label)
        if p.label == "onnx int8":
            return _Broken(OnnxRunner(path, num_threads=1))
        return make_network(p, **kw)

    paths = [InferencePath("torch"), InferencePath("onnx"), InferencePath("onnx", "int8")]
    kw = dict(module=module, onnx_file=path, model_file=path, desc=pred.description,
              pipeline=pred.pipeline, threads=1, candidates=paths, cache_dir=tmp_path,
              build=build, runs=3)  # fmt: skip
    choice = choose_path(**kw)
    rows = {c["label"]: c for c in choice.report["candidates"]}
    assert rows["onnx int8"]["passed"] is False
    assert rows["onnx int8"]["guard"]["median_px"] > GUARD_MEDIAN_PX
    assert rows["onnx int8"]["network_ms"] < min(rows["torch"]["network_ms"],
                                                 rows["onnx"]["network_ms"])  # fmt: skip
    assert rows["onnx"]["passed"] is True and rows["torch"]["reference"] is True
    assert choice.path.label in ("torch", "onnx") and not choice.cached
    assert "auto chose" in choice.describe()
    # the second start reads the cache of this machine and model, builds the chosen path only
    calls.clear()
    again = choose_path(**kw)
    assert again.cached and again.path == choice.path and calls == [choice.path.label]
    assert len(list(tmp_path.glob(f"{machine_id()}_*.json"))) == 1


# ------------------------------------------------------------------------------ export check


def test_export_random_weights_outputs_are_neither_zero_nor_constant(tmp_path, capsys):
    out = tmp_path / "sfm.onnx"
    assert main(["export", "sfm_coco", "--random-weights", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "(ok," in text
    runner = OnnxRunner(out)
    y = runner(Predictor("sfm_coco", allow_random_weights=True).sample_input())[0]
    assert np.abs(y).max() > 0.1 and y.std() > 1e-3 * np.abs(y).max()


def test_random_lmfnet_weights_are_not_degenerate():
    """He init + calibrated BN: L-MFNet's outputs vary (the official N(0, 0.001) init gives
    constant outputs, next test)."""
    pred = Predictor("lmfnet_lite", allow_random_weights=True, input_size=256)
    out = pred.network(pred.sample_input())
    for y in out:
        assert np.abs(y).max() > 0.1 and y.std() > 1e-3 * np.abs(y).max()


def test_export_check_fails_on_constant_outputs(tmp_path, capsys):
    """The official N(0, 0.001) init makes a deep pose net's outputs constant (the full
    L-MFNet's exactly 0.0, the tiny test L-MFNet's ~1e-18 whatever the input): the export
    check refuses them."""
    from fusepose.registry import create_model

    model = create_model("test_lmfnet")  # the official init
    sd = tmp_path / "official_init.pth"
    torch.save(model.state_dict(), sd)
    rc = main(["export", "test_lmfnet", "--weights", str(sd), "-o", str(tmp_path / "c.onnx")])
    assert rc == 1
    assert "FAIL: the outputs are constant" in capsys.readouterr().out


# ------------------------------------------------------------------------------ perf peers


def test_peer_network_is_timed_beside_ours(tmp_path):
    from onnx import TensorProto, helper, numpy_helper, save

    from fusepose.benchmark.latency import benchmark
    from fusepose.experiments.perf_table import PeerNetwork

    w = numpy_helper.from_array(np.ones((17, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["y"], pads=[1, 1, 1, 1], strides=[4, 4])],
        "peer", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w],
    )  # fmt: skip
    file = tmp_path / "peer.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), file)
    peer = PeerNetwork(file, threads=1, input_hw=(64, 96))
    assert peer.input_shape == [1, 3, 64, 96]
    ours = Predictor("test_sfm", allow_random_weights=True, num_threads=1)
    img = np.zeros((120, 160, 3), np.uint8)
    res = benchmark([("ours", ours), ("peer", peer)], img, boxes=np.array([[10.0, 10, 50, 90]]),
                    runs=2, warmup=0)  # fmt: skip
    assert [len(r.runs) for r in res] == [2, 2]
    s = res[1].summary()
    assert s["network_ms"] > 0 and s["total_ms"] == s["network_ms"] and s["decode_ms"] == 0
    assert main(["perf", "--peer", "no-equals-sign"]) == 2
