"""Trained checkpoints for fair accuracy guards: one small overfit recipe per model that
``fusepose perf`` times, trained on the four real COCO sample images.

A bf16, INT8 or other-backend path is only as accurate as a trained network says: on random
weights the heatmaps are noise and a keypoint change means nothing. :func:`ensure_checkpoints`
gives each model a trained checkpoint at ``DIR/MODEL/best.pth``, training the bundled recipe
of :data:`GUARD_RECIPES` where it is missing (``DIR/MODEL/last.pth`` of an interrupted run is
resumed) and reusing, after checking, what is there (any model's). A model with neither gets
no entry: its guard stays on random weights and must say so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fusepose.benchmark.latency import default_image
from fusepose.description import ModelDescription
from fusepose.engine.config import load_config
from fusepose.engine.trainer import train
from fusepose.errors import CheckpointError, DataError, FusePoseError
from fusepose.modelfile import describe

logger = logging.getLogger(__name__)

__all__ = ["GUARD_RECIPES", "check_guard_checkpoint", "ensure_checkpoints", "guard_data"]

# model -> bundled config (overfit on the 4 COCO samples, letterboxed / GT-box crops, flip off).
# Measured on this project's 2-core CPUs: see each config's header.
GUARD_RECIPES: dict[str, str] = {
    "lmfnet": "lmfnet_coco4-256_1xb4-150e",
    "lmfnet_deploy": "lmfnet_deploy_coco4-256_1xb4-150e",
    "higherhrnet_w32": "higherhrnet_w32_coco4-128_1xb4-150e",
    "sfm_coco": "sfm_coco4-128x96_1xb4-160e",
}

Trainer = Callable[..., dict[str, Any]]


def guard_data(ann_file: str | Path | None = None) -> tuple[Path, Path]:
    """``(annotation file, image folder)`` the recipes train and validate on: ``ann_file``, or
    the shared COCO samples' ``test_coco.json`` (``FUSEPOSE_SHARED_DATA``, else
    ``../shared/data`` beside the repository)."""
    if ann_file is None:
        image = default_image()
        if image is None:
            raise DataError("guard checkpoints need the shared COCO samples (mmpose_coco/"
                            "test_coco.json; set FUSEPOSE_SHARED_DATA)")  # fmt: skip
        ann_file = image.parent / "test_coco.json"
    ann = Path(ann_file)
    if not ann.is_file():
        raise DataError(f"{ann}: annotation file for the guard checkpoints not found")
    return ann, ann.parent


def check_guard_checkpoint(path: str | Path, model: str) -> ModelDescription:
    """The description of an existing ``DIR/MODEL/best.pth`` after checking that it is a
    checkpoint of ``model`` with a recorded validation AP (CheckpointError, one line, if not)."""
    path = Path(path)
    try:
        desc = describe(path)
    except FusePoseError as e:
        raise CheckpointError(f"{path}: unusable guard checkpoint ({e})") from None
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: unreadable guard checkpoint ({e})") from None
    if desc.model != model:
        raise CheckpointError(f"{path}: a checkpoint of {desc.model!r}, expected {model!r}")
    if desc.val_metric is None:
        raise CheckpointError(f"{path}: no validation AP recorded (not a finished training run)")
    return desc


def ensure_checkpoints(
    folder: str | Path,
    models: Sequence[str],
    *,
    ann_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    trainer: Trainer = train,
) -> dict[str, Path]:
    """``{model: DIR/MODEL/best.pth}`` for every model of ``models`` that has one there or a
    recipe in :data:`GUARD_RECIPES` (trained where missing).

    An existing ``best.pth`` is reused after :func:`check_guard_checkpoint` (a file of another
    model or without validation is an error, never overwritten); a run folder with only
    ``last.pth`` is resumed. ``ann_file``: the training / validation set (default: the shared
    COCO samples, :func:`guard_data`); ``overrides``: extra ``key=value`` config overrides (e.g.
    ``train.epochs=2`` in tests); ``trainer``: :func:`fusepose.engine.trainer.train`.
    """
    folder = Path(folder)
    out: dict[str, Path] = {}
    for model in models:
        run_dir = folder / model
        best = run_dir / "best.pth"
        if best.is_file():
            desc = check_guard_checkpoint(best, model)
            logger.info("%s: reusing %s (val AP %.4f)", model, best, desc.val_metric)
            out[model] = best
            continue
        recipe = GUARD_RECIPES.get(model)
        if recipe is None:
            logger.info("%s: no guard recipe and no %s; its guard stays on random weights",
                        model, best)  # fmt: skip
            continue
        ann, images = guard_data(ann_file)
        sets = [f"data.{k}_ann={ann}" for k in ("train", "val")]
        sets += [f"data.{k}_images={images}" for k in ("train", "val")]
        cfg = load_config(recipe, [*sets, *overrides])
        resume = "auto" if (run_dir / "last.pth").is_file() else None
        start = time.perf_counter()
        logger.info("%s: training the guard recipe %s into %s", model, recipe, run_dir)
        trainer(cfg, resume=resume, run_dir=run_dir, config_path=Path(recipe))
        if not best.is_file():
            raise CheckpointError(f"{best}: training {recipe} wrote no best.pth (no validation?)")
        desc = check_guard_checkpoint(best, model)
        logger.info("%s: trained in %.0f s, val AP %.4f", model, time.perf_counter() - start,
                    desc.val_metric)  # fmt: skip
        out[model] = best
    return out
