"""The demo: the whole pipeline on a CPU in minutes, from synthetic people to scored drawings.

1. render a synthetic multi-person COCO-format set (:mod:`fusepose.data.synth`, preset
   ``demo``: 1-3 people, front / back / side views, flip on) and split off held-out images;
2. train a reduced L-MFNet with the :class:`~fusepose.engine.trainer.Trainer`
   (``configs/lmfnet_synth-*.yaml``), validating every ``eval.interval`` epochs: COCO AP through
   :func:`~fusepose.engine.validate.evaluate_model` (the one dataset loop) and tag separation
   (:func:`~fusepose.engine.validate.tag_separation`);
3. score the final weights on the held-out images, on their two- and three-person images
   separately, and beside the same network untrained;
4. draw held-out predictions (:class:`~fusepose.inference.Predictor`) beside the ground truth,
   plot the loss and AP curves, and write ``summary.json``.

    summary = run_demo("runs/demo")
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.data.synth import PRESETS, generate_synthetic
from fusepose.engine.config import BUNDLED, Config, load_config, resolve_config, validate_config
from fusepose.engine.trainer import Trainer
from fusepose.engine.validate import evaluate_model, score_model, tag_separation
from fusepose.errors import ConfigError
from fusepose.evaluation import COCO_KEYS, evaluate_coco
from fusepose.files import write_json_atomic
from fusepose.inference.dataset import scoring_sigmas
from fusepose.inference.predictor import Predictor
from fusepose.structures import PoseInstance, PoseResult
from fusepose.visualization.plots import plot_training_curves
from fusepose.visualization.skeleton import draw_poses

log = logging.getLogger(__name__)

__all__ = ["DEMO_CONFIG", "people_subset", "run_demo", "score_by_people"]

DEMO_CONFIG = BUNDLED / "lmfnet_synth-128_1xb8-9e.yaml"  # package data (fusepose configs)
VAL_FRACTION = 0.1
TAG_KEYS = ("tag_separation", "tag_between", "tag_within", "tag_pairs_apart")


def people_subset(ann_file: str | Path, people: int, out: str | Path) -> tuple[Path, int]:
    """Write the images of ``ann_file`` with exactly ``people`` annotated people (crowd regions
    not counted) and their annotations to ``out``; returns ``(out, number of images)``."""
    data = json.loads(Path(ann_file).read_text())
    count: dict[int, int] = {}
    for a in data["annotations"]:
        if not a.get("iscrowd"):
            count[a["image_id"]] = count.get(a["image_id"], 0) + 1
    keep = {im["id"] for im in data["images"] if count.get(im["id"], 0) == people}
    subset = {**data, "images": [im for im in data["images"] if im["id"] in keep],
              "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}  # fmt: skip
    write_json_atomic(out, subset)
    return Path(out), len(keep)


def score_by_people(
    results: list[dict[str, Any]],
    subsets: dict[int, tuple[Path, int]],
    *,
    backend: str = "pycocotools",
    sigmas: Any = None,
) -> dict[int, dict[str, Any]]:
    """COCO AP / AP50 of ``results`` (one pass over the whole held-out set) on each subset
    ``{people: (ann_file, images)}`` of :func:`people_subset`: the results of the subset's
    images scored against its ground truth. Empty subsets get ``None``."""
    out = {}
    for n, (ann, count) in subsets.items():
        m: dict[str, Any] = {}
        if count:
            ids = set(load_coco_keypoints(ann).image_ids)
            m = evaluate_coco(ann, [r for r in results if r["image_id"] in ids],
                              backend=backend, sigmas=sigmas, per_keypoint=False)  # fmt: skip
        out[n] = {"images": count, "AP": m.get("AP"), "AP50": m.get("AP50")}
    return out


def run_demo(
    out: str | Path = "runs/demo",
    *,
    images: int = 1200,
    epochs: int | None = None,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    draw: int = 8,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the summary (also ``out/summary.json``).

    ``images``: synthetic images to render (10 % held out); ``epochs`` / ``overrides``:
    config changes (``train.epochs``, ``KEY=VALUE`` strings); ``draw``: held-out images drawn.
    """
    say = say or (lambda msg: log.info("%s", msg))
    t_start = time.perf_counter()
    c_start = time.process_time()
    if images < 20:
        raise ConfigError(f"--images: need at least 20 images (got {images})")
    if draw < 0:
        raise ConfigError(f"--draw: need a number of images >= 0 (got {draw})")
    out = Path(out)
    config_path = resolve_config(config) if config else DEMO_CONFIG
    changes = [*([f"train.epochs={epochs}"] if epochs is not None else []), *overrides]
    base = validate_config(load_config(config_path, changes), str(config_path))  # before work
    out.mkdir(parents=True, exist_ok=True)
    size = int(base.data.input_size[0])
    data_dir = out / "synth"
    say(f"[1/5] rendering {images} synthetic images ({size} px, preset 'demo') into {data_dir}")
    from tqdm import tqdm

    t0 = time.perf_counter()
    with tqdm(total=images, desc="render", unit="img", leave=False) as bar:
        paths = generate_synthetic(data_dir, images, seed=seed, size=size,
                                   val_fraction=VAL_FRACTION, config=PRESETS["demo"],
                                   progress=bar.update)  # fmt: skip
    render_s = time.perf_counter() - t0
    subsets = {n: people_subset(paths["val"], n, data_dir / f"val_{n}people.json")
               for n in (1, 2, 3)}  # fmt: skip
    cfg = load_config(config_path, [
        f"data.train_ann={paths['train']}", f"data.train_images={paths['images']}",
        f"data.val_ann={paths['val']}", f"data.val_images={paths['images']}", *changes,
    ])  # fmt: skip
    run_dir = out / "train"

    torch.manual_seed(cfg.train.seed)
    desc_holder: dict[str, Any] = {}

    last_val: dict[str, Any] = {}  # the latest validation's results: the final weights' at the end

    def evaluator(model, c, device) -> dict[str, float]:
        desc = desc_holder["desc"]
        last_val["scored"] = score_model(model, c, device, desc)
        last_val["tags"] = tag_separation(model, c, device, desc)
        return {**{k: float(last_val["scored"][k]) for k in COCO_KEYS},
                **{k: v for k, v in last_val["tags"].items() if k in TAG_KEYS}}  # fmt: skip

    trainer = Trainer(cfg, run_dir=run_dir, config_path=config_path, evaluator=evaluator)
    desc_holder["desc"] = trainer.description
    device = trainer.device
    say(f"[2/5] scoring the untrained network on {paths['val'].name} (held out)")
    untrained = evaluate_model(trainer.model, cfg, device, trainer.description)
    untrained_tags = tag_separation(trainer.model, cfg, device, trainer.description)

    n_train = len(trainer.train_set)
    steps = trainer.steps_per_epoch * cfg.train.epochs
    say(f"[3/5] training {trainer.model_name} ({_params(trainer.model):.2f} M params) on "
        f"{n_train} images: {cfg.train.epochs} epochs x {trainer.steps_per_epoch} steps of "
        f"{cfg.train.batch_size}, validating every {cfg.eval.interval} epoch(s)")  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    result = trainer.fit()
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    epoch_s = _train_seconds(run_dir / "train.csv")
    images_seen = min(n_train, trainer.steps_per_epoch * cfg.train.batch_size) * cfg.train.epochs
    model = trainer.ema.module if (trainer.ema is not None and cfg.eval.use_ema) else trainer.model

    say("[4/5] scoring the final weights on the held-out images (all, 1, 2 and 3 people)")
    # the trainer validates after the last epoch: those are the final weights' results (one
    # pass over the held-out images); the 1-, 2- and 3-person scores are the same results
    # scored against each subset's ground truth
    if not last_val:  # eval.interval 0: no validation ran
        last_val["scored"] = score_model(model, cfg, device, trainer.description)
        last_val["tags"] = tag_separation(model, cfg, device, trainer.description)
    scored, tags = last_val["scored"], last_val["tags"]
    trained = {k: float(scored[k]) for k in COCO_KEYS}
    by_people = score_by_people(scored["results"], subsets, backend=cfg.eval.backend,
                                sigmas=scoring_sigmas(trainer.description.skeleton))  # fmt: skip

    say("[5/5] drawing held-out predictions beside the ground truth; plotting the curves")
    drawn = _draw(model, trainer.description, cfg, device, out / "predictions", draw)
    curves = _plot_curves(run_dir, run_dir / "curves.png", steps)
    summary = {
        "AP": trained["AP"],
        "AP50": trained["AP50"],
        "AP75": trained["AP75"],
        "AR": trained["AR"],
        "AP_2people": by_people[2]["AP"],
        "AP_3people": by_people[3]["AP"],
        "AP_1person": by_people[1]["AP"],
        "AP50_2people": by_people[2]["AP50"],
        "AP50_3people": by_people[3]["AP50"],
        "val_images_by_people": {str(n): v["images"] for n, v in by_people.items()},
        **{k: tags[k] for k in TAG_KEYS},
        "tag_pairs": tags["tag_pairs"],
        "AP_untrained": untrained["AP"],
        "AP50_untrained": untrained["AP50"],
        "tag_separation_untrained": untrained_tags["tag_separation"],
        "model": trainer.model_name,
        "params_m": _params(trainer.model),
        "input_size": list(cfg.data.input_size),
        "epochs": cfg.train.epochs,
        "steps": steps,
        "batch_size": cfg.train.batch_size,
        "train_images": n_train,
        "val_images": len(load_coco_keypoints(paths["val"]).image_ids),
        "images_seen": images_seen,
        "render_seconds": render_s,
        "train_seconds": train_s,
        "train_cpu_seconds": train_cpu_s,
        "train_step_seconds": epoch_s,
        "train_images_per_s": images_seen / epoch_s if epoch_s else None,
        "total_seconds": time.perf_counter() - t_start,
        "total_cpu_seconds": time.process_time() - c_start,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "final_loss": result["last"].get("loss"),
        "config": str(config_path),
        "run_dir": str(run_dir),
        "summary": str(out / "summary.json"),
        "curves": str(curves),
        "predictions": [str(p) for p in drawn],
    }
    write_json_atomic(out / "summary.json", summary, indent=2)
    return summary


