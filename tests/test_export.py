"""ONNX export: metadata round trip, OnnxRunner, parity with PyTorch, CLI via subprocess."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import fusepose
from fusepose.codecs import AssociativeEmbeddingCodec, TopDownHeatmapCodec
from fusepose.errors import CheckpointError
from fusepose.export.metadata import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_metadata,
    output_spec,
    parse_metadata,
    read_metadata,
    write_metadata,
)
from fusepose.export.package import compare_onnx, export_model
from fusepose.export.runtime import OnnxRunner
from fusepose.skeletons import COCO17


@pytest.fixture(scope="module")
def sfm_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = fusepose.create_model("sfm_coco").eval()
    path = tmp_path_factory.mktemp("onnx") / "sfm.onnx"
    export_model(model, path, (256, 192))
    return model, path


def test_metadata_round_trips_through_an_onnx_file(tmp_path, sfm_onnx):
    _, src = sfm_onnx
    path = tmp_path / "copy.onnx"
    path.write_bytes(src.read_bytes())
    codec = {
        "type": "AssociativeEmbeddingCodec",
        "kwargs": {"num_keypoints": 17, "input_size": 512, "flip_index": COCO17.flip_index},
    }
    props = build_metadata(
        model_name="lmfnet", kind="bottom_up", num_keypoints=17, input_name="input",
        input_shape=["B", 3, "H", "W"], outputs=output_spec("bottom_up", 17, ("H", "W")),
        codec=codec, skeleton_name="coco", keypoint_names=list(COCO17.keypoints),
        flip_index=COCO17.flip_index, input_size=[512, 512],
    )  # fmt: skip
    assert all(isinstance(v, str) for v in props.values())
    write_metadata(path, props)
    meta = read_metadata(path)
    assert meta["model_name"] == "lmfnet" and meta["kind"] == "bottom_up"
    assert meta["num_keypoints"] == 17
    assert meta["codec"] == codec
    assert meta["flip_index"] == COCO17.flip_index
    assert meta["keypoint_names"] == list(COCO17.keypoints)
    assert [o["name"] for o in meta["outputs"]] == ["out_q", "out_h"]
    assert meta["outputs"][0]["shape"] == ["B", 34, "H/4", "W/4"]
    assert meta["input"]["mean"] == pytest.approx(IMAGENET_MEAN)
    assert meta["input"]["std"] == pytest.approx(IMAGENET_STD)
    # the raw protobuf holds the same strings (readable without fusepose)
    raw = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert raw == props


def test_exported_file_describes_itself_and_runs(sfm_onnx):
    model, path = sfm_onnx
    runner = OnnxRunner(path, num_threads=1)
    meta = runner.metadata
    assert runner.kind == "top_down" and runner.model_name == "sfm_coco"
    assert runner.num_keypoints == 17 and runner.fixed_hw == (256, 192)
    assert meta["outputs"][0]["shape"] == ["B", 17, 64, 48]
    assert runner.output_names == ["heatmaps"]
    codec = runner.build_codec()
    assert isinstance(codec, TopDownHeatmapCodec)
    assert codec.input_size == (256, 192) and codec.heatmap_size == (64, 48)
    x = np.random.default_rng(0).standard_normal((3, 3, 256, 192)).astype(np.float32)
    (out,) = runner(x)  # batch 3 on a batch-1 export runs in chunks
    with torch.inference_mode():
        ref = model(torch.from_numpy(x))[-1].numpy()
    assert out.shape == ref.shape == (3, 17, 64, 48)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    with pytest.raises(CheckpointError, match="fixed input size"):
        runner(np.zeros((1, 3, 128, 96), np.float32))


def test_dynamic_bottom_up_export_parity(tmp_path):
    torch.manual_seed(0)
    model = fusepose.create_model("lmfnet_lite", modules=(1, 1, 1), blocks_per_branch=1).eval()
    with torch.no_grad():  # the final layers start at zero; give them values to compare
        for p in model.parameters():
            if p.abs().max() == 0:
                p.normal_(0.0, 0.1)
    path = tmp_path / "bu.onnx"
    export_model(model, path, (128, 128), dynamic=True)
    runner = OnnxRunner(path)
    assert runner.fixed_hw is None and runner.output_names == ["out_q", "out_h"]
    assert isinstance(runner.build_codec(), AssociativeEmbeddingCodec)
    # another size than the traced one: the dynamic axes really are dynamic
    q, h = runner(np.zeros((2, 3, 192, 128), np.float32))
    assert q.shape == (2, 34, 48, 32) and h.shape == (2, 17, 96, 64)
    assert compare_onnx(model, path, (192, 128)) < 1e-4


def test_file_without_metadata_is_rejected(tmp_path, sfm_onnx):
    _, src = sfm_onnx
    m = onnx.load(str(src))
    del m.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(m, str(bare))
    with pytest.raises(CheckpointError, match="no fusepose metadata"):
        read_metadata(bare)
    with pytest.raises(CheckpointError, match="not found"):
        read_metadata(tmp_path / "missing.onnx")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        parse_metadata({"fusepose.codec": "{oops"}, "x.onnx")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fusepose.cli.main", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_cli_export_checks_against_pytorch(tmp_path):
    out = tmp_path / "sfm.onnx"
    proc = _cli("export", "sfm_coco", "--random-weights", "--output", str(out), "--input", "128",
                "96", "--threads", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "max abs diff" in proc.stdout and "ok" in proc.stdout
    diff = float(proc.stdout.split("max abs diff ")[1].split()[0])
    assert diff < 1e-3
    meta = read_metadata(out)
    assert meta["model_name"] == "sfm_coco" and meta["input"]["shape"] == [1, 3, 128, 96]
    assert meta["input_size"] == [128, 96]


def test_cli_export_bad_input_is_one_line_error(tmp_path):
    proc = _cli("export", "sfm_coco", "--output", str(tmp_path / "x.onnx"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "--random-weights" in proc.stderr
