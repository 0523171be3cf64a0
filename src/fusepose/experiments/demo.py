"""The demo: the whole pipeline on a CPU in minutes, from synthetic people to scored drawings.

1. render a synthetic multi-person COCO-format set (:mod:`fusepose.data.synth`, preset
   ``demo``: 1-3 people, front / back / side views, flip on) and split off held-out images;
2. score the untrained network on them (the reference);
3. train a reduced L-MFNet with the :class:`~fusepose.engine.trainer.Trainer`
   (``configs/lmfnet_synth-128_1xb8-9min.yaml``) to a time budget: by default what is left of
   the 10 minutes the README promises for the whole demo (:func:`default_minutes`), or
   ``minutes``; ``epochs`` trains the fixed epochs of the old recipe instead. The first epoch
   measures the speed; then the steps, the learning-rate schedule and the validation points
   are fixed to fill the budget (:mod:`fusepose.engine.budget`). Validation: COCO AP through
   the one dataset loop and the tag separation (:func:`~fusepose.engine.validate.tag_separation`);
4. score the final weights (the last validation's results) on all held-out images and on the
   one-, two- and three-person images separately;
5. draw held-out predictions beside the ground truth, plot the loss and AP curves, and write
   ``summary.json``.

The steps are the ablations' (:mod:`fusepose.experiments.orchestrate`) with the demo's recipe.

    summary = run_demo("runs/demo")
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusepose.cpu import cpu_model, isa_kind
from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.engine.config import BUNDLED, Config, load_config, resolve_config, validate_config
from fusepose.engine.distributed import init_distributed
from fusepose.engine.init import build_model
from fusepose.engine.validate import run_description, score_model, tag_separation
from fusepose.errors import ConfigError
from fusepose.evaluation import COCO_KEYS, evaluate_coco
from fusepose.experiments.orchestrate import (
    SynthSet,
    TrainedRun,
    data_overrides,
    plot_run_curves,
    prepare_data,
    train_run,
)
from fusepose.files import write_json_atomic
from fusepose.inference.dataset import scoring_sigmas
from fusepose.inference.predictor import Predictor
from fusepose.structures import PoseInstance, PoseResult
from fusepose.visualization.writer import ResultWriter, side_by_side

log = logging.getLogger(__name__)

__all__ = ["DEMO_CONFIG", "default_minutes", "people_subset", "run_demo", "score_by_people"]

DEMO_CONFIG = BUNDLED / "lmfnet_synth-128_1xb8-9min.yaml"  # package data (fusepose configs)
VAL_FRACTION = 0.1
TAG_KEYS = ("tag_separation", "tag_between", "tag_within", "tag_pairs_apart")
# the README's promise: the whole demo within 10 minutes on 2 CPU cores. The default budget
# aims at PROMISE_SHARE of it and keeps AFTER_TRAINING_S for what follows the last step
# (drawings, curves, summary: a few seconds) and the interpreter's start before run_demo.
PROMISE_MINUTES = 10.0
PROMISE_SHARE = 0.95
AFTER_TRAINING_S = 30.0


def default_minutes(config_minutes: float, elapsed_s: float) -> float:
    """The demo's default training budget: what is left of the promised minutes after
    ``elapsed_s`` seconds (rendering, the untrained scoring) and :data:`AFTER_TRAINING_S`, at
    most ``config_minutes`` (the recipe's budget), at least half a minute."""
    left = (PROMISE_MINUTES * 60.0 * PROMISE_SHARE - elapsed_s - AFTER_TRAINING_S) / 60.0
    return max(0.5, min(config_minutes, left))


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


class HeldOutScorer:
    """The demo's evaluator: COCO AP (:func:`~fusepose.engine.validate.score_model`) and tag
    separation of the held-out images; keeps the latest validation's results (the final
    weights' after the last step) so the final scoring does not run the network again."""

    def __init__(self, desc: Any) -> None:
        self.desc = desc
        self.scored: dict[str, Any] | None = None
        self.tags: dict[str, Any] | None = None

    def __call__(self, model: torch.nn.Module, cfg: Config, device: Any) -> dict[str, float]:
        self.scored = score_model(model, cfg, device, self.desc)
        self.tags = tag_separation(model, cfg, device, self.desc)
        return {**{k: float(self.scored[k]) for k in COCO_KEYS},
                **{k: v for k, v in self.tags.items() if k in TAG_KEYS}}  # fmt: skip


def _length_changes(epochs: int | None, minutes: float | None) -> list[str]:
    """Config changes for ``--epochs`` (fixed epochs, budget off) or ``--minutes``."""
    if epochs is not None and minutes is not None:
        raise ConfigError("--epochs and --minutes: give one (epochs: the fixed schedule; "
                          "minutes: a time budget)")  # fmt: skip
    if minutes is not None and not minutes > 0:
        raise ConfigError(f"--minutes: need a number of minutes > 0 (got {minutes})")
    if epochs is not None:
        return [f"train.epochs={epochs}", "train.time_budget_minutes=0"]
    return [f"train.time_budget_minutes={minutes}"] if minutes is not None else []


def run_demo(
    out: str | Path = "runs/demo",
    *,
    images: int = 1200,
    epochs: int | None = None,
    minutes: float | None = None,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    draw: int = 8,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the summary (also ``out/summary.json``).

    ``images``: synthetic images to render (10 % held out); ``minutes``: the training budget
    (steps and validations; default :func:`default_minutes` when the config trains to a
    budget); ``epochs``: the fixed schedule instead (``epochs=9``: the old recipe,
    ``lmfnet_synth-128_1xb8-9e``); ``overrides``: ``KEY=VALUE`` config changes; ``draw``:
    held-out images drawn.
    """
    say = say or (lambda msg: log.info("%s", msg))
    clock = (time.perf_counter(), time.process_time())
    if images < 20:
        raise ConfigError(f"--images: need at least 20 images (got {images})")
    if draw < 0:
        raise ConfigError(f"--draw: need a number of images >= 0 (got {draw})")
    out = Path(out)
    config_path = resolve_config(config) if config else DEMO_CONFIG
    changes = [*_length_changes(epochs, minutes), *overrides]
    base = validate_config(load_config(config_path, changes), str(config_path))  # before work
    out.mkdir(parents=True, exist_ok=True)
    size = int(base.data.input_size[0])
    say(f"[1/5] the synthetic people: {images} images of {size} px, {VAL_FRACTION:.0%} held out")
    t0 = time.perf_counter()
    paths = prepare_data(out / "synth", SynthSet(images, size, seed, VAL_FRACTION), say=say)
    render_s = time.perf_counter() - t0
    subsets = {n: people_subset(paths["val_ann"], n, out / "synth" / f"val_{n}people.json")
               for n in (1, 2, 3)}  # fmt: skip
    cfg = load_config(config_path, [*data_overrides(paths), *changes])
    say(f"[2/5] scoring the untrained network on {Path(paths['val_ann']).name} (held out)")
    untrained = _score_untrained(cfg)
    chosen = any(o.split("=")[0].strip() == "train.time_budget_minutes" for o in overrides)
    if minutes is None and epochs is None and not chosen and cfg.train.time_budget_minutes > 0:
        fit = default_minutes(cfg.train.time_budget_minutes, time.perf_counter() - clock[0])
        cfg = load_config(config_path, [*data_overrides(paths), *changes,
                                        f"train.time_budget_minutes={fit:.4f}"])  # fmt: skip
    run, scorer = _train(cfg, out / "train", config_path, say)
    summary = _summarise(run, scorer, untrained, subsets, out, draw, say)
    summary.update(render_seconds=render_s, config=str(config_path),
                   total_seconds=time.perf_counter() - clock[0],
                   total_cpu_seconds=time.process_time() - clock[1])  # fmt: skip
    write_json_atomic(out / "summary.json", summary, indent=2)
    return summary


def untrained_model(cfg: Config) -> tuple[torch.nn.Module, torch.device]:
    """The network the trainer of ``cfg`` starts from (built after the same seeding, so with
    the same weights), on the run's device, with the run's CPU threads."""
    device = init_distributed(cfg.runtime.device)[3]
    if cfg.runtime.num_threads > 0:
        torch.set_num_threads(cfg.runtime.num_threads)
    torch.manual_seed(cfg.train.seed)
    model, _ = build_model(cfg, None)
    fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    return model.to(device).to(memory_format=fmt), device


def _score(scorer: HeldOutScorer, model: torch.nn.Module, cfg: Config, device: Any) -> None:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scorer(model, cfg, device)
    model.train(was_training)


def _score_untrained(cfg: Config) -> dict[str, Any]:
    """The untrained network scored on the held-out images: AP, AP50, tag separation."""
    model, device = untrained_model(cfg)
    scorer = HeldOutScorer(run_description(cfg))
    _score(scorer, model, cfg, device)
    assert scorer.scored is not None and scorer.tags is not None
    return {"AP_untrained": float(scorer.scored["AP"]), "AP50_untrained": float(
        scorer.scored["AP50"]), "tag_separation_untrained": scorer.tags["tag_separation"]}  # fmt: skip


def _train(cfg: Config, run_dir: Path, config_path: Path, say: Callable[[str], None]
           ) -> tuple[TrainedRun, HeldOutScorer]:  # fmt: skip
    """Step 3: a fresh training run, validated by a :class:`HeldOutScorer`."""
    scorer = HeldOutScorer(run_description(cfg))
    t = cfg.train
    length = (f"a time budget of {t.time_budget_minutes:.2f} min (the first epoch measures the "
              f"speed, then the steps are fixed)" if t.time_budget_minutes > 0 else
              f"{t.epochs} epochs, validating every {cfg.eval.interval} epoch(s)")  # fmt: skip
    say(f"[3/5] training {cfg.model.name} on {Path(cfg.data.train_ann).name}: {length}, "
        f"batch {t.batch_size}")  # fmt: skip
    run = train_run(cfg, run_dir, config_path=config_path, evaluator=scorer, resume=False, say=say)
    return run, scorer


def _summarise(run: TrainedRun, scorer: HeldOutScorer, untrained: dict[str, Any],
               subsets: dict[int, tuple[Path, int]], out: Path, draw: int,
               say: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """Steps 4 and 5: the final scores (all, 1, 2, 3 people), drawings, curves; the summary."""
    trainer, cfg = run.trainer, run.trainer.cfg
    say("[4/5] scoring the final weights on the held-out images (all, 1, 2 and 3 people)")
    if scorer.scored is None:  # eval.interval 0: no validation ran
        _score(scorer, run.model, cfg, trainer.device)
    scored, tags = scorer.scored, scorer.tags
    assert scored is not None and tags is not None
    by_people = score_by_people(scored["results"], subsets, backend=cfg.eval.backend,
                                sigmas=scoring_sigmas(trainer.description.skeleton))  # fmt: skip
    say("[5/5] drawing held-out predictions beside the ground truth; plotting the curves")
    drawn = draw_predictions(run.model, trainer.description, cfg, trainer.device,
                             out / "predictions", draw)  # fmt: skip
    steps = trainer.state.global_step
    curves = plot_run_curves(run.run_dir, f"fusepose demo: {steps} steps", metrics=(
        ("val_AP", "held-out AP"), ("val_AP50", "held-out AP50"),
        ("val_tag_pairs_apart", "tag pairs apart")))  # fmt: skip
    numbers = run.numbers()
    return {
        **{k: float(scored[k]) for k in ("AP", "AP50", "AP75", "AR")},
        "AP_2people": by_people[2]["AP"],
        "AP_3people": by_people[3]["AP"],
        "AP_1person": by_people[1]["AP"],
        "AP50_2people": by_people[2]["AP50"],
        "AP50_3people": by_people[3]["AP50"],
        "val_images_by_people": {str(n): v["images"] for n, v in by_people.items()},
        **{k: tags[k] for k in TAG_KEYS},
        "tag_pairs": tags["tag_pairs"],
        **untrained,
        "model": trainer.model_name,
        "params_m": sum(p.numel() for p in trainer.model.parameters()) / 1e6,
        "input_size": list(cfg.data.input_size),
        **{k: numbers[k] for k in ("epochs", "steps", "batch_size", "train_images")},
        "val_images": len(load_coco_keypoints(cfg.data.val_ann).image_ids),
        **{
            k: v
            for k, v in numbers.items()
            if k not in ("epochs", "steps", "batch_size", "train_images", "resumed")
        },  # fmt: skip
        "torch_threads": torch.get_num_threads(),
        "device": str(trainer.device),
        "cpu": cpu_model(),
        "isa_kind": isa_kind(),
        "logical_cpus": os.cpu_count(),
        "final_loss": run.result["last"].get("loss"),
        "run_dir": str(run.run_dir),
        "summary": str(out / "summary.json"),
        "curves": str(curves),
        "predictions": [str(p) for p in drawn],
    }


# The drawing step. It is to be replaced by the library's output writer (results that draw
# and save themselves) once that exists; until then the demo draws here, and only here.
def draw_predictions(model: torch.nn.Module, desc: Any, cfg: Config, device: Any, folder: Path,
                     limit: int) -> list[Path]:  # fmt: skip
    """Held-out images: prediction (left) beside the ground truth (right), 3x enlarged, as
    ``folder/<image>_pred_gt.png`` through the one result writer; returns the paths."""
    index = load_coco_keypoints(cfg.data.val_ann)
    predictor = Predictor(model, device=str(device), description=desc)
    writer = ResultWriter(save_vis=folder, skeleton=predictor.skeleton)
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
        panels = [result.plot(img, predictor.skeleton, kpt_thr=0.1),
                  gt.plot(img, predictor.skeleton, kpt_thr=0.5)]  # fmt: skip
        canvas = side_by_side(panels, ["prediction", "ground truth"])
        written.append(writer.write_image(f"{Path(name).stem}_pred_gt.png", canvas))
    return written
