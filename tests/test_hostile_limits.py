"""Corpus, classes "limits", "odd media" and "ground truth".

Limits: every numeric flag that is NaN, infinite, negative, zero where it may not be, or huge
ends in one line that names the flag and states its range (exit 2, before any work); an image
whose network input would be huge is refused from its size, as the server refuses it.
Odd media: names that are not UTF-8, one-frame videos, binary configs, stale sidecars, text as
images: a correct result or one line, never a crash. Ground truth: contradictions are warned
about, malformed files are one line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hostile_helpers import SHARED, cli, refused, sha256, tiny_files
from serve_helpers import png_header


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_files(tmp_path_factory)


def _flag_cases(lm: Path, img: Path) -> list[tuple[str, list, str]]:
    """``(flag, argv, text the line holds)``: the flag's value is out of range."""
    pred = ["predict", lm, "--source", img]
    serve = ["serve", lm, "--port", "0"]
    bench = ["bench", lm]
    export = ["export", lm, "-o", "/nonexistent-dir-never-made/x.onnx"]
    return [
        ("--threads", [*pred, "--threads", "100000"], "[1, 1024]"),
        ("--threads", [*pred, "--threads", "0"], "[1, 1024]"),
        ("--threads", [*pred, "--threads", "-4"], "[1, 1024]"),
        ("--workers", [*pred, "--workers", "-1"], "non-negative"),
        ("--workers", [*pred, "--workers", "100000"], "256"),
        ("--input-size", [*pred, "--input-size", "0"], "4096"),
        ("--input-size", [*pred, "--input-size", "100000"], "4096"),
        ("--scales", [*pred, "--scales", "nan"], "finite"),
        ("--scales", [*pred, "--scales", "inf"], "finite"),
        ("--scales", [*pred, "--scales", "-1"], "--scales"),
        ("--scales", [*pred, "--scales", "1", "1e9"], "--scales"),
        ("--score-thr", [*pred, "--score-thr", "nan"], "[0, 1]"),
        ("--kpt-thr", [*pred, "--kpt-thr", "inf"], "[0, 1]"),
        ("--oks-nms", [*pred, "--oks-nms", "-0.5"], "(0, 1]"),
        ("--det-frequency", [*pred, "--track", "--det-frequency", "0"], "positive"),
        ("--track-patience", [*pred, "--track", "--track-patience", "-3"], "non-negative"),
        ("--smooth-min-cutoff", [*pred, "--smooth", "--smooth-min-cutoff", "0"], "(0,"),
        ("--smooth-beta", [*pred, "--smooth", "--smooth-beta", "nan"], "finite"),
        ("--max-upload-mb", [*serve, "--max-upload-mb", "nan"], "finite"),
        ("--max-upload-mb", [*serve, "--max-upload-mb", "-1"], "(0, 4096]"),
        ("--max-megapixels", [*serve, "--max-megapixels", "inf"], "finite"),
        ("--max-megapixels", [*serve, "--max-megapixels", "0"], "(0, 1000]"),
        ("--port", [*serve[:2], "--port", "70000"], "65535"),
        ("--runs", [*bench, "--runs", "0"], "positive"),
        ("--warmup", [*bench, "--warmup", "-1"], "non-negative"),
        ("--input", [*bench, "--input", "100000", "100000"], "4096"),
        ("--opset", [*export, "--opset", "3"], "[9, 30]"),
        ("--tol", [*export, "--tol", "nan"], "finite"),
        ("--threads", [*export, "--threads", "100000"], "1024"),
        ("--input", ["flops", "lmfnet", "--input", "0", "0"], "4096"),
        ("--num-keypoints", ["flops", "lmfnet", "--num-keypoints", "-1"], "positive"),
        ("--size", ["synth", "/nonexistent-out", "--size", "100000"], "4096"),
        ("--val-fraction", ["synth", "/nonexistent-out", "--val-fraction", "2"], "[0, 1]"),
        ("--seed", ["synth", "/nonexistent-out", "--seed", "-1"], "non-negative"),
        (
            "--box",
            [
                "visualize",
                lm,
                "--image",
                img,
                "--out",
                "/nonexistent-vis",
                "--box",
                "0",
                "0",
                "nan",
                "10",
            ],
            "finite",
        ),
        ("--latency-runs", ["ablate", "table3", "--latency-runs", "0"], "positive"),
    ]


