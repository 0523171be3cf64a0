"""OpenVINO IR files (issue 22): export round trip, every verb runs the ``.xml`` like an ONNX
file, INT8 through NNCF (what stays in float, 7- vs 8-bit weights per ISA), the accuracy-control
metric, and (slow) an INT8 L-MFNet IR that passes the guard on the trained checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from fusepose.cli.main import main
from fusepose.description import default_description_for
from fusepose.errors import CheckpointError, ConfigError
from fusepose.evaluation.compare import keypoint_change
from fusepose.export.metadata import read_description, read_metadata
from fusepose.export.package import export_model
from fusepose.export.runtime import OnnxRunner, is_quantized
from fusepose.geometry import InputGeometry
from fusepose.inference.guard import GUARD_AP_DROP
from fusepose.inference.predictor import Predictor
from fusepose.models.registry import create_model

ov = pytest.importorskip("openvino")
sys.path.insert(0, str(Path(__file__).parent))
from model_helpers import SMALL, randomize  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "fusepose" / "assets" / "000000000785.jpg"
HW = (128, 192)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A reduced random-weight L-MFNet exported once as ONNX and as an IR (letterbox 128x192)."""
    torch.manual_seed(0)
    model = create_model("lmfnet", num_keypoints=17, stem_width=16, stage1_planes=16,
                         stage1_blocks=1, widths=[16, 32, 64, 128], **SMALL)  # fmt: skip
    model = randomize(model).eval()
    desc = default_description_for(model.info, geometry=InputGeometry("letterbox", HW))
    folder = tmp_path_factory.mktemp("ir")
    export_model(model, folder / "tiny.onnx", HW, desc=desc)
    export_model(model, folder / "tiny.xml", HW, desc=desc)
    return {"model": model, "desc": desc, "onnx": folder / "tiny.onnx", "xml": folder / "tiny.xml"}


def test_ir_export_round_trip(tiny):
    """xml + bin written (no temporary left), the description read back equal, OpenVINO's
    outputs equal ONNX Runtime's within float rounding and not degenerate."""
    folder = tiny["xml"].parent
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.bin", "tiny.onnx", "tiny.xml"]
    assert read_description(tiny["xml"]) == read_description(tiny["onnx"]) == tiny["desc"]
    assert read_metadata(tiny["xml"])["model_name"] == "lmfnet"
    assert not is_quantized(tiny["xml"])
    x = Predictor(tiny["onnx"]).sample_input()
    ref = OnnxRunner(tiny["onnx"])(x)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(tiny["xml"])), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})  # fmt: skip
    got = [np.asarray(compiled(x)[o]) for o in compiled.outputs]
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape and float(r.std()) > 1e-3
        assert np.abs(r - g).max() <= 1e-4 * np.abs(r).max()


def test_ir_metadata_survives_without_openvino_reader(tiny):
    """The description is read from the XML alone: the reader sees the ``fusepose`` runtime-
    info section, and a file without it is a one-line error."""
    text = tiny["xml"].read_text()
    assert "<fusepose>" in text and "<description value=" in text
    bare = tiny["xml"].with_name("bare.xml")
    bare.write_text(text.replace("<fusepose>", "<other>").replace("</fusepose>", "</other>"))
    bare.with_suffix(".bin").write_bytes(tiny["xml"].with_suffix(".bin").read_bytes())
    with pytest.raises(CheckpointError, match="no fusepose metadata"):
        read_description(bare)
    bare.with_suffix(".bin").unlink()
    with pytest.raises(CheckpointError, match="bare.bin are missing"):
        read_description(bare)


def test_predictor_runs_the_ir_like_the_onnx_file(tiny):
    """Same people through the Predictor from the IR (openvino backend by suffix) and from the
    ONNX file (ONNX Runtime)."""
    a, b = Predictor(tiny["onnx"], num_threads=1), Predictor(tiny["xml"], num_threads=1)
    assert (b.backend, b.precision, a.backend) == ("openvino", "fp32", "onnx")
    assert a.description == b.description
    ra, rb = a(str(SAMPLE), score_thr=0), b(str(SAMPLE), score_thr=0)
    change = keypoint_change([(ra, rb)])
    # random weights: a few near-tied heatmap peaks may flip between runtimes, nothing more
    assert change["joints"] >= 10 and change["median_px"] == 0 and change["p90_px"] <= 0.5


