"""A corpus of user mistakes: each ends in one line on stderr naming the input and the problem,
exit code 2, no traceback, and no partial output file (or, where the right answer is to carry
on, a warning and a result).

The verbs run in-process through ``fusepose.cli.main.main`` (what the console script calls).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fusepose.cli.main import main

COCO = "test_coco.json"


def _gt_variant(coco_dir: Path, tmp: Path, name: str, change) -> Path:
    gt = json.loads((coco_dir / COCO).read_text())
    change(gt)
    out = tmp / name
    out.write_text(json.dumps(gt))
    return out


def _cases(coco_dir: Path, tmp: Path) -> list[tuple[str, list[str], str]]:
    """``(label, argv, expected text in the error line)``."""
    img = str(coco_dir / "000000000785.jpg")
    gt = str(coco_dir / COCO)
    out = str(tmp / "out.json")
    (tmp / "notes.txt").write_text("not a folder")
    (tmp / "junk.pth").write_text("this is text, not a checkpoint")
    (tmp / "junk.onnx").write_text("this is text, not an ONNX file")
    (tmp / "bad.json").write_text("{not json")
    other = tmp / "sfm.pth"
    torch.save({"format_version": 1, "model_name": "sfm_coco", "state_dict": {}}, other)
    skel = tmp / "skel.yaml"
    skel.write_text("keypoints: [a, b]\nflip_pairs: [[0, 5]]\nsigmas: [0.1, 0.1]\n")
    ann_other = tmp / "other_ann.json"
    ann_other.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.jpg"}],
                                     "annotations": []}))  # fmt: skip
    nan_kp = _gt_variant(coco_dir, tmp, "nan.json",
                         lambda g: g["annotations"][0]["keypoints"].__setitem__(0, float("nan")))
    neg_box = _gt_variant(coco_dir, tmp, "negbox.json",
                          lambda g: g["annotations"][0]["bbox"].__setitem__(2, -5))
    dup_ids = _gt_variant(coco_dir, tmp, "dup.json",
                          lambda g: g["annotations"][1].__setitem__("id", g["annotations"][0]["id"]))
    unknown_img = _gt_variant(coco_dir, tmp, "unk.json",
                              lambda g: g["annotations"][0].__setitem__("image_id", 123456789))
    empty = _gt_variant(coco_dir, tmp, "empty.json", lambda g: g.__setitem__("annotations", []))
    neg_area = _gt_variant(coco_dir, tmp, "area.json",
                           lambda g: g["annotations"][0].__setitem__("area", -1))
    res_bad_k = tmp / "res_k.json"
    res_bad_k.write_text(json.dumps([{"image_id": 785, "category_id": 1, "keypoints": [1, 2, 3],
                                      "score": 1.0}]))  # fmt: skip
    cfg = "configs/lmfnet_coco4-256_1xb4-150e.yaml"
    rnd = ["--random-weights"]
    # the tiny test models: a mistake found after the model is built costs milliseconds
    p = ["predict", "test_sfm", *rnd, "--source", img, "--det-file",
         str(coco_dir / "test_coco_det_AP_H_56.json"), "--save-json", out]  # fmt: skip
    bu = ["predict", "test_lmfnet", *rnd, "--source", img, "--save-json", out]
    return [
        ("input size 0", [*bu, "--input-size", "0"], "--input-size 0"),
        ("input size negative", [*bu, "--input-size", "-64"], "positive"),
        ("two sizes, short side", [*bu, "--input-size", "511", "383"], "short-side resize"),
        ("letterbox not /32", [*bu, "--input-size", "511", "383", "--resize", "letterbox"],
         "multiples of 32"),
        ("three sizes", [*bu, "--input-size", "1", "2", "3"], "one int or H W"),
        ("threads -1", [*bu, "--threads", "-1"], "threads"),
        ("threads not int", [*bu, "--threads", "abc"], "invalid int value"),
        ("missing source", ["predict", "test_sfm", *rnd, "--source", str(tmp / "nope.jpg")],
         "no such file"),
        ("unwritable json", [*bu[:-1], "/proc/nope/r.json"], "cannot write"),
        ("json into a file path", [*bu[:-1], str(tmp / "notes.txt" / "r.json")], "cannot write"),
        ("vis into a file path", [*bu, "--save-vis", str(tmp / "notes.txt")], "cannot write"),
        ("unknown model", ["predict", "lmfnett", *rnd, "--source", img], "did you mean"),
        ("no weights", ["predict", "lmfnet", "--source", img], "--random-weights"),
        ("missing weights", ["predict", "--weights", str(tmp / "no.pth"), "--source", img],
         "not found"),
        ("text weights", ["predict", "--weights", str(tmp / "junk.pth"), "--source", img],
         "not a readable checkpoint"),
        ("weights of another model", ["predict", "lmfnet", "--weights", str(other),
                                      "--source", img], "checkpoint is for sfm_coco"),
        ("score thr > 1", [*bu, "--score-thr", "2"], "--score-thr"),
        ("kpt thr < 0", [*bu, "--kpt-thr", "-1"], "--kpt-thr"),
        ("scale 0", [*bu, "--scales", "0"], "scale"),
        ("oks-nms > 1", [*p, "--oks-nms", "5"], "--oks-nms"),
        ("ann without the image", [*bu, "--ann", str(ann_other)], "does not list"),
        ("ann malformed", [*bu, "--ann", str(tmp / "bad.json")], "malformed JSON"),
        ("det file malformed", [*p[:-4], "--det-file", str(tmp / "bad.json")], "malformed JSON"),
        ("onnx backend without file", [*bu, "--backend", "onnx"], "needs an .onnx file"),
        ("text onnx", ["predict", "--onnx", str(tmp / "junk.onnx"), "--source", img],
         "not a readable ONNX"),
        ("cuda absent", [*bu, "--device", "cuda:3"], "cuda"),
        ("crop geometry on bottom-up", [*bu, "--resize", "crop"], "geometry"),
        ("detector on bottom-up", [*bu, "--detector", "test_lmfnet"], "top-down"),
        ("eval gt missing", ["eval", "--gt", str(tmp / "no.json"), "--results", gt],
         "not found"),
        ("eval NaN keypoints", ["eval", "--gt", str(nan_kp), "--results", gt], "finite"),
        ("eval negative box", ["eval", "--gt", str(neg_box), "--results", gt], "negative box"),
        ("eval duplicate ids", ["eval", "--gt", str(dup_ids), "--results", gt],
         "duplicate annotation id"),
        ("eval unknown image", ["eval", "--gt", str(unknown_img), "--results", gt],
         "not in 'images'"),
        ("eval empty gt", ["eval", "--gt", str(empty), "--results", gt], "nothing to score"),
        ("eval negative area", ["eval", "--gt", str(neg_area), "--results", gt], "'area'"),
        ("eval results malformed", ["eval", "--gt", gt, "--results", str(tmp / "bad.json")],
         "not a readable JSON"),
        ("eval results keypoint count", ["eval", "--gt", gt, "--results", str(res_bad_k)],
         "wrong keypoint count"),
        ("eval model without data", ["eval", "--model", "lmfnet", "--weights", str(other)],
         "--data"),
        ("eval det file and gt boxes", ["eval", "--model", "sfm_coco", "--weights", str(other),
                                        "--data", gt, "--images", str(coco_dir), "--gt-boxes",
                                        "--det-file", gt], "pick one"),
        ("eval crowd on pycocotools", ["eval", "--gt", gt, "--results", gt, "--crowd",
                                       "--backend", "pycocotools"], "faster"),
        ("train batch 0", ["train", cfg, "--set", "train.batch_size=0"], "train.batch_size"),
        ("train epochs -1", ["train", cfg, "--set", "train.epochs=-1"], "train.epochs"),
        ("train lr -1", ["train", cfg, "--set", "optim.lr=-1"], "optim.lr"),
        ("train model typo", ["train", cfg, "--set", "model.name=lmfnett"], "did you mean"),
        ("train size not /32", ["train", cfg, "--set", "data.input_size=[250,250]"],
         "multiples of 32"),
        ("train unknown key", ["train", cfg, "--set", "train.epochz=3"], "unknown key"),
        ("train config missing", ["train", str(tmp / "nope.yaml")], "not found"),
        ("train bad skeleton", ["train", cfg, "--set", f"data.skeleton={skel}"], "flip pair"),
        ("train unwritable out", ["train", cfg, "--out", "/proc/nope/run"], "cannot write"),
        ("export unwritable", ["export", "sfm_coco", *rnd, "--output", "/proc/nope/m.onnx"],
         "cannot write"),
        ("export an onnx file", ["export", "--weights", str(tmp / "junk.onnx"), "--output",
                                 str(tmp / "m.onnx")], "already an ONNX"),
        ("visualize zero box", ["visualize", "test_sfm", *rnd, "--image", img, "--out",
                                str(tmp / "vis"), "--box", "0", "0", "0", "10"], "--box"),
        ("bench runs 0", ["bench", "sfm_coco", "--runs", "0"], "--runs"),
        ("inspect text file", ["inspect", str(tmp / "junk.pth")], "not a readable checkpoint"),
        ("demo too few images", ["demo", "--images", "5", "--out", str(tmp / "demo")],
         "--images"),
        ("demo negative epochs (before rendering)", ["demo", "--epochs", "-1", "--out",
                                                     str(tmp / "demo")], "train.epochs"),
        ("demo unknown config key", ["demo", "--set", "train.lr=1", "--out", str(tmp / "demo")],
         "train.lr"),
        ("demo negative draw", ["demo", "--draw", "-1", "--out", str(tmp / "demo")], "--draw"),
        ("ablate unknown variant", ["ablate", "table3", "--variants", "nope", "--out",
                                    str(tmp / "abl")], "--variants"),
        ("ablate missing data", ["ablate", "table3", "--data", str(tmp / "nodata"), "--out",
                                 str(tmp / "abl")], "annotation file not found"),
        ("ablate zero threads", ["ablate", "table3", "--threads", "0", "--out",
                                 str(tmp / "abl")], "--threads"),
        ("ablate zero latency runs", ["ablate", "sfm-attention", "--latency-runs", "0", "--out",
                                      str(tmp / "abl")], "--latency-runs"),
        ("ablate zero epochs", ["ablate", "table3", "--set", "train.epochs=0", "--out",
                                str(tmp / "abl")], "train.epochs"),
    ]


def test_every_mistake_is_one_line_exit_2(coco_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    cases = _cases(coco_dir, tmp_path)
    assert len(cases) >= 40
    failures = []
    for label, argv, expect in cases:
        before = set(tmp_path.rglob("*"))
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code
        err = capsys.readouterr().err.strip().splitlines()
        errors = [line for line in err if "error:" in line]
        new_files = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
        ok = (rc == 2 and len(errors) == 1 and "Traceback" not in "\n".join(err)
              and expect.lower() in errors[0].lower() and not new_files)  # fmt: skip
        if not ok:
            failures.append(f"{label}: rc={rc} new={sorted(map(str, new_files))} err={err[-3:]}")
    assert not failures, "\n".join(failures)


def test_a_folder_with_a_bad_image_is_skipped_with_a_warning(coco_dir, tmp_path, caplog):
    """One unreadable file in a folder: the others are predicted and saved, the bad one is
    skipped with a warning and listed beside the results."""
    import shutil

    src = tmp_path / "imgs"
    src.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(coco_dir / name, src / name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage, no end marker")
    out = tmp_path / "res.json"
    with caplog.at_level("WARNING"):
        rc = main(["predict", "test_lmfnet", "--random-weights", "--source", str(src),
                   "--save-json", str(out), "--score-thr", "0", "--no-progress"])  # fmt: skip
    assert rc == 0
    results = json.loads(out.read_text())
    assert {r["file_name"] for r in results} == {"000000000785.jpg", "000000040083.jpg"}
    skipped = json.loads(out.with_suffix(".skipped.json").read_text())
    assert [s["file"] for s in skipped] == ["broken.jpg"] and "truncated" in skipped[0]["error"]
    assert "broken.jpg" in caplog.text


def test_debug_shows_the_traceback(coco_dir):
    with pytest.raises(Exception, match="no such file"):
        main(["--debug", "predict", "test_sfm", "--random-weights", "--source", "/nonexistent"])
