"""Trained checkpoints for fair guards (issue 22 item 1): one overfit recipe per model that
``fusepose perf`` times, trained where missing, reused (after checking) where present."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fusepose.benchmark.checkpoints import GUARD_RECIPES, ensure_checkpoints
from fusepose.engine.config import load_config
from fusepose.errors import CheckpointError
from fusepose.experiments.perf_table import DEFAULT_MODELS
from fusepose.modelfile import describe

QUICK = ("train.epochs=1", "eval.interval=1", "runtime.progress=false")


def test_every_timed_model_has_a_recipe_for_its_own_architecture():
    """The default perf models each have a bundled recipe that trains that very model (full
    architecture: no width overrides for HigherHRNet-W32 and SFM) on the four COCO samples."""
    assert set(DEFAULT_MODELS) <= set(GUARD_RECIPES)
    for model, recipe in GUARD_RECIPES.items():
        cfg = load_config(recipe)
        assert cfg.model.name == model, recipe
        assert "coco4" in recipe and cfg.eval.flip_test is False
        if model != "lmfnet":
            assert not cfg.model.overrides, recipe


def _fail(*args, **kwargs):
    raise AssertionError("ensure_checkpoints trained although best.pth was there")


def test_ensure_trains_what_is_missing_and_reuses_what_is_there(coco_dir, tmp_path):
    ann = coco_dir / "test_coco.json"
    got = ensure_checkpoints(tmp_path, ["sfm_coco", "no_such_model"], ann_file=ann,
                             overrides=QUICK)  # fmt: skip
    best = tmp_path / "sfm_coco" / "best.pth"
    assert got == {"sfm_coco": best} and best.is_file()
    desc = describe(best)
    assert desc.model == "sfm_coco" and desc.val_metric is not None
    assert desc.val["ann"] == str(ann)
    stamp = best.stat().st_mtime_ns
    assert ensure_checkpoints(tmp_path, ["sfm_coco"], ann_file=ann, trainer=_fail) == got
    assert best.stat().st_mtime_ns == stamp

    # a file of another model where lmfnet's should be: an error, never overwritten
    (tmp_path / "lmfnet").mkdir()
    shutil.copy(best, tmp_path / "lmfnet" / "best.pth")
    with pytest.raises(CheckpointError, match="a checkpoint of 'sfm_coco', expected 'lmfnet'"):
        ensure_checkpoints(tmp_path, ["lmfnet"], ann_file=ann, trainer=_fail)
    (tmp_path / "lmfnet" / "best.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="guard checkpoint"):
        ensure_checkpoints(tmp_path, ["lmfnet"], ann_file=ann, trainer=_fail)


def test_an_interrupted_run_is_resumed(coco_dir, tmp_path):
    """``DIR/MODEL/last.pth`` without ``best.pth``: the recipe is resumed (``resume="auto"``)
    into the same folder, with the data pointed at the given annotation file."""
    ann = coco_dir / "test_coco.json"
    run = tmp_path / "sfm_coco"
    run.mkdir()
    (run / "last.pth").write_bytes(b"partial")
    calls = []

    def trainer(cfg, *, resume, run_dir, config_path):
        calls.append((resume, Path(run_dir), cfg.data.train_ann, cfg.train.epochs))
        ensure_checkpoints(tmp_path / "real", ["sfm_coco"], ann_file=ann, overrides=QUICK)
        shutil.copy(tmp_path / "real" / "sfm_coco" / "best.pth", Path(run_dir) / "best.pth")

    got = ensure_checkpoints(tmp_path, ["sfm_coco"], ann_file=ann, trainer=trainer)
    assert got == {"sfm_coco": run / "best.pth"}
    assert calls == [("auto", run, str(ann), load_config(GUARD_RECIPES["sfm_coco"]).train.epochs)]
