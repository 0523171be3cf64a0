"""The training loop: plain and readable, torchvision-references style.

    cfg = load_config("configs/lmfnet_synth-128_1xb8-8e.yaml")
    result = train(cfg, resume="auto")

One process per device; under ``torchrun`` the default process group is initialised from the
environment (NCCL on GPU, Gloo on CPU), the model is wrapped in DDP and rank 0 alone logs and
writes checkpoints. The sample order is a seeded permutation per epoch (:class:`EpochSampler`),
and augmentation randomness is re-seeded per (seed, epoch, sample index), so a run resumed from
a mid-epoch checkpoint sees exactly the batches the interrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
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
from fusepose.engine.checkpoint import (
    FORMAT_VERSION,
    get_rng_state,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    set_rng_state,
)
from fusepose.engine.config import (
    Config,
    DataConfig,
    PretrainConfig,
    config_to_dict,
    save_config,
    validate_config,
)
from fusepose.engine.data import SeededDataset, build_dataset, target_codec, to_device
from fusepose.engine.ema import ModelEMA
from fusepose.engine.init import freeze_batchnorm, init_from_scratch, unwrap
from fusepose.engine.logger import MetricLogger
from fusepose.engine.optim import build_optimizer, lr_factor
from fusepose.engine.validate import evaluate_model, run_description
from fusepose.errors import CheckpointError, ConfigError, FusePoseError
from fusepose.files import write_json_atomic
from fusepose.losses import build_loss
from fusepose.losses.ae import AE_TYPES
from fusepose.models.pretrained import BackboneReport, load_pretrained_backbone
from fusepose.models.registry import create_model, list_models

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


class NonFiniteLossError(FusePoseError):
    """The training loss became NaN or infinite; training stopped."""


# ---------------------------------------------------------------------------------- trainer


@dataclasses.dataclass
class TrainState:
    epoch: int = 0  # epoch in progress (0-based)
    step: int = 0  # optimiser steps already done within `epoch`
    global_step: int = 0
    best_metric: float = -math.inf


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
        _seed_everything(cfg.train.seed + self.rank)

        name = cfg.runtime.name or (Path(config_path).stem if config_path else "run")
        self.run_dir = Path(run_dir) if run_dir is not None else Path(cfg.runtime.out_dir) / name
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # temp files of a run that was killed while writing a checkpoint
            for stale in self.run_dir.glob(".*.pth.*.tmp"):
                stale.unlink(missing_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")
        dist_utils.barrier()

        self.pretrained: BackboneReport | None = None
        if model is None:
            model = self._build_model(cfg)
        info = getattr(model, "info", None)
        self.kind = getattr(info, "kind", "bottom_up")
        # a registered model's name, or the name a custom module gives itself
        self.model_name = getattr(info, "name", None) or getattr(
            model, "model_name", type(model).__name__
        )
        self.num_keypoints = int(
            getattr(info, "num_keypoints", getattr(cfg.model, "num_keypoints", 0))
        )
        model.to(self.device)
        self.memory_format = (
            torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        )
        model.to(memory_format=self.memory_format)
        if cfg.train.sync_bn and self.distributed and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.ema = ModelEMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None

        # what checkpoints carry to run the model (registered models only; a custom module
        # passed in has no registry entry to rebuild it from)
        self.description = run_description(cfg) if self.model_name in list_models() else None
        self.best_val: dict[str, Any] | None = None

        if loss_fn is None:
            lc = cfg.loss
            if lc.ae_type not in AE_TYPES:
                raise ConfigError(f"loss.ae_type: {lc.ae_type!r} is not one of {AE_TYPES}")
            if self.kind == "bottom_up":
                loss_fn = build_loss(
                    "bottom_up",
                    self.num_keypoints,
                    heatmap_weights=lc.heatmap_weights,
                    push_factor=lc.push_factor,
                    pull_factor=lc.pull_factor,
                    ae_type=lc.ae_type,
                    heatmap_fg_weight=lc.heatmap_fg_weight,
                )
            else:
                loss_fn = build_loss("top_down", self.num_keypoints, stage_weights=lc.stage_weights)
        self.loss_fn = loss_fn

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

        self.evaluator = evaluator
        self.optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
        spe = self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: lr_factor(it, cfg, spe)
        )
        self.use_amp = cfg.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)

        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp: nn.Module = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        else:
            self.ddp = model
        self.state = TrainState()
        self.logger = MetricLogger(
            self.run_dir, enabled=self.main, tensorboard=cfg.runtime.tensorboard
        )

    def _build_model(self, cfg: Config) -> nn.Module:
        """The registered model of ``cfg.model``: init, then ``weights`` or ``pretrained``."""
        m = cfg.model
        if m.init not in ("official", "scratch"):
            raise ConfigError(f"model.init: {m.init!r} is not 'official' or 'scratch'")
        if m.weights and m.pretrained:
            raise ConfigError(
                "model.weights and model.pretrained: set one (weights: the whole model; "
                "pretrained: an ImageNet checkpoint for the backbone)"
            )
        model = create_model(m.name, num_keypoints=m.num_keypoints, **m.overrides)
        if m.weights:
            load_weights(model, m.weights, strict=False)
            return model
        if m.init == "scratch":
            init_from_scratch(model)
        if m.pretrained:
            if not Path(m.pretrained).is_file():
                raise ConfigError(
                    f"model.pretrained: {m.pretrained} not found (the ImageNet checkpoint of the "
                    "backbone; set model.pretrained=null to train from scratch)"
                )
            self.pretrained = load_pretrained_backbone(
                model, m.pretrained, strict=m.pretrained_strict
            )
            if self.main:
                log.info("model.pretrained: %s", self.pretrained.summary())
                write_json_atomic(self.run_dir / "pretrained.json", self.pretrained.to_dict())
        return model

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
            "scheduler": _plain_scheduler_state(self.scheduler.state_dict()),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.state.epoch,
            "step": self.state.step,
            "global_step": self.state.global_step,
            "best_metric": self.state.best_metric,
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
        unwrap(self.ddp).load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        self.state = TrainState(
            epoch=int(ckpt["epoch"]),
            step=int(ckpt["step"]),
            global_step=int(ckpt.get("global_step", 0)),
            best_metric=float(ckpt.get("best_metric", -math.inf)),
        )
        if ckpt.get("rng") is not None:
            set_rng_state(ckpt["rng"])
        desc = ckpt.get("description")
        self.best_val = desc.get("val") if isinstance(desc, dict) else ckpt.get("val")
        log.info("resumed from %s at epoch %d, step %d", path, self.state.epoch, self.state.step)
        return True

    # --------------------------------------------------------------------------- training

    def _loader(self, epoch: int, start_step: int) -> DataLoader:
        b = self.cfg.train.batch_size
        self.sampler.set_epoch(epoch, start=start_step * b)
        self.train_set.epoch = epoch
        nw = self.cfg.data.num_workers
        return DataLoader(
            self.train_set,
            batch_size=b,
            sampler=self.sampler,
            num_workers=nw,
            collate_fn=self.collate_fn,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
            persistent_workers=False,
        )

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

    def train_one_epoch(self) -> dict[str, float]:
        cfg = self.cfg
        epoch = self.state.epoch
        start = self.state.step
        self._set_train_mode()
        loader = self._loader(epoch, start)
        total = self.steps_per_epoch
        bar = None
        if self.main and cfg.runtime.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=total,
                initial=start,
                desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                dynamic_ncols=True,
                leave=False,
            )
        sums: dict[str, float] = {}
        count = 0
        t0 = time.perf_counter()
        images = 0
        interval = cfg.train.checkpoint_interval_steps
        for batch in loader:
            if self.state.step >= total:
                break
            parts = self.train_step(batch)
            self.state.step += 1
            self.state.global_step += 1
            n = int(batch["image"].shape[0]) * self.world
            images += n
            count += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            lr = self.optimizer.param_groups[0]["lr"]
            if bar is not None:
                bar.set_postfix(loss=f"{parts['loss']:.4g}", lr=f"{lr:.2e}")
                bar.update(1)
            if self.main and (self.state.step % max(cfg.train.log_interval, 1) == 0):
                self.logger.log(
                    "train_steps",
                    {
                        "epoch": epoch + 1,
                        "step": self.state.step,
                        "global_step": self.state.global_step,
                        "lr": lr,
                        **parts,
                    },
                    self.state.global_step,
                )
            if interval > 0 and self.state.global_step % interval == 0 and self.state.step < total:
                self.save(self.last_path)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0
        means = {k: v / max(count, 1) for k, v in sums.items()}
        means["images_per_s"] = images / seconds if seconds > 0 else float("nan")
        means["epoch_seconds"] = seconds
        return means

    def validate(self) -> dict[str, float] | None:
        """Run the evaluator (on the EMA weights if configured); None if there is none.

        Every rank runs it: the built-in :func:`evaluate_model` shards the validation images
        over the ranks (:func:`fusepose.inference.dataset.run_dataset`), so no rank idles, and
        a custom evaluator must either do the same or compute the same value on each rank.
        Every rank returns rank 0's metrics (checkpoint selection agrees everywhere); an error
        on one rank is raised on all."""
        if self.evaluator is None and isinstance(self.cfg, Config) and self.cfg.data.val_ann:
            self.evaluator = evaluate_model
        if self.evaluator is None:
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
                boxes=("det" if d.det_file else "gt") if self.kind == "top_down" else None,
            )
        return record

    def fit(self) -> dict[str, Any]:
        """Train until ``cfg.train.epochs``; returns the last epoch's numbers and the best metric."""
        cfg = self.cfg
        last: dict[str, Any] = {}
        if self.main:
            log.info(
                "training %s on %s: %d epochs x %d steps, batch %d x %d process(es); run dir %s",
                self.model_name,
                self.device,
                cfg.train.epochs,
                self.steps_per_epoch,
                cfg.train.batch_size,
                self.world,
                self.run_dir,
            )
        while self.state.epoch < cfg.train.epochs:
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
            ev = cfg.eval.interval
            is_last = self.state.epoch == cfg.train.epochs
            metrics = None
            if ev > 0 and ((epoch + 1) % ev == 0 or is_last):
                metrics = self.validate()
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
                msg = ", ".join(
                    f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float) and k != "lr"
                )
                log.info("epoch %d/%d: %s", epoch + 1, cfg.train.epochs, msg)
            last = row
        self.logger.close()
        return {
            "last": last,
            "best_metric": self.state.best_metric,
            "run_dir": str(self.run_dir),
            "is_main": self.main,
        }


def _plain_scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    # LambdaLR stores plain functions as None; keep only weights_only-loadable values.
    return {k: v for k, v in state.items() if k != "lr_lambdas" or all(x is None for x in v)}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


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
