"""``fusepose predict`` and training under ``torchrun`` give what one process gives: one merged
results file, every image once, journals that keep an interrupted run's frames, and a
training run whose validation works on every rank (2 Gloo processes on CPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dist_helpers import TIMEOUT, _cli, _env

# ------------------------------------------------------------------------ fusepose predict


def _folder(tmp_path: Path, coco_dir: Path) -> Path:
    """The 4 COCO images under non-numeric names (ids sequential) and an unreadable one."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, src in enumerate(sorted(coco_dir.glob("*.jpg"))):
        shutil.copy(src, folder / f"{'abde'[i]}.jpg")
    (folder / "c.jpg").write_bytes(b"broken")
    return folder


def _predict(tmp_path: Path, folder: Path, nproc: int, *extra: object):
    tag = f"{nproc}_{'_'.join(map(str, extra))}"
    out, vis = tmp_path / f"pred{tag}.json", tmp_path / f"vis{tag}"
    proc = _cli("predict", "lmfnet_lite", "--random-weights", "--source", folder,
                "--input-size", 128, "--threads", 1, "--save-json", out, "--save-vis", vis,
                *extra, nproc=nproc)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    skipped = out.with_suffix(".skipped.json")
    return out.read_bytes(), json.loads(skipped.read_text()), sorted(p.name for p in vis.iterdir())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, coco_dir):
    """``fusepose predict`` over the folder in one process: (folder, results bytes, skipped
    list, drawn files), what the other launches must reproduce."""
    tmp = tmp_path_factory.mktemp("one_process")
    folder = _folder(tmp, coco_dir)
    return (folder, *_predict(tmp, folder, 1))


def test_predict_under_torchrun_writes_what_one_process_writes(tmp_path, one_process):
    """One merged results file, identical to one process's (image ids numbered as one process
    numbers name-less images, around the skipped one), one skipped list, every image drawn
    once."""
    folder, one, skipped1, drawn1 = one_process
    two, skipped2, drawn2 = _predict(tmp_path, folder, 2)
    results = json.loads(one)
    assert len(results) > 4  # random weights still find people
    assert {r["file_name"] for r in results} <= {"a.jpg", "b.jpg", "d.jpg", "e.jpg"}
    ids = {r["file_name"]: r["image_id"] for r in results}
    assert all(ids[n] == "abde".index(n[0]) for n in ids)  # 0..3, the broken c.jpg skipped
    assert two == one
    assert skipped1 == skipped2 and [s["file"] for s in skipped1] == ["c.jpg"]
    assert drawn1 == drawn2 == ["a.jpg", "b.jpg", "d.jpg", "e.jpg"]
    assert not list(tmp_path.glob("*.jsonl"))  # the journals of a complete run are gone


def test_predict_with_reader_threads_writes_what_one_process_writes(tmp_path, one_process):
    """``--workers 2`` (images read and prepared in 2 threads) gives the same bytes, the same
    skipped list and the same drawings as the plain one-process run."""
    folder, one, skipped1, drawn1 = one_process
    assert _predict(tmp_path, folder, 1, "--workers", 2) == (one, skipped1, drawn1)


@pytest.mark.slow  # 3 videos, 1 and 2 processes: ~25 s on 2 cores
def test_predict_splits_a_list_of_videos_whole(tmp_path, coco_dir):
    """Three videos on 2 ranks: each video whole on one rank (tracked there), the results file
    equal to one process's, every frame named by its video, every drawn mp4 written."""
    import cv2

    img = cv2.imread(str(coco_dir / "000000196141.jpg"))
    clips = []
    for c in range(3):
        clips.append(tmp_path / f"clip{c}.mp4")
        writer = cv2.VideoWriter(str(clips[-1]), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (256, 172))
        for i in range(2 + c):
            writer.write(cv2.resize(np.roll(img, 16 * (i + c), axis=1), (256, 172)))
        writer.release()
    got = {}
    for nproc in (1, 2):
        out, vis = tmp_path / f"r{nproc}.json", tmp_path / f"vis{nproc}"
        proc = _cli("predict", "lmfnet_lite", "--random-weights", "--source", *clips, "--track",
                    "--input-size", 128, "--threads", 1, "--save-json", out, "--save-vis", vis,
                    nproc=nproc)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        got[nproc] = (out.read_bytes(), sorted(p.name for p in vis.iterdir()))
    assert got[2] == got[1]
    results = json.loads(got[1][0])
    frames = {r["file_name"] for r in results}
    assert {f.split(":frame:")[0] for f in frames} <= {"clip0.mp4", "clip1.mp4", "clip2.mp4"}
    assert len(frames) >= 6 and all("track_id" in r for r in results)
    assert got[1][1] == ["clip0_pose.mp4", "clip1_pose.mp4", "clip2_pose.mp4"]