def _params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def _read_csv(path: Path) -> list[dict[str, float]]:
    import csv

    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: _num(v) for k, v in row.items()})
    return rows


def _num(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None


def _train_seconds(path: Path) -> float:
    """Seconds spent in the training steps themselves (validation excluded)."""
    return float(sum(r.get("epoch_seconds") or 0.0 for r in _read_csv(path)))


def _plot_curves(run_dir: Path, path: Path, steps_done: int) -> Path:
    """Loss parts against the step (train_steps.csv, every ``train.log_interval`` steps) and
    held-out AP / AP50 / tag pairs apart against the epoch (train.csv); ``steps_done``: the
    optimiser steps taken, for the title."""
    steps = _read_csv(run_dir / "train_steps.csv")
    epochs = _read_csv(run_dir / "train.csv")
    loss = {k: [(r["global_step"], r.get(k)) for r in steps]
            for k in ("loss", "heatmap_s4", "heatmap_s2", "push", "pull")}  # fmt: skip
    metrics = {
        "held-out AP": [(r["epoch"], r.get("val_AP")) for r in epochs],
        "held-out AP50": [(r["epoch"], r.get("val_AP50")) for r in epochs],
        "tag pairs apart": [(r["epoch"], r.get("val_tag_pairs_apart")) for r in epochs],
    }
    ap = epochs[-1].get("val_AP") if epochs else None
    title = f"fusepose demo: {steps_done} steps" + (
        f", held-out AP {ap:.3f}" if ap is not None else ""
    )
    return plot_training_curves(path, loss, metrics, title=title)


def _draw(model, desc, cfg: Config, device, folder: Path, limit: int) -> list[Path]:
    """Held-out images: prediction (left) beside the ground truth (right), 3x enlarged."""
    folder.mkdir(parents=True, exist_ok=True)
    index = load_coco_keypoints(cfg.data.val_ann)
    predictor = Predictor(model, device=str(device), description=desc)
    written = []
    for iid in index.image_ids[:limit]:
        name = str(index.images[iid]["file_name"])
        img = read_image(Path(cfg.data.val_images) / name)
        result = predictor.predict_frame(img, image_id=iid)
        gt = PoseResult(
            [PoseInstance(a.keypoints[:, :2], (a.keypoints[:, 2] > 0).astype(np.float64), 1.0)
             for a in index.annotations[iid] if not a.iscrowd],
            image_size=img.shape[:2],
        )  # fmt: skip
        pred_img = draw_poses(img, result, predictor.skeleton, kpt_thr=0.1)
        gt_img = draw_poses(img, gt, predictor.skeleton, kpt_thr=0.5)
        canvas = np.concatenate([pred_img, np.full((img.shape[0], 4, 3), 255, np.uint8), gt_img], 1)
        canvas = cv2.resize(canvas, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
        for text, x in (("prediction", 6), ("ground truth", 3 * (img.shape[1] + 4) + 6)):
            cv2.putText(canvas, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2)
            cv2.putText(canvas, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
        path = folder / f"{Path(name).stem}_pred_gt.png"
        cv2.imwrite(str(path), canvas)
        written.append(path)
    return written