def test_ir_on_another_backend_is_a_one_line_error(tiny, capsys):
    with pytest.raises(ConfigError, match="runs on backend 'openvino' only"):
        Predictor(tiny["xml"], backend="onnx")
    rc = main(["predict", str(tiny["xml"]), "--backend", "onnx", "--source", str(SAMPLE)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "OpenVINO IR runs on --backend openvino only" in err[0]


def test_eval_and_inspect_take_the_ir(tiny, coco_dir, tmp_path, capsys):
    """``fusepose eval --onnx FILE.xml`` scores the same results as the ONNX file (keypoints
    equal within 0.5 px, same number of people); ``fusepose inspect`` names the format."""
    ann = coco_dir / "test_coco.json"
    saved = {}
    for fmt in ("onnx", "xml"):
        out = tmp_path / f"{fmt}.json"
        rc = main(["eval", "--onnx", str(tiny[fmt]), "--data", str(ann), "--images",
                   str(coco_dir), "--save-results", str(out)])  # fmt: skip
        assert rc == 0
        saved[fmt] = json.loads(out.read_text())
    assert len(saved["onnx"]) == len(saved["xml"]) > 0
    moved = []
    for a, b in zip(saved["onnx"], saved["xml"], strict=True):
        assert a["image_id"] == b["image_id"]
        ka, kb = np.reshape(a["keypoints"], (-1, 3)), np.reshape(b["keypoints"], (-1, 3))
        moved += list(np.abs(ka[:, :2] - kb[:, :2]).max(1))
    # random weights: a few near-tied heatmap peaks may flip between runtimes, nothing more
    assert np.median(moved) == 0 and np.mean(np.asarray(moved) <= 0.5) >= 0.95
    capsys.readouterr()
    assert main(["inspect", str(tiny["xml"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "openvino" and info["model"] == "lmfnet"
    assert info["input_size"] == list(HW) and "int8" not in info


def test_export_cli_writes_the_ir_and_checks_it(tmp_path, capsys):
    out = tmp_path / "m.xml"
    rc = main(["export", "sfm_coco", "--random-weights", "--format", "openvino", "--output",
               str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file() and out.with_suffix(".bin").is_file()
    assert "openvino vs pytorch" in text and "(ok," in text
    assert read_description(out).model == "sfm_coco"
    for argv, msg in (
        (["--format", "openvino", "--output", str(tmp_path / "m.onnx")], "writes FILE.xml"),
        (["--output", str(tmp_path / "m2.xml")], "needs --format openvino"),
        (["--int8", "--output", str(tmp_path / "m3.onnx")], "--int8: use --format openvino"),
    ):  # fmt: skip
        rc = main(["export", "sfm_coco", "--random-weights", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and msg in err[0], (argv, err)


# ------------------------------------------------------------------------------ NNCF


class _Convs(nn.Module):
    """Three convolutions, a depthwise one in the middle: a graph NNCF quantizes in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.c = nn.Conv2d(16, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


@pytest.fixture(scope="module")
def convs():
    torch.manual_seed(0)
    net = _Convs().eval()
    with torch.no_grad():  # weights with outliers, so that 7 and 8 bits differ
        net.a.weight.mul_(torch.linspace(0.2, 3.0, 16).view(-1, 1, 1, 1))
    x = [np.random.default_rng(i).standard_normal((1, 3, 32, 32)).astype(np.float32)
         for i in range(4)]  # fmt: skip
    model = ov.convert_model(net, example_input=torch.from_numpy(x[0]))
    model.outputs[0].get_tensor().set_names({"out"})  # NNCF keys the outputs it ranks by name
    return model, x


def _weights_int8(model) -> list[np.ndarray]:
    return [
        op.get_data()
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "i8"
    ]


def test_nncf_weights_are_7_bit_without_vnni_and_8_bit_with(convs):
    """The overflow fix follows ``fusepose.cpu.has_vnni``: without VNNI the INT8 weights of
    dense convolutions fit 7 bits (|w| <= 64), with VNNI the full 8-bit range is used."""
    from fusepose.export.nncf_int8 import default_overflow_fix, quantize_openvino

    model, x = convs
    widest = {}
    for vnni in (True, False):
        with mock.patch("fusepose.export.nncf_int8.has_vnni", return_value=vnni):
            assert default_overflow_fix() == ("disable" if vnni else "enable")
            q, report = quantize_openvino(model.clone(), x)
        weights = _weights_int8(q)
        assert weights and report.settings["overflow_fix"] == ("disable" if vnni else "enable")
        # dense convolutions (OIHW; depthwise ones are OGIHW and keep 8 bits: NNCF's choice)
        widest[vnni] = max(int(np.abs(w.astype(np.int32)).max()) for w in weights if w.ndim == 4)
    assert widest[False] <= 64 < widest[True]


def test_nncf_records_what_stays_in_float(convs):
    """An ignored operator type stays in float and the report names it; accuracy control with
    a metric that tolerates no drop reverts operations and the report lists them."""
    from fusepose.export.nncf_int8 import Int8Settings, float_operations, quantize_openvino

    model, x = convs
    q, report = quantize_openvino(model.clone(), x,
                                  settings=Int8Settings(ignored_types=("GroupConvolution",)))  # fmt: skip
    assert report.mode == "ptq" and report.compute_ops == 3
    groups = [op.get_friendly_name() for op in q.get_ordered_ops()
              if op.get_type_name() == "GroupConvolution"]  # fmt: skip
    assert report.float_ops == groups and len(groups) == 1
    assert float_operations(model) == (3, [op.get_friendly_name() for op in model.get_ordered_ops()
                                           if op.get_type_name() in ("Convolution", "GroupConvolution")])  # fmt: skip

    core = ov.Core()
    ref = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    refs = [np.asarray(ref(v)[0]) for v in x]

    def metric(compiled, n: int) -> float:  # 1 - normalised error of the outputs
        err = [float(((np.asarray(compiled(v)[0]) - r) ** 2).mean() / (r**2).mean())
               for v, r in zip(x[:n], refs[:n], strict=True)]  # fmt: skip
        return 1.0 - float(np.mean(err))

    q2, ac = quantize_openvino(model.clone(), x, metric=metric, validation=x,
                               settings=Int8Settings(max_drop=1e-7))  # fmt: skip
    assert ac.mode == "accuracy_control" and ac.metric_fp32 == pytest.approx(1.0)
    assert ac.float_ops, "a zero-drop target must revert something"
    assert ac.float_ops == float_operations(q2)[1]
    assert ac.metric_int8 >= ac.metric_fp32 - 1e-7 or len(ac.float_ops) == 3


def test_guarded_ap_is_the_ap_only_while_the_guard_passes():
    from fusepose.inference.int8_export import guarded_ap

    ok = {"joints": 100, "median_px": 0.5, "p90_px": 2.0}
    assert guarded_ap(0.9, ok) == 0.9
    for bad in ({**ok, "median_px": 0.6}, {**ok, "p90_px": 2.5}, {"joints": 0}):
        assert guarded_ap(0.9, bad) < 0.9 - GUARD_AP_DROP
    worse = guarded_ap(0.9, {**ok, "p90_px": 200.0})
    assert worse < guarded_ap(0.9, {**ok, "p90_px": 3.0})


# ------------------------------------------------------------------------------ the proof


@pytest.mark.slow
def test_int8_lmfnet_ir_passes_the_guard_on_the_trained_checkpoint(overfit_lmfnet, coco_dir,
                                                                   tmp_path, capsys):  # fmt: skip
    """``fusepose export lmfnet --weights CKPT --format openvino --int8``: NNCF's accuracy
    control keeps in float what the guard needs, some convolutions run in INT8, and
    ``fusepose eval --onnx FILE.xml`` reproduces the checkpoint's AP within 0.01."""
    from fusepose.modelfile import describe

    ckpt, ann = overfit_lmfnet["ckpt"], coco_dir / "test_coco.json"
    out = tmp_path / "lmfnet_int8.xml"
    rc = main(["export", "lmfnet", "--weights", str(ckpt), "--format", "openvino", "--int8",
               "--output", str(out), "--data", str(ann), "--images", str(coco_dir),
               "--threads", "2"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert is_quantized(out) and "guard passed" in text
    info = read_metadata(out)["int8"]
    assert info["mode"] == "accuracy_control" and info["guard"]["passed"]
    assert 0 < info["compute_ops"] - len(info["float_ops"])
    assert all(f"kept in float: {name}" in text for name in info["float_ops"])
    report = tmp_path / "eval.json"
    assert main(["eval", "--onnx", str(out), "--data", str(ann), "--images", str(coco_dir),
                 "--report", str(report)]) == 0  # fmt: skip
    ap = json.loads(report.read_text())["AP"]
    assert ap >= describe(ckpt).val_metric - GUARD_AP_DROP