def test_interrupted_runs_keep_the_finished_frames(tmp_path):
    """Journals: what each rank finished, read back for this run only (another run's journal
    and a line torn by the interruption are left out), merged in the one-process order."""
    from fusepose.inference.multi import _Done, _journal, _keep_finished, _read_journal

    save = tmp_path / "res.json"
    rec = {"image_id": -1, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}
    lines0 = [{"run": "R", "rank": 0, "world": 2}, {"pos": 0, "frame": 0, "needs_id": True,
              "records": [rec]}, {"pos": 2, "skipped": {"file": "c.jpg", "error": "broken"}}]  # fmt: skip
    lines1 = [{"run": "R", "rank": 1, "world": 2}, {"pos": 1, "frame": 0, "needs_id": True,
              "records": [rec, rec]}]  # fmt: skip
    _journal(save, 0).write_text("".join(json.dumps(x) + "\n" for x in lines0))
    _journal(save, 1).write_text("".join(json.dumps(x) + "\n" for x in lines1) + '{"pos": 3, "fr')
    assert len(_read_journal(_journal(save, 1), "R").frames) == 1
    assert _read_journal(_journal(save, 1), "another run").frames == []

    class Job:  # what _keep_finished reads of a rank's run
        journal = None
        done = _Done()

    _keep_finished(Job(), save, 0, 2, "R")  # type: ignore[arg-type]
    results = json.loads(save.read_text())
    assert [r["image_id"] for r in results] == [0, 1, 1]
    assert json.loads(save.with_suffix(".skipped.json").read_text())[0]["file"] == "c.jpg"
    assert _journal(save, 0).is_file()  # kept until a run completes


@pytest.mark.slow  # a run stopped part-way through a folder of 40 images
@pytest.mark.parametrize("nproc", [1, 2])
def test_sigterm_saves_the_finished_frames(tmp_path, coco_dir, nproc):
    """SIGTERM (what torchrun sends its workers on Ctrl-C or when a rank fails) stops a run
    like Ctrl-C: the results of the finished frames are written, with 2 ranks both ranks'
    (rank 0 merges the journals, which stay for a later look)."""
    import signal

    folder = tmp_path / "many"
    folder.mkdir()
    src = sorted(coco_dir.glob("*.jpg"))
    for i in range(40):
        shutil.copy(src[i % 4], folder / f"{i:03d}.jpg")
    out, vis = tmp_path / "res.json", tmp_path / "vis"
    args = ["-m", "fusepose.cli.main", "predict", "lmfnet_lite", "--random-weights", "--source",
            folder, "--input-size", 128, "--threads", 1, "--save-json", out, "--save-vis", vis]  # fmt: skip
    if nproc > 1:
        args = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", nproc, *args]
    proc = subprocess.Popen([sys.executable, *map(str, args)], env=_env(), text=True,
                            stderr=subprocess.PIPE)  # fmt: skip

    def drawn(parity: int) -> int:
        return sum(int(p.stem) % 2 == parity for p in vis.glob("*.jpg")) if vis.is_dir() else 0

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and min(drawn(0), drawn(1)) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (143 if nproc == 1 else 1), err[-2000:]  # 128 + SIGTERM
    names = {r["file_name"] for r in json.loads(out.read_text())}
    assert 2 <= len(names) < 40, err[-2000:]
    assert names <= {p.name for p in vis.glob("*.jpg")}
    # a frame is drawn before it is journaled: each rank has finished all but its last drawing
    assert {int(Path(n).stem) % 2 for n in names} == {0, 1}
    assert len(list(tmp_path.glob("res.rank*.jsonl"))) == (0 if nproc == 1 else 2)


