"""Corpus, class "outputs vs inputs": no output path may destroy an input.

Each case names an output that is an input of the same command (the same file, another
spelling of it, a link to it), lies inside an input folder, or is a drawings folder holding the
source image; the verb must refuse it before any work: exit 2, one line naming the flag, and
the input byte for byte unchanged (its sha256). ``train --out`` onto a finished run needs
``--resume`` or ``--overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hostile_helpers import REPO, SHARED, cli, refused, sha256, tiny_files

from fusepose.cli.outputs import OUTPUT_DIRS, OUTPUT_FILES


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_files(tmp_path_factory)


@pytest.fixture
def work(tiny, tmp_path) -> dict[str, Path]:
    """Copies the cases may point outputs at: a checkpoint, an ONNX file, a photo folder of
    two images, a COCO file, a results file (the GT as results) and a detection file."""
    shutil.copy(tiny["lm"], tmp_path / "m.pth")
    shutil.copy(tiny["lm_onnx"], tmp_path / "m.onnx")
    shutil.copy(tiny["sfm"], tmp_path / "sfm.pth")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(SHARED / name, photos / name)
    shutil.copy(SHARED / "test_coco.json", tmp_path / "gt.json")
    gt = json.loads((SHARED / "test_coco.json").read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                "score": 1.0} for a in gt["annotations"] if not a.get("iscrowd")]  # fmt: skip
    (tmp_path / "res.json").write_text(json.dumps(results))
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9}
            for a in gt["annotations"]]  # fmt: skip
    (tmp_path / "det.json").write_text(json.dumps(dets))
    os.symlink(tmp_path / "m.pth", tmp_path / "link.pth")
    os.link(tmp_path / "m.pth", tmp_path / "hard.pth")
    return {"root": tmp_path, "photos": photos, "img": photos / "000000000785.jpg"}


def _cases(w: dict[str, Path]) -> list[tuple[str, list, str, Path]]:
    """``(label, argv, flag the refusal names, input that must stay unchanged)``."""
    r, photos, img = w["root"], w["photos"], w["img"]
    m, gt, res = r / "m.pth", r / "gt.json", r / "res.json"
    return [
        ("export onto its checkpoint", ["export", m, "-o", m], "--output", m),
        ("export onto a symlink of it", ["export", m, "-o", r / "link.pth"], "--output", m),
        ("export onto a hard link of it", ["export", m, "-o", r / "hard.pth"], "--output", m),
        (
            "export onto it, spelled with ..",
            ["export", m, "-o", r / "photos" / ".." / "m.pth"],
            "--output",
            m,
        ),
        ("export --weights onto itself", ["export", "--weights", m, "-o", m], "--output", m),
        (
            "predict --save-json onto --ann",
            ["predict", m, "--source", img, "--ann", gt, "--save-json", gt],
            "--save-json",
            gt,
        ),
        (
            "predict --save-json onto the model",
            ["predict", m, "--source", img, "--save-json", m],
            "--save-json",
            m,
        ),
        (
            "predict --save-json onto the image",
            ["predict", m, "--source", img, "--save-json", img],
            "--save-json",
            img,
        ),
        (
            "predict --save-json onto --det-file",
            [
                "predict",
                r / "sfm.pth",
                "--source",
                img,
                "--det-file",
                r / "det.json",
                "--save-json",
                r / "det.json",
            ],
            "--save-json",
            r / "det.json",
        ),
        (
            "predict --save-json onto --calibration",
            ["predict", m, "--source", img, "--calibration", r / "res.json", "--save-json", res],
            "--save-json",
            res,
        ),
        (
            "predict --save-json into the source folder",
            ["predict", m, "--source", photos, "--save-json", photos / "r.json"],
            "--save-json",
            img,
        ),
        (
            "predict --save-vis = the source folder",
            ["predict", m, "--source", photos, "--save-vis", photos],
            "--save-vis",
            img,
        ),
        (
            "predict --save-vis inside the source folder",
            ["predict", m, "--source", photos, "--save-vis", photos / "vis"],
            "--save-vis",
            img,
        ),
        (
            "predict --save-vis holding the source image",
            ["predict", m, "--source", img, "--save-vis", photos],
            "--save-vis",
            img,
        ),
        (
            "predict --onnx --save-json onto it",
            ["predict", "--onnx", r / "m.onnx", "--source", img, "--save-json", r / "m.onnx"],
            "--save-json",
            r / "m.onnx",
        ),
        (
            "eval --report onto --results",
            ["eval", "--gt", gt, "--results", res, "--report", res],
            "--report",
            res,
        ),
        (
            "eval --report onto --gt",
            ["eval", "--gt", gt, "--results", res, "--report", gt],
            "--report",
            gt,
        ),
        (
            "eval --save-results onto --data",
            ["eval", "--model", m, "--data", gt, "--images", photos, "--save-results", gt],
            "--save-results",
            gt,
        ),
        (
            "eval --save-results into --images",
            [
                "eval",
                "--model",
                m,
                "--data",
                gt,
                "--images",
                photos,
                "--save-results",
                photos / "r.json",
            ],
            "--save-results",
            img,
        ),
        (
            "eval --report onto the model",
            ["eval", "--model", m, "--data", gt, "--images", photos, "--report", m],
            "--report",
            m,
        ),
        (
            "visualize --out onto the image",
            ["visualize", m, "--image", img, "--out", img],
            "--out",
            img,
        ),
        (
            "visualize --out = a model file",
            ["visualize", m, "--image", img, "--out", m],
            "--out",
            m,
        ),
        ("bench --json onto the model", ["bench", m, "--json", m], "--json", m),
        ("bench --json onto --image", ["bench", m, "--image", img, "--json", img], "--json", img),
        (
            "train --out onto its config",
            ["train", r / "cfg.yaml", "--out", r / "cfg.yaml"],
            "--out",
            r / "cfg.yaml",
        ),
        (
            "train --out onto the resumed checkpoint",
            ["train", r / "cfg.yaml", "--resume", m, "--out", m],
            "--out",
            m,
        ),
    ]


def test_every_output_that_is_an_input_is_refused(work, capsys):
    (work["root"] / "cfg.yaml").write_text("model:\n  name: lmfnet\n")
    cases = _cases(work)
    assert len(cases) >= 25
    failures = []
    for label, argv, flag, keep in cases:
        before = {p: sha256(p) for p in work["root"].rglob("*") if p.is_file()}
        rc, _out, err = cli(argv, capsys)
        errors = [line for line in err if "error:" in line]
        after = {p: sha256(p) for p in work["root"].rglob("*") if p.is_file()}
        ok = (rc == 2 and len(errors) == 1 and flag in errors[0] and after == before
              and keep in before)  # fmt: skip
        if not ok:
            failures.append(f"{label}: rc={rc} err={err[-2:]} changed="
                            f"{sorted(str(p) for p in after if after[p] != before.get(p))}")  # fmt: skip
    assert not failures, "\n".join(failures)


def test_outputs_elsewhere_still_run(work, tmp_path_factory, capsys):
    """The control: the same commands with outputs outside the inputs do their work."""
    out = tmp_path_factory.mktemp("out")
    r, photos = work["root"], work["photos"]
    rc, _o, err = cli(["predict", r / "m.pth", "--source", photos, "--save-json",
                       out / "r.json", "--save-vis", out / "vis", "--score-thr", "0"],
                      capsys)  # fmt: skip
    assert rc == 0, err
    assert sorted(p.name for p in (out / "vis").iterdir()) == sorted(
        p.name for p in photos.iterdir()
    )
    rc, _o, err = cli(["eval", "--gt", r / "gt.json", "--results", r / "res.json",
                       "--report", out / "report.json"], capsys)  # fmt: skip
    assert rc == 0 and 0.5 < json.loads((out / "report.json").read_text())["AP"] <= 1.0, err


def test_the_tables_name_every_output_flag():
    """Every verb's output flags are in the tables the check reads (a new output flag that
    is not would escape it)."""
    import argparse
    import importlib

    from fusepose.cli.main import VERBS

    outputs = set(OUTPUT_FILES) | set(OUTPUT_DIRS)
    suspicious = ("out", "save", "output", "json", "report", "markdown")
    missing = []
    for verb, (module, _help) in VERBS.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(f"fusepose.cli.{module}").add_arguments(parser)
        for action in parser._actions:
            dest = action.dest
            if any(s in dest for s in suspicious) and dest not in outputs and action.nargs != 0:
                missing.append(f"{verb}: {dest}")
    assert not missing, missing


def _finished_run(folder: Path, tiny) -> dict[str, str]:
    folder.mkdir(parents=True)
    for name in ("last.pth", "best.pth"):
        shutil.copy(tiny["lm"], folder / name)
    return {n: sha256(folder / n) for n in ("last.pth", "best.pth")}


@pytest.mark.parametrize("verb", ["train", "pretrain"])
def test_train_out_onto_a_finished_run_needs_resume_or_overwrite(tiny, tmp_path, capsys, verb):
    run = tmp_path / "run"
    digests = _finished_run(run, tiny)
    cfg = REPO / "configs" / "lmfnet_coco4-256_1xb4-150e.yaml"
    if verb == "pretrain":
        cfg = REPO / "configs" / "pretrain" / "lmfnet_shapes-64_1xb32-2e.yaml"
        if not cfg.is_file():
            cfg = next((REPO / "configs").rglob("*shapes*.yaml"))
    refused([verb, cfg, "--out", run], capsys, "--out", "--resume", "--overwrite")
    assert {n: sha256(run / n) for n in digests} == digests


def test_overwrite_deletes_the_old_checkpoints_first(tiny, tmp_path):
    """``--overwrite``: the earlier run's checkpoints go before the new run starts, so none
    of them can pass for the new run's."""
    import argparse

    from fusepose.cli.train import check_run_folder
    from fusepose.engine.config import load_config

    run = tmp_path / "run"
    _finished_run(run, tiny)
    cfg = load_config(REPO / "configs" / "lmfnet_coco4-256_1xb4-150e.yaml")
    args = argparse.Namespace(out=str(run), config="x.yaml", resume=None, overwrite=True)
    assert check_run_folder(args, cfg) == run
    assert not (run / "last.pth").exists() and not (run / "best.pth").exists()
    _finished_run(tmp_path / "run2", tiny)
    resumed = argparse.Namespace(out=str(tmp_path / "run2"), config="x.yaml", resume="auto",
                                 overwrite=False)  # fmt: skip
    check_run_folder(resumed, cfg)  # --resume: kept
    assert (tmp_path / "run2" / "last.pth").is_file()


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_keep_the_umask(tmp_path, mask):
    """A new output gets the mode ``open()`` would give it (tempfile's 0600 hid outputs from
    the user's group)."""
    import stat

    from fusepose.files import write_text_atomic

    old = os.umask(mask)
    try:
        path = write_text_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_a_replaced_output_keeps_its_mode(tmp_path):
    import stat

    from fusepose.files import write_text_atomic

    path = tmp_path / "a.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_text_atomic(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "new"


def test_an_altered_cache_entry_is_made_again(tmp_path):
    """A cache entry whose bytes no longer match its checksum (a kill mid-write, an edit) is
    never used: it is made again."""
    from fusepose.files import cached_file

    made = []

    def make(tmp: Path) -> None:
        made.append(tmp)
        tmp.write_bytes(b"entry")

    path, hit = cached_file(tmp_path / "e.bin", make)
    assert not hit and path.read_bytes() == b"entry"
    assert cached_file(path, make) == (path, True) and len(made) == 1
    path.write_bytes(b"entrx")
    path, hit = cached_file(path, make)
    assert not hit and path.read_bytes() == b"entry" and len(made) == 2
    (tmp_path / "e.bin.sha256").unlink()  # no checksum: not trusted either
    assert cached_file(path, make)[1] is False and len(made) == 3