def test_every_out_of_range_number_is_one_line_naming_its_flag(tiny, capsys):
    cases = _flag_cases(tiny["lm"], tiny["image"])
    assert len(cases) >= 35
    wrong = []
    for flag, argv, text in cases:
        rc, _out, err = cli(argv, capsys)
        errors = [line for line in err if "error:" in line]
        if rc != 2 or len(errors) != 1 or flag not in errors[0] or text not in errors[0]:
            wrong.append(f"{' '.join(map(str, argv[-3:]))}: rc={rc} {err[-2:]}")
    assert not wrong, "\n".join(wrong)


def test_a_decompression_bomb_is_refused_from_its_header(tiny, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(60_000, 60_000))
    refused(["predict", tiny["lm"], "--source", bomb], capsys, "bomb.png", "too large")


def test_a_strip_whose_network_input_would_be_huge_is_refused(tiny, tmp_path, capsys):
    """2 x 3000 pixels: the short-side resize would make a 64 x 96000 input."""
    strip = tmp_path / "strip.png"
    cv2.imwrite(str(strip), np.full((2, 3000, 3), 128, np.uint8))
    refused(
        ["predict", tiny["lm"], "--source", strip, "--resize", "short_side"],
        capsys,
        "strip.png",
        "network input",
    )


# ------------------------------------------------------------------------- odd media


def test_a_name_that_is_not_utf8_is_drawn_and_kept(tiny, tmp_path, capsys):
    """OpenCV's own file functions crash on such names; the results and drawing survive."""
    src = tmp_path / "src"
    src.mkdir()
    odd = os.fsdecode(b"caf\xe9-\xff.jpg")  # Latin-1 bytes: not UTF-8
    shutil.copy(tiny["image"], src / odd)
    out, vis = tmp_path / "r.json", tmp_path / "vis"
    rc, _o, err = cli(["predict", tiny["lm"], "--source", src, "--save-json", out, "--save-vis",
                       vis, "--score-thr", "0"], capsys)  # fmt: skip
    assert rc == 0, err
    assert [p.name for p in vis.iterdir()] == [odd]
    assert cv2.imdecode(np.fromfile(vis / odd, np.uint8), cv2.IMREAD_COLOR) is not None
    json.loads(out.read_text())  # strict JSON, even with that name in it


