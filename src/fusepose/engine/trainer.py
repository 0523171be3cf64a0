"""The training loop: plain and readable, torchvision-references style.

    cfg = load_config("configs/lmfnet_synth-128_1xb8-8e.yaml")
    result = train(cfg, resume="auto")

One process per device; under ``torchrun`` the default process group is initialised from the
environment (NCCL on GPU, Gloo on CPU), the model is wrapped in DDP and rank 0 alone logs and
writes checkpoints. The run lasts ``train.epochs`` epochs, or fills ``train.time_budget_minutes``
(:mod:`fusepose.engine.budget`: the first epoch measures the speed, then the steps, the LR
schedule and the validation points are fixed and stored in the checkpoints). The sample order
is a seeded permutation per epoch (:class:`EpochSampler`), and augmentation randomness is
re-seeded per (seed, epoch, sample index), so a run resumed from a mid-epoch checkpoint sees
exactly the batches the interrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fusepose.data.collate import collate
from fusepose.engine import distributed as dist_utils
from fusepose.engine.budget import BudgetPlan, RunLength
from fusepose.engine.checkpoint import (
    FORMAT_VERSION,
    get_rng_state,
    load_checkpoint,
    plain_scheduler_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from fusepose.engine.config import (
    Config,
    DataConfig,
    PretrainConfig,
    config_to_dict,
    run_folder,
    save_config,
    validate_config,
)
from fusepose.engine.data import SeededDataset, build_dataset, target_codec, to_device
from fusepose.engine.ema import ModelEMA
from fusepose.engine.init import build_model, freeze_batchnorm, init_from_scratch, unwrap
from fusepose.engine.logger import MetricLogger, epoch_lines
from fusepose.engine.optim import build_optimizer, lr_factor
from fusepose.engine.validate import evaluate_model, run_description
from fusepose.errors import CheckpointError, ConfigError, FusePoseError, NonFiniteLossError
from fusepose.family import BOTTOM_UP, get_family
from fusepose.losses import build_loss, loss_options
from fusepose.losses.ae import AE_TYPES
from fusepose.modelcheck import check_fits, state_tensors
from fusepose.models.pretrained import BackboneReport
from fusepose.models.registry import list_models
from fusepose.progress import Progress

__all__ = [
    "NonFiniteLossError",
    "Trainer",
    "TrainState",
    "build_dataset",
    "build_optimizer",
    "evaluate_model",
    "init_from_scratch",
    "lr_factor",
    "train",
]

log = logging.getLogger(__name__)

Batch = dict[str, Any]
# (model, config, device) -> metrics dict with cfg.eval.metric among its keys
Evaluator = Callable[..., dict[str, float]]


# ---------------------------------------------------------------------------------- trainer


@dataclasses.dataclass
class TrainState:
    epoch: int = 0  # epoch in progress (0-based)
    step: int = 0  # optimiser steps already done within `epoch`
    global_step: int = 0
    best_metric: float = -math.inf
    seconds: float = 0.0  # wall seconds of training steps and validations, resumes included
    images: int = 0  # training images seen (all processes)


class Trainer:
    """Owns model, optimiser, schedule, scaler, EMA, data and the run folder.

    ``model``, ``train_set``, ``loss_fn`` and ``evaluator`` may be passed in (tests, custom
    experiments, ``fusepose pretrain`` with a :class:`PretrainConfig`); otherwise they are
    built from ``cfg`` with the registry, ``fusepose.data``, ``fusepose.losses`` and
    :func:`evaluate_model`. ``loss_fn(outputs, batch) -> (loss scalar, dict of detached
    parts)``. ``model.pretrained`` initialises the backbone of a model built here (the report
    is logged and written to ``run_dir/pretrained.json``).
    """

    def __init__(
        self,
        cfg: Config | PretrainConfig,
        *,
        run_dir: str | Path | None = None,
        model: nn.Module | None = None,
        train_set: Dataset | None = None,
        loss_fn: nn.Module | None = None,
        evaluator: Evaluator | None = None,
        collate_fn: Callable[..., Batch] | None = None,
        config_path: str | Path | None = None,
    ) -> None:
        if model is None:  # a custom module brings its own name and sizes
            validate_config(cfg, str(config_path or "config"))
        self.cfg = cfg
        self.distributed, self.rank, self.world, self.device = dist_utils.init_distributed(
            cfg.runtime.device
        )
        self.main = self.rank == 0
        if cfg.runtime.num_threads > 0:
            torch.set_num_threads(cfg.runtime.num_threads)
        seed_everything(cfg.train.seed + self.rank)
        self.run_dir = self._prepare_run_dir(cfg, run_dir, config_path)

        self.pretrained: BackboneReport | None = None
        if model is None:
            model, self.pretrained = build_model(cfg, self.run_dir if self.main else None)
        info = getattr(model, "info", None)
        self.family = get_family(getattr(info, "kind", BOTTOM_UP))
        self.kind = self.family.name
        # a registered model's name, or the name a custom module gives itself
        self.model_name = getattr(info, "name", None) or getattr(
            model, "model_name", type(model).__name__
        )
        self.num_keypoints = int(
            getattr(info, "num_keypoints", getattr(cfg.model, "num_keypoints", 0))
        )
        model = self._place_model(model)

        # what checkpoints carry to run the model (registered models only; a custom module
        # passed in has no registry entry to rebuild it from)
        self.description = run_description(cfg) if self.model_name in list_models() else None
        self.best_val: dict[str, Any] | None = None

        if loss_fn is None:
            lc = cfg.loss
            if lc.ae_type not in AE_TYPES:
                raise ConfigError(f"loss.ae_type: {lc.ae_type!r} is not one of {AE_TYPES}")
            loss_fn = build_loss(self.family, self.num_keypoints, **loss_options(self.family, lc))
        self.loss_fn = loss_fn
        self._build_data(cfg, train_set, collate_fn)
        self.evaluator = evaluator
        # epochs, or a time budget (its plan made after the probe, or read back by resume)
        self.length = RunLength(cfg.train.epochs, self.steps_per_epoch,
                                cfg.train.time_budget_minutes, cfg.eval.interval,
                                agree=dist_utils.broadcast_object)  # fmt: skip
        self._build_optimisation(cfg, model)
        self.state = TrainState()
        self.logger = MetricLogger(
            self.run_dir, enabled=self.main, tensorboard=cfg.runtime.tensorboard
        )

    def _prepare_run_dir(
        self, cfg: Config | PretrainConfig, run_dir: str | Path | None, config_path: Any
    ) -> Path:
        """The run folder (made on rank 0, with the resolved config.yaml, stale temp files of a
        killed checkpoint write removed)."""
        out = run_folder(cfg, run_dir, config_path)
        if self.main:
            out.mkdir(parents=True, exist_ok=True)
            for stale in out.glob(".*.pth.*.tmp"):
                stale.unlink(missing_ok=True)
            save_config(cfg, out / "config.yaml")
        dist_utils.barrier()
        return out

    def _place_model(self, model: nn.Module) -> nn.Module:
        """The model on its device and memory format (SyncBN under DDP on GPUs); its EMA."""
        cfg = self.cfg
        model.to(self.device)
        self.memory_format = (
            torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        )
        model.to(memory_format=self.memory_format)
        if cfg.train.sync_bn and self.distributed and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.ema = ModelEMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
        return model

    def _build_data(
        self, cfg: Config | PretrainConfig, train_set: Dataset | None, collate_fn: Any
    ) -> None:
        """The training set (built from the config unless given), its sampler and the steps
        per epoch."""
        rng = None
        if train_set is None:
            if self.description is None:
                raise ConfigError(f"model.name: {self.model_name!r} is not a registered model")
            self.codec = target_codec(self.description, cfg)
            rng = np.random.default_rng(cfg.train.seed)
            train_set = build_dataset(cfg, self.description, self.codec, train=True, rng=rng)
        self.train_set = SeededDataset(train_set, cfg.train.seed, rng)
        self.sampler = dist_utils.EpochSampler(
            len(train_set), shuffle=True, seed=cfg.train.seed, rank=self.rank, world_size=self.world
        )
        self.collate_fn = collate_fn or collate
        b = cfg.train.batch_size
        self.steps_per_epoch = math.ceil(len(self.sampler) / b)
        if cfg.train.max_steps_per_epoch > 0:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.train.max_steps_per_epoch)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"data: the training set is empty ({len(train_set)} samples)")

    def _build_optimisation(self, cfg: Config | PretrainConfig, model: nn.Module) -> None:
        """Optimiser, LR schedule (epochs or the budget's plan), AMP scaler, DDP wrapper."""
        self.optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
        spe = self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda it: lr_factor(it, cfg, spe, self.length.plan, budgeted=self.length.budgeted),
        )
        self.use_amp = cfg.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp: nn.Module = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        else:
            self.ddp = model

    # -------------------------------------------------------------------- checkpointing

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pth"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pth"

    def checkpoint_dict(self) -> dict[str, Any]:
        m = unwrap(self.ddp)
        return {
            "format_version": FORMAT_VERSION,
            "model_name": self.model_name,
            "model_config": config_to_dict(self.cfg.model),
            "config": config_to_dict(self.cfg),
            "state_dict": m.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": plain_scheduler_state(self.scheduler.state_dict()),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.state.epoch,
            "step": self.state.step,
            "global_step": self.state.global_step,
            "best_metric": self.state.best_metric,
            "train_seconds": self.state.seconds,
            "images_seen": self.state.images,
            "budget": self.plan.to_dict() if self.plan is not None else None,
            "rng": get_rng_state(),
            **({"description": self.description.replace(val=self.best_val).to_dict()}
               if self.description is not None else {"val": self.best_val}),
        }  # fmt: skip

    def save(self, path: Path) -> None:
        if self.main:
            save_checkpoint(path, self.checkpoint_dict())
        dist_utils.barrier()

    def resume(self, resume: str | Path) -> bool:
        """Load ``resume`` (a path, or ``"auto"`` = run_dir/last.pth if it exists)."""
        if str(resume) == "auto":
            path = self.last_path
            if not path.is_file():
                log.info("no %s yet: starting a new run", path)
                return False
        else:
            path = Path(resume)
        ckpt = load_checkpoint(path)
        if ckpt["model_name"] != self.model_name:
            raise CheckpointError(
                f"{path}: checkpoint is for {ckpt['model_name']}, not {self.model_name}"
            )
        for key in ("optimizer", "scheduler", "epoch", "step"):
            if ckpt.get(key) is None:
                raise CheckpointError(f"{path}: has no {key!r}: weights only, cannot resume")
        model = unwrap(self.ddp)  # the run's architecture: refused with the first misfits
        check_fits(model.state_dict(), state_tensors(ckpt["state_dict"], str(path)), str(path),
                   f"this run's {self.model_name} (resume a run of the same config)")  # fmt: skip
        try:  # the rest of the file is data too: a malformed field is one line, not a trace
            self._restore(ckpt, path)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            if isinstance(e, FusePoseError):
                raise
            raise CheckpointError(f"{path}: cannot resume from it ({type(e).__name__}: "
                                  f"{' '.join(str(e).split())[:200]})") from None  # fmt: skip
        desc = ckpt.get("description")
        self.best_val = desc.get("val") if isinstance(desc, dict) else ckpt.get("val")
        log.info("resumed from %s at epoch %d, step %d", path, self.state.epoch, self.state.step)
        return True

    def _restore(self, ckpt: dict[str, Any], path: Path) -> None:
        """The weights, plan, optimiser, scaler, EMA, counters and RNG of a checked file."""
        unwrap(self.ddp).load_state_dict(ckpt["state_dict"])
        if ckpt.get("budget"):  # the run's plan, not one for this machine's speed
            self.length.restore(BudgetPlan.from_dict(ckpt["budget"], str(path)))
            log.info("%s: continuing its time budget's plan (%.4g min, %d steps)", path,
                     self.plan.minutes, self.plan.total_steps)  # fmt: skip
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        self.state = TrainState(
            epoch=int(ckpt["epoch"]), step=int(ckpt["step"]),
            global_step=int(ckpt.get("global_step", 0)),
            best_metric=float(ckpt.get("best_metric", -math.inf)),
            seconds=float(ckpt.get("train_seconds") or 0.0),
            images=int(ckpt.get("images_seen") or 0),
        )  # fmt: skip
        if ckpt.get("rng") is not None:
            set_rng_state(ckpt["rng"])

    # --------------------------------------------------------------------------- training

    def _loader(self, epoch: int, start_step: int) -> DataLoader:
        b = self.cfg.train.batch_size
        self.sampler.set_epoch(epoch, start=start_step * b)
        self.train_set.epoch = epoch
        return DataLoader(self.train_set, batch_size=b, sampler=self.sampler,
                          num_workers=self.cfg.data.num_workers, collate_fn=self.collate_fn,
                          pin_memory=self.device.type == "cuda", drop_last=False,
                          persistent_workers=False)  # fmt: skip

    def _set_train_mode(self) -> None:
        self.ddp.train()
        if self.cfg.train.freeze_bn:
            freeze_batchnorm(self.ddp)

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimiser step on ``batch``; returns the (rank-averaged) loss parts."""
        batch = to_device(batch, self.device)
        autocast = (
            torch.autocast(self.device.type, dtype=torch.float16)
            if self.use_amp
            else contextlib.nullcontext()
        )
        with autocast:
            outputs = self.ddp(batch["image"].contiguous(memory_format=self.memory_format))
        loss, parts = self.loss_fn(outputs, batch)
        loss_value = dist_utils.all_reduce_mean(loss.detach().float())
        if not torch.isfinite(loss_value):
            raise NonFiniteLossError(
                f"loss is {loss_value.item()} at epoch {self.state.epoch + 1}, step "
                f"{self.state.step + 1} ({', '.join(f'{k}={float(v):.4g}' for k, v in parts.items())}); "
                "stopping. Try a lower optim.lr, train.clip_grad_norm, or train.amp=false "
                f"(last good weights: {self.last_path})"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.train.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.ddp.parameters(), self.cfg.train.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(unwrap(self.ddp))
        out = {"loss": float(loss_value)}
        for k, v in parts.items():
            out[k] = float(
                dist_utils.all_reduce_mean(torch.as_tensor(v, device=self.device).float())
            )
        return out

    @property
    def plan(self) -> BudgetPlan | None:
        """The time budget's plan (None: fixed epochs, or the probe still running)."""
        return self.length.plan

    def train_one_epoch(self) -> dict[str, float]:
        """Train the rest of the current epoch (up to the run's last step); the mean loss parts,
        images/s and seconds of the steps it made. A time budget's probe is timed here, and cut
        (the plan made) once it has taken its share of the budget."""
        cfg = self.cfg
        epoch = self.state.epoch
        start = self.state.step
        self._set_train_mode()
        loader = self._loader(epoch, start)
        # in a log: a line per quarter of an epoch, at most one per 20 s (a run has many epochs)
        bar = Progress(self.length.epoch_steps(epoch), f"epoch {epoch + 1}/{self.length.label()}",
                       unit="steps", initial=start, enabled=self.main and cfg.runtime.progress,
                       every_percent=25, min_seconds=20)  # fmt: skip
        sums: dict[str, float] = {}
        count = 0
        t0 = time.perf_counter()
        probing = self.length.probing
        self.length.stamps = [t0]
        images = 0
        interval = cfg.train.checkpoint_interval_steps
        for batch in loader:
            if self.state.step >= self.length.epoch_steps(epoch):
                break
            parts = self.train_step(batch)
            self.state.step += 1
            self.state.global_step += 1
            n = int(batch["image"].shape[0]) * self.world
            images += n
            self.state.images += n
            count += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            lr = self.optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=parts["loss"], lr=lr)
            bar.update(1)
            if self.main and (self.state.step % max(cfg.train.log_interval, 1) == 0):
                self.logger.log("train_steps", {"epoch": epoch + 1, "step": self.state.step,
                                                "global_step": self.state.global_step, "lr": lr,
                                                **parts}, self.state.global_step)  # fmt: skip
            now = time.perf_counter()
            if probing and self.length.cut_probe(now, self.state.seconds + now - t0, epoch,
                                                 self.state.step, self._validates()):  # fmt: skip
                probing = False
                bar.set_total(self.length.epoch_steps(epoch))
            total = self.length.epoch_steps(epoch)
            if interval > 0 and self.state.global_step % interval == 0 and self.state.step < total:
                self.save(self.last_path)
        bar.close()
        seconds = time.perf_counter() - t0
        self.state.seconds += seconds
        means = {k: v / max(count, 1) for k, v in sums.items()}
        means["images_per_s"] = images / seconds if seconds > 0 else float("nan")
        means["epoch_seconds"] = seconds
        return means

    def _evaluator(self) -> Evaluator | None:
        """The evaluator given, else :func:`evaluate_model` for a pose config with a val set."""
        if self.evaluator is None and isinstance(self.cfg, Config) and self.cfg.data.val_ann:
            self.evaluator = evaluate_model
        return self.evaluator

    def validate(self) -> dict[str, float] | None:
        """Run the evaluator (on the EMA weights if configured); None if there is none.

        Every rank runs it: the built-in :func:`evaluate_model` shards the validation images
        over the ranks (:func:`fusepose.inference.dataset.run_dataset`), so no rank idles, and
        a custom evaluator must either do the same or compute the same value on each rank.
        Every rank returns rank 0's metrics (checkpoint selection agrees everywhere); an error
        on one rank is raised on all."""
        if self._evaluator() is None:
            return None
        model = (
            self.ema.module
            if (self.ema is not None and self.cfg.eval.use_ema)
            else unwrap(self.ddp)
        )
        metrics, error = None, None
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                if self.evaluator is evaluate_model:
                    metrics = evaluate_model(model, self.cfg, self.device, self.description)
                else:
                    metrics = self.evaluator(model, self.cfg, self.device)
        except Exception as e:  # noqa: BLE001 - raised on every rank below
            if not self.distributed:
                raise
            error = e
        finally:
            model.train(was_training)
        return dist_utils.all_gather_checked(metrics, error)[0]

    def _after_epoch(self, done: int) -> dict[str, float] | None:
        """Validate after epoch ``done`` (1-based) when the run's length says so, timed into the
        run's seconds; at the end of a time budget's probe, then make the plan."""
        probing = self.length.probing
        metrics, seconds = None, 0.0
        if self.length.validates_after(done, self.state.global_step):
            t0 = time.perf_counter()
            metrics = self.validate()
            seconds = time.perf_counter() - t0
            self.state.seconds += seconds
        if probing:
            timed = metrics is not None and self.main
            self.length.make_plan(self.state.global_step, self.state.seconds,
                                  validate=self._validates(), val_seconds=seconds if timed else 0.0,
                                  validated=(done,) if timed else ())  # fmt: skip
        return metrics

    def _validates(self) -> bool:
        return self.cfg.eval.interval > 0 and self._evaluator() is not None

    def _val_record(self, value: float, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        """What a checkpoint says about its best validation (``fusepose inspect``)."""
        d, ev = self.cfg.data, self.cfg.eval
        on_ema = self.ema is not None and ev.use_ema
        record: dict[str, Any] = {
            "metric": ev.metric,
            "value": float(value),
            "epoch": int(epoch),
            "weights": "ema" if on_ema else "model",
            "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        }
        if isinstance(d, DataConfig):  # a pose dataset: where the AP was scored
            record.update(
                ann=d.val_ann,
                images=d.val_images,
                boxes=("det" if d.det_file else "gt") if self.family.needs_boxes else None,
            )
        return record

    def fit(self) -> dict[str, Any]:
        """Train until ``cfg.train.epochs`` or the time budget's last step; returns the last
        epoch's numbers, the best metric and the run's steps, images and seconds."""
        cfg = self.cfg
        last: dict[str, Any] = {}
        if self.main:
            length = (f"{cfg.train.epochs} epochs" if not self.length.budgeted else
                      f"{cfg.train.time_budget_minutes:.4g} minutes (the first epoch sets the steps)")  # fmt: skip
            log.info("training %s on %s: %s x %d steps, batch %d x %d process(es); run dir %s",
                     self.model_name, self.device, length, self.steps_per_epoch,
                     cfg.train.batch_size, self.world, self.run_dir)  # fmt: skip
        while not self.length.finished(self.state.epoch, self.state.global_step):
            epoch = self.state.epoch
            stats = self.train_one_epoch()
            # epoch finished: the next checkpoint starts the next epoch at step 0
            self.state.epoch += 1
            self.state.step = 0
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "lr": self.optimizer.param_groups[0]["lr"],
                **stats,
            }
            metrics = self._after_epoch(epoch + 1)
            improved = False
            if metrics is not None:
                value = float(metrics.get(cfg.eval.metric, float("nan")))
                row.update(
                    {f"val_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
                )
                if math.isfinite(value) and value > self.state.best_metric:
                    self.state.best_metric = value
                    self.best_val = self._val_record(value, epoch + 1, metrics)
                    improved = True
            self.save(self.last_path)
            if improved:
                self.save(self.best_path)
            if self.main:
                self.logger.log("train", row, self.state.global_step)
                for line in epoch_lines(f"epoch {epoch + 1}/{self.length.label()}", row):
                    log.info("%s", line)
            last = row
        self.logger.close()
        return {
            "last": last,
            "best_metric": self.state.best_metric,
            "run_dir": str(self.run_dir),
            "is_main": self.main,
            "steps": self.state.global_step,
            "images_seen": self.state.images,
            "train_seconds": self.state.seconds,
            "budget": self.plan.to_dict() if self.plan is not None else None,
        }


def train(
    cfg: Config | PretrainConfig,
    *,
    resume: str | Path | None = None,
    run_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    **components: Any,
) -> dict[str, Any]:
    """Build a :class:`Trainer` from ``cfg``, optionally resume, and train."""
    trainer = Trainer(cfg, run_dir=run_dir, config_path=config_path, **components)
    try:
        if resume:
            trainer.resume(resume)
        return trainer.fit()
    finally:
        dist_utils.cleanup()
