"""``fusepose predict`` end to end: folders, videos, bad sources (the tiny test models; one
folder run and one bad source through a real subprocess, the rest in this process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from cli_helpers import CliRun, run_cli

# one thread, like the in-process tests (conftest): the suite runs two tests at a time
_THREADS = ("--threads", "1")


def _cli_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fusepose.cli.main", *map(str, args), *_THREADS],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _cli(*args: str) -> CliRun:
    return run_cli(*args, *_THREADS)


def test_predict_folder_with_det_file_writes_coco_results(tmp_path, coco_dir):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = json.loads((coco_dir / "test_coco.json").read_text())
    folder = tmp_path / "imgs"
    folder.mkdir()
    chosen = gt["images"][:2]
    for im in chosen:
        # renamed copies: ids must come from --ann, not from the (now non-numeric) names
        shutil.copy(coco_dir / im["file_name"], folder / im["file_name"])
    ids = {im["id"] for im in chosen}
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0}
            for a in gt["annotations"] if a["image_id"] in ids]  # fmt: skip
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out_json, vis = tmp_path / "res.json", tmp_path / "vis"
    proc = _cli_process("predict", "test_sfm", "--random-weights", "--source", folder,
                        "--det-file", tmp_path / "dets.json", "--ann", coco_dir / "test_coco.json",
                        "--save-json", out_json, "--save-vis", vis, "--input-size", "64", "48")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "2/2" in proc.stderr  # progress bar
    results = json.loads(out_json.read_text())
    assert len(results) == len(dets)  # one pose per box
    assert {r["image_id"] for r in results} == ids
    assert all(len(r["keypoints"]) == 17 * 3 for r in results)
    coco = COCO(str(coco_dir / "test_coco.json"))
    ev = COCOeval(coco, coco.loadRes(str(out_json)), iouType="keypoints")
    ev.params.imgIds = sorted(ids)
    ev.evaluate()
    ev.accumulate()
    assert sorted(p.name for p in vis.iterdir()) == sorted(im["file_name"] for im in chosen)


def test_predict_video_writes_video_with_every_frame(tmp_path, coco_dir):
    src = tmp_path / "clip.mp4"
    img = cv2.imread(str(coco_dir / "000000196141.jpg"))
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (256, 172))
    frames = 4
    for i in range(frames):
        writer.write(cv2.resize(np.roll(img, 16 * i, axis=1), (256, 172)))
    writer.release()
    vis = tmp_path / "vis"
    proc = _cli("predict", "test_lmfnet", "--random-weights", "--source", src,
                "--input-size", "128", "--save-vis", vis, "--save-json", tmp_path / "r.json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{frames}/{frames}" in proc.stderr
    out = vis / "clip_pose.mp4"
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == frames
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 256
    cap.release()
    assert isinstance(json.loads((tmp_path / "r.json").read_text()), list)


@pytest.mark.parametrize("kind", ["missing", "video", "webcam"])
def test_bad_source_is_a_one_line_error(tmp_path, kind):
    if kind == "missing":
        source, needle = tmp_path / "nope.jpg", "no such file"
    elif kind == "video":
        source, needle = tmp_path / "broken.mp4", "not a readable video"
        source.write_bytes(b"\x00" * 64)
    else:
        source, needle = "97", "cannot open webcam"
    run = _cli_process if kind == "missing" else _cli
    proc = run("predict", "test_sfm", "--random-weights", "--source", source)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("fusepose predict: error:")]
    assert len(err) == 1 and needle in err[0], proc.stderr