def test_a_stale_skipped_list_goes_when_nothing_is_skipped(tiny, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(tiny["image"], src / "a.jpg")
    (src / "b.jpg").write_text("not an image")
    out = tmp_path / "r.json"
    argv = ["predict", tiny["lm"], "--source", src, "--save-json", out]
    assert cli(argv, capsys)[0] == 0
    side = tmp_path / "r.skipped.json"
    assert [s["file"] if isinstance(s, dict) else s for s in json.loads(side.read_text())]
    (src / "b.jpg").unlink()
    assert cli(argv, capsys)[0] == 0
    assert not side.exists() and out.is_file()


def test_a_one_frame_video_gives_one_frame(tiny, tmp_path, capsys):
    video = tmp_path / "one.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 64))
    writer.write(cv2.resize(cv2.imread(str(tiny["image"])), (96, 64)))
    writer.release()
    out = tmp_path / "r.json"
    rc, _o, err = cli(["predict", tiny["lm"], "--source", video, "--save-json", out,
                       "--score-thr", "0"], capsys)  # fmt: skip
    assert rc == 0, err
    frames = {r.get("frame", r.get("image_id")) for r in json.loads(out.read_text())}
    assert len(frames) == 1, frames


@pytest.mark.parametrize("content", [b"\x00\x01\xff\xfe binary", b"\x89PNG\r\n\x1a\n\0\0"],
                         ids=["binary", "png"])  # fmt: skip
def test_a_binary_config_is_one_line(tmp_path, capsys, content):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(content)
    before = sha256(cfg)
    refused(["train", cfg, "--out", tmp_path / "run"], capsys, "cfg.yaml", "not")
    assert sha256(cfg) == before


@pytest.mark.parametrize("data,expect", [(b"", "empty"), (b"\xff\xd8\xff\xe0 cut", "x.jpg"),
                                         (b"GIF89a", "x.jpg")], ids=["empty", "truncated", "gif"])  # fmt: skip
def test_a_broken_single_image_is_one_line(tiny, tmp_path, capsys, data, expect):
    img = tmp_path / "x.jpg"
    img.write_bytes(data)
    refused(["predict", tiny["lm"], "--source", img], capsys, "x.jpg", expect)


def test_inspect_json_is_strict_json(tiny, tmp_path, capsys):
    """A stored validation value of NaN is written as null (Python's NaN is not JSON)."""
    import torch

    ck = torch.load(tiny["lm"], weights_only=True)
    ck["description"]["val"] = {"metric": "AP", "value": None}
    ck["val_loss"] = float("nan")
    torch.save(ck, tmp_path / "m.pth")
    rc, out, err = cli(["inspect", tmp_path / "m.pth", "--json"], capsys)
    assert rc == 0, err
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in inspect --json"))


# ------------------------------------------------------------------------- ground truth


def _gt(tmp_path: Path, change) -> Path:
    gt = json.loads((SHARED / "test_coco.json").read_text())
    change(gt)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path


def _results(tmp_path: Path) -> Path:
    gt = json.loads((SHARED / "test_coco.json").read_text())
    res = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1}
           for a in gt["annotations"] if not a.get("iscrowd")]  # fmt: skip
    path = tmp_path / "res.json"
    path.write_text(json.dumps(res))
    return path


def test_num_keypoints_zero_with_labelled_joints_is_warned(tmp_path, capsys, caplog):
    def zero(gt):
        gt["annotations"][0]["num_keypoints"] = 0

    gt = _gt(tmp_path, zero)
    rc, _o, err = cli(["eval", "--gt", gt, "--results", _results(tmp_path)], capsys)
    assert rc == 0, err
    assert "num_keypoints 0" in caplog.text


def test_images_not_the_declared_size_are_warned(tiny, tmp_path, capsys, caplog):
    def wrong(gt):
        for im in gt["images"]:
            im["width"] += 10

    gt = _gt(tmp_path, wrong)
    rc, _o, err = cli(["eval", "--model", tiny["lm"], "--data", gt, "--images", SHARED], capsys)
    assert rc == 0, err
    assert "not the size the ground truth declares" in caplog.text


GT_CASES = [
    ("not JSON", lambda p: p.write_text("{nope"), "malformed JSON"),
    ("a list", lambda p: p.write_text("[]"), "gt.json"),
    ("nested too deep", lambda p: p.write_text("[" * 100000 + "]" * 100000), "nested"),
    (
        "keypoints of odd length",
        lambda p: p.write_text(
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
                    "annotations": [
                        {
                            "id": 1,
                            "image_id": 1,
                            "keypoints": [1, 2],
                            "num_keypoints": 1,
                            "bbox": [0, 0, 1, 1],
                            "area": 1,
                            "iscrowd": 0,
                            "category_id": 1,
                        }
                    ],
                    "categories": [{"id": 1, "name": "person"}],
                }
            )
        ),
        "keypoints",
    ),
    ("binary", lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "gt.json"),
]


@pytest.mark.parametrize("make,expect", [c[1:] for c in GT_CASES], ids=[c[0] for c in GT_CASES])
def test_a_malformed_ground_truth_is_one_line(tmp_path, capsys, make, expect):
    gt = tmp_path / "gt.json"
    make(gt)
    before = sha256(gt)
    refused(["eval", "--gt", gt, "--results", _results(tmp_path)], capsys, "gt.json", expect)
    assert sha256(gt) == before
