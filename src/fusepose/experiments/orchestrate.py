"""One orchestration for the experiments that train: data -> train -> evaluate -> JSON + plots.

The demo and the ablations run the same steps with different recipes:

    paths = prepare_data(out / "data", SynthSet(1200, 128), say=say)   # or given paths
    cfg = load_config(config, [*data_overrides(paths), *changes])
    run = train_run(cfg, out / "runs" / name, say=say)               # resumes a stopped run
    scores = evaluate_dataset(...)                                     # the one dataset loop
    write_json_atomic(out / "result.json", {**run.numbers(), **scores})
    plot_run_curves(run.run_dir, f"{name}: {run.trainer.state.global_step} steps")

:func:`prepare_data` renders a synthetic set once (a ``synth.json`` stamp records its settings;
a folder with the same stamp is reused) or checks given paths; :func:`train_run` builds the
:class:`~fusepose.engine.trainer.Trainer` (fixed epochs or ``train.time_budget_minutes``),
resumes from ``last.pth`` when asked, trains and times it; :class:`TrainedRun` gives the
numbers both write (steps, images seen, seconds, images/s, the budget's plan).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from fusepose.data.synth import PRESETS, generate_synthetic
from fusepose.engine.config import Config
from fusepose.engine.trainer import Trainer
from fusepose.errors import ConfigError
from fusepose.files import write_json_atomic
from fusepose.progress import Progress
from fusepose.visualization.plots import plot_training_curves

log = logging.getLogger(__name__)

__all__ = [
    "DATA_KEYS",
    "SynthSet",
    "TrainedRun",
    "check_data",
    "data_overrides",
    "plot_run_curves",
    "prepare_data",
    "read_csv",
    "train_run",
]

DATA_KEYS = ("train_ann", "train_images", "val_ann", "val_images")
Say = Callable[[str], None]


@dataclass(frozen=True)
class SynthSet:
    """A synthetic set to render (:func:`fusepose.data.synth.generate_synthetic`): ``images``
    square images of ``size`` px, the last ``val_fraction`` held out, rendering ``preset``."""

    images: int
    size: int
    seed: int = 0
    val_fraction: float = 0.1
    preset: str = "demo"


def check_data(data: dict[str, str]) -> dict[str, str]:
    """Given dataset paths: all four present, the files and folders there (before any work)."""
    missing = [k for k in DATA_KEYS if not data.get(k)]
    if missing:
        raise ConfigError(f"--data: missing {', '.join(missing)}")
    for key in ("train_ann", "val_ann"):
        if not Path(data[key]).is_file():
            raise ConfigError(f"{data[key]}: annotation file not found ({key})")
    for key in ("train_images", "val_images"):
        if not Path(data[key]).is_dir():
            raise ConfigError(f"{data[key]}: image folder not found ({key})")
    return data


def prepare_data(
    folder: Path,
    synth: SynthSet | None,
    given: dict[str, str] | None = None,
    *,
    say: Say | None = None,
) -> dict[str, str]:
    """The dataset paths (``train_ann, train_images, val_ann, val_images``): ``given``
    (checked), else ``synth`` rendered into ``folder`` (kept when ``folder/synth.json``
    records the same settings), else ``{}`` (the config's own paths)."""
    say = say or (lambda msg: log.info("%s", msg))
    if given:
        return check_data(given)
    if synth is None:
        return {}
    stamp = folder / "synth.json"
    settings = dataclasses.asdict(synth)
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        say(f"  reusing the synthetic set in {folder} (same settings: {stamp.name})")
    else:
        stamp.unlink(missing_ok=True)
        say(f"  rendering {synth.images} synthetic images ({synth.size} px, preset "
            f"'{synth.preset}') into {folder}")  # fmt: skip
        with Progress(synth.images, "render", unit="img") as bar:
            generate_synthetic(folder, synth.images, seed=synth.seed, size=synth.size,
                               val_fraction=synth.val_fraction, config=PRESETS[synth.preset],
                               progress=bar.update)  # fmt: skip
        write_json_atomic(stamp, settings, indent=2)
    return {"train_ann": str(folder / "train.json"), "train_images": str(folder / "images"),
            "val_ann": str(folder / "val.json"), "val_images": str(folder / "images")}  # fmt: skip


def data_overrides(paths: dict[str, str]) -> list[str]:
    """``data.KEY=VALUE`` config changes for the dataset paths."""
    return [f"data.{k}={v}" for k, v in paths.items()]


def read_csv(path: Path) -> list[dict[str, float | None]]:
    """A training CSV's rows as numbers (empty cells and text as None); [] if absent."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _num(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None


@dataclass
class TrainedRun:
    """A finished :func:`train_run`: the trainer, what ``fit`` returned, wall and CPU seconds
    of training (this process) and whether it resumed a stopped run."""

    trainer: Trainer
    result: dict[str, Any]
    seconds: float
    cpu_seconds: float
    resumed: bool

    @property
    def run_dir(self) -> Path:
        return self.trainer.run_dir

    @property
    def model(self) -> nn.Module:
        """The weights validation scores: the EMA when ``eval.use_ema`` and there is one."""
        t = self.trainer
        return t.ema.module if (t.ema is not None and t.cfg.eval.use_ema) else t.model

    def numbers(self) -> dict[str, Any]:
        """The training numbers the experiments report. ``train_step_seconds``: seconds in
        the training steps (the epochs' ``epoch_seconds`` in ``train.csv``, validation
        excluded); ``budget_step_share``: their share of the time budget (None without one)."""
        t = self.trainer
        cfg = t.cfg
        step_s = sum(r.get("epoch_seconds") or 0.0 for r in read_csv(self.run_dir / "train.csv"))
        plan = t.plan
        return {
            "epochs": plan.epochs if plan else cfg.train.epochs,
            "steps": t.state.global_step,
            "batch_size": cfg.train.batch_size,
            "train_images": len(t.train_set),
            "images_seen": t.state.images,
            "budget_minutes": plan.minutes if plan else None,
            "budget": plan.to_dict() if plan else None,
            "budget_step_share": step_s / (60.0 * plan.minutes) if plan else None,
            "train_seconds": self.seconds,
            "train_cpu_seconds": self.cpu_seconds,
            "train_step_seconds": step_s,
            "train_images_per_s": t.state.images / step_s if step_s else None,
            "resumed": self.resumed,
        }


def train_run(
    cfg: Config,
    run_dir: Path,
    *,
    config_path: str | Path | None = None,
    evaluator: Callable[..., dict[str, float]] | None = None,
    resume: bool = True,
    say: Say | None = None,
) -> TrainedRun:
    """Train ``cfg`` into ``run_dir``; with ``resume``, continue from ``run_dir/last.pth``
    when a run stopped there (a finished run trains no further step). A fresh run starts
    new training CSVs (an earlier run's rows would mix into the curves)."""
    say = say or (lambda msg: log.info("%s", msg))
    last = Path(run_dir) / "last.pth"
    resuming = resume and last.is_file()
    if not resuming:
        for name in ("train.csv", "train_steps.csv"):
            (Path(run_dir) / name).unlink(missing_ok=True)
    trainer = Trainer(cfg, run_dir=run_dir, config_path=config_path, evaluator=evaluator)
    resumed = trainer.resume(last) if resuming else False
    if resumed:
        say(f"  resuming {cfg.model.name} from {last} (epoch {trainer.state.epoch})")
    t0, c0 = time.perf_counter(), time.process_time()
    result = trainer.fit()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if not trainer.last_path.is_file():  # zero steps to go and no checkpoint yet
        trainer.save(trainer.last_path)
    return TrainedRun(trainer, result, seconds, cpu, resumed)


def plot_run_curves(run_dir: Path, title: str, *, path: Path | None = None,
                    metrics: Sequence[tuple[str, str]] = ()) -> Path:  # fmt: skip
    """``run_dir/curves.png`` (or ``path``): every loss part against the step
    (``train_steps.csv``) and the ``(column, label)`` pairs of ``metrics`` against the epoch
    (``train.csv``; the held-out AP by default); the last held-out AP joins the ``title``."""
    steps = read_csv(run_dir / "train_steps.csv")
    epochs = read_csv(run_dir / "train.csv")
    skip = {"epoch", "step", "global_step", "lr"}
    parts = [k for k in (steps[0] if steps else {}) if k not in skip]
    loss = {k: [(r["global_step"], r.get(k)) for r in steps] for k in parts}
    pairs = metrics or (("val_AP", "held-out AP"),)
    curves = {label: [(r["epoch"], r.get(col)) for r in epochs] for col, label in pairs}
    ap = epochs[-1].get("val_AP") if epochs else None
    full = title + (f", held-out AP {ap:.3f}" if ap is not None else "")
    return plot_training_curves(path or run_dir / "curves.png", loss, curves, title=full)
