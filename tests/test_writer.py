"""The one result writer: ``fusepose predict``'s files equal the Predictor's results written by
hand, an interrupted run keeps its finished frames, and results draw and save themselves."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

import fusepose.structures
from fusepose.cli.main import main
from fusepose.inference.boxes import ImageIds
from fusepose.inference.predictor import Predictor
from fusepose.inference.sources import iter_frames
from fusepose.structures import PoseInstance, PoseResult
from fusepose.visualization.skeleton import draw_poses
from fusepose.visualization.writer import ResultWriter, side_by_side

NAMES = ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg")
BROKEN = "000000000001_broken.jpg"  # read first (sorted by name)
# a random-weight L-MFNet at 128 px keeping every person: many people, drawn and saved
MODEL = ("lmfnet_lite", "--random-weights", "--input-size", "128", "--score-thr", "0")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """The Predictor ``fusepose predict MODEL --threads 1`` builds (random weights from a fixed
    seed, BatchNorm calibrated with one thread: the same floats)."""
    return Predictor("lmfnet_lite", allow_random_weights=True, input_size=128, score_thr=0,
                     num_threads=1)  # fmt: skip


@pytest.fixture()
def folder(tmp_path, coco_dir):
    src = tmp_path / "imgs"
    src.mkdir()
    for name in NAMES:
        shutil.copy(coco_dir / name, src / name)
    (src / BROKEN).write_bytes(b"\xff\xd8\xff garbage, no end marker")
    return src


def test_predict_folder_writes_what_the_predictor_finds(folder, tmp_path, predictor):
    """JSON records, drawn images (byte for byte) and the skipped list of a folder run are the
    Predictor's results written by hand the way ``predict`` always wrote them."""
    out, vis = tmp_path / "res.json", tmp_path / "vis"
    rc = main(["predict", *MODEL, "--source", str(folder), "--save-json", str(out),
               "--save-vis", str(vis), "--no-progress", "--threads", "1"])  # fmt: skip
    assert rc == 0
    records, drawn, skipped, ids = [], {}, [], ImageIds()
    for frame in iter_frames(folder, skipped):
        res = predictor.predict_frame(frame, image_id=ids(frame))
        records += [{**r, "file_name": frame.path.name} for r in res.to_coco()]
        image = draw_poses(frame.image, res, predictor.skeleton, kpt_thr=0.3)
        drawn[frame.path.name] = cv2.imencode(".jpg", image)[1].tobytes()
    got = json.loads(out.read_text())
    assert len(got) == len(records) > len(NAMES)
    assert all(set(r) == {"image_id", "category_id", "keypoints", "score", "file_name"}
               for r in got)  # fmt: skip
    assert got == json.loads(json.dumps(records))
    assert {r["image_id"] for r in got} == {int(n[:-4]) for n in NAMES}
    assert sorted(p.name for p in vis.iterdir()) == sorted(NAMES)
    for name, data in drawn.items():
        assert (vis / name).read_bytes() == data, name
    assert data != cv2.imencode(".jpg", frame.image)[1].tobytes()  # people were drawn
    side = json.loads(out.with_suffix(".skipped.json").read_text())
    assert side == skipped and [s["file"] for s in side] == [BROKEN]


def test_an_interrupted_predict_keeps_the_finished_frames(folder, tmp_path, monkeypatch):
    """Ctrl-C on the third image: exit 130, the results of the first two images saved."""
    calls = {"n": 0}
    real = Predictor.predict_frame

    def stop_at_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_frame", stop_at_third)
    out = tmp_path / "res.json"
    rc = main(["predict", *MODEL, "--source", str(folder), "--save-json", str(out),
               "--no-progress", "--threads", "1"])  # fmt: skip
    assert rc == 130
    got = json.loads(out.read_text())
    assert len(got) > 0 and {r["file_name"] for r in got} == set(NAMES[:2])
    side = json.loads(out.with_suffix(".skipped.json").read_text())
    assert [s["file"] for s in side] == [BROKEN]  # read before the stop, listed too
    assert not list(tmp_path.glob(".res.json.*"))  # no temporary file left behind


def test_the_writer_finishes_the_video_when_stopped(tmp_path, coco_dir, predictor):
    """An exception inside ``with ResultWriter(...)``: the frames written so far make a
    readable mp4, the JSON holds their records, the exception goes on."""
    img = cv2.resize(cv2.imread(str(coco_dir / NAMES[2])), (256, 172))
    writer = ResultWriter(save_json=tmp_path / "r.json", save_vis=tmp_path / "vis",
                          skeleton=predictor.skeleton, video="clip_pose.mp4", fps=5.0)  # fmt: skip
    with pytest.raises(RuntimeError, match="camera unplugged"), writer:
        for i in range(3):
            writer.add(predictor.predict_frame(img, image_id=i), img)
        raise RuntimeError("camera unplugged")
    cap = cv2.VideoCapture(str(tmp_path / "vis" / "clip_pose.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 3 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 256
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    cap.release()
    records = json.loads((tmp_path / "r.json").read_text())
    assert {r["image_id"] for r in records} == {0, 1, 2} and len(records) == writer.people


def test_results_plot_and_save_themselves(tmp_path, coco_dir, predictor):
    img = cv2.imread(str(coco_dir / NAMES[2]))
    res = predictor.predict_frame(img)
    drawn = res.plot(img, predictor.skeleton, kpt_thr=0.0)
    np.testing.assert_array_equal(drawn, draw_poses(img, res, predictor.skeleton, kpt_thr=0.0))
    assert np.abs(drawn.astype(int) - img).sum() > 0 and drawn is not img
    path = res.save(tmp_path / "drawn.png", img, predictor.skeleton, kpt_thr=0.0)
    np.testing.assert_array_equal(cv2.imread(str(path)), drawn)  # PNG: lossless


def test_plot_without_the_drawing_layer_says_what_to_import(monkeypatch):
    monkeypatch.setattr(fusepose.structures, "_DRAWING", {})
    with pytest.raises(RuntimeError, match="import fusepose.visualization"):
        PoseResult([]).plot(np.zeros((8, 8, 3), np.uint8), None)


def test_side_by_side_is_the_demo_drawing(coco_dir, predictor):
    """The demo's prediction | ground truth canvas (experiments/demo.py ``draw_predictions``: 4 white columns
    between, 3x nearest-neighbour, white-outlined black labels) drawn by hand."""
    img = cv2.resize(cv2.imread(str(coco_dir / NAMES[2])), (128, 86))
    pred = predictor.predict_frame(img).plot(img, predictor.skeleton, kpt_thr=0.1)
    gt = PoseResult([PoseInstance(np.full((17, 2), 40.0) + np.arange(17)[:, None], np.ones(17), 1)])
    gt_img = gt.plot(img, predictor.skeleton, kpt_thr=0.5)
    want = np.concatenate([pred, np.full((img.shape[0], 4, 3), 255, np.uint8), gt_img], 1)
    want = cv2.resize(want, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    for text, x in (("prediction", 6), ("ground truth", 3 * (img.shape[1] + 4) + 6)):
        cv2.putText(want, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2)
        cv2.putText(want, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    got = side_by_side([pred, gt_img], ["prediction", "ground truth"])
    np.testing.assert_array_equal(got, want)
    assert got.shape == (3 * 86, 3 * (2 * 128 + 4), 3)