# ------------------------------------------------------------------------ training


def _train(tmp_path: Path, coco_dir: Path, nproc: int, *extra: str) -> subprocess.CompletedProcess:
    ann = coco_dir / "test_coco.json"
    sets = [f"data.train_ann={ann}", f"data.train_images={coco_dir}", f"data.val_ann={ann}",
            f"data.val_images={coco_dir}", "train.epochs=1", "train.batch_size=2",
            "train.freeze_bn=true", "runtime.progress=false", *extra]  # fmt: skip
    args = ["train", "lmfnet_coco4-256_1xb4-150e", "--out", tmp_path / f"run{nproc}"]
    for s in sets:
        args += ["--set", s]
    return _cli(*args, nproc=nproc)


def _validation_matches(tmp_path: Path, coco_dir: Path, *extra: str) -> float:
    """2-rank training: its validation metrics equal the 1-process validation of the
    weights it saved, and each rank validated 2 of the 4 images; returns the AP."""
    import csv

    import torch

    from fusepose.engine.checkpoint import load_checkpoint
    from fusepose.inference import Predictor
    from fusepose.inference.dataset import evaluate_dataset

    proc = _train(tmp_path, coco_dir, 2, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank}/2: 2 images predicted" in proc.stderr
    assert "images per rank [2, 2]" in proc.stderr
    row = list(csv.DictReader(open(tmp_path / "run2" / "train.csv")))[-1]
    ckpt = tmp_path / "run2" / "last.pth"
    assert load_checkpoint(ckpt)["epoch"] == 1
    torch.set_num_threads(1)
    one = evaluate_dataset(Predictor(ckpt), coco_dir / "test_coco.json", coco_dir)
    for key in ("AP", "AP50", "AR"):
        assert float(row[f"val_{key}"]) == one[key], key
    return float(one["AP"])


def test_training_validates_on_every_rank(tmp_path, coco_dir):
    """Both ranks of a 2-process training run validate their half of the images; the AP the
    run records is the 1-process AP of the same weights."""
    _validation_matches(tmp_path, coco_dir)


@pytest.mark.slow  # the README's trained checkpoint (3 CPU minutes, shared with its tests)
def test_training_validation_of_trained_weights(tmp_path, coco_dir, overfit_lmfnet):
    """The same with weights that find people (the README's overfit checkpoint, a learning
    rate of 1e-9 so one step keeps them): the recorded AP is high and equals one process's."""
    ap = _validation_matches(tmp_path, coco_dir, f"model.weights={overfit_lmfnet['ckpt']}",
                             "optim.lr=1e-9")  # fmt: skip
    assert ap > 0.5


@pytest.mark.slow  # the README's trained checkpoint and its ONNX export
def test_readme_checkpoint_under_torchrun(tmp_path, coco_dir, overfit_lmfnet):
    """The README's commands under `torchrun --nproc-per-node 2`: `eval --weights` and
    `eval --onnx` give the AP (==) and results of one process."""
    ckpt = overfit_lmfnet["ckpt"]
    onnx = tmp_path / "m.onnx"
    proc = _cli("export", "--weights", ckpt, "--output", onnx)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = ("--data", coco_dir / "test_coco.json", "--images", coco_dir, "--threads", 1)
    for flag, path in (("--weights", ckpt), ("--onnx", onnx)):
        got = {}
        for nproc in (1, 2):
            report, saved = tmp_path / f"r{nproc}.json", tmp_path / f"s{nproc}.json"
            proc = _cli("eval", flag, path, *data, "--report", report, "--save-results", saved,
                        nproc=nproc)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-3000:]
            got[nproc] = (json.loads(report.read_text()), saved.read_text())
        (r1, s1), (r2, s2) = got[1], got[2]
        assert r1["AP"] > 0.9 and r2["AP"] == r1["AP"], flag
        assert s2 == s1 and r2["images_per_rank"] == [2, 2], flag
        assert np.isclose(r1["AP"], overfit_lmfnet["AP_after"], atol=1e-6)
