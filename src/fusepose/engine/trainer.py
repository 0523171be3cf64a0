"""The training loop: plain and readable, torchvision-references style.

    cfg = load_config("configs/lmfnet_synth-128_1xb4-30e.yaml")
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
import inspect
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from fusepose.engine import distributed as dist_utils
from fusepose.engine.checkpoint import (
    FORMAT_VERSION,
    get_rng_state,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    set_rng_state,
)
from fusepose.engine.config import Config, config_to_dict, save_config
from fusepose.engine.ema import ModelEMA
from fusepose.engine.logger import MetricLogger
from fusepose.errors import CheckpointError, ConfigError, FusePoseError

log = logging.getLogger(__name__)

Batch = dict[str, Any]
# (model, config, device) -> metrics dict with cfg.eval.metric among its keys
Evaluator = Callable[[nn.Module, Config, torch.device], dict[str, float]]


class NonFiniteLossError(FusePoseError):
    """The training loss became NaN or infinite; training stopped."""


# ----------------------------------------------------------------------------- optimisation


def build_optimizer(params: Any, cfg: Config) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD from ``cfg.optim``."""
    o = cfg.optim
    name = o.name.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov
        )
    raise ConfigError(f"optim.name: unknown optimiser {o.name!r} (adam, adamw, sgd)")


def lr_factor(it: int, cfg: Config, steps_per_epoch: int) -> float:
    """LR multiplier at iteration ``it`` (0-based, counted over the whole run).

    Linear warm-up from ``warmup_factor`` to 1 over ``warmup_iters`` iterations, times the
    schedule: ``multistep`` (x gamma at each milestone epoch), ``cosine`` (from 1 to
    ``min_lr / lr`` over all iterations) or ``constant``.
    """
    s = cfg.schedule
    epoch = it // max(steps_per_epoch, 1)
    if s.name == "multistep":
        f = s.gamma ** sum(1 for m in s.milestones if epoch >= m)
    elif s.name == "cosine":
        total = max(cfg.train.epochs * steps_per_epoch, 1)
        floor = s.min_lr / cfg.optim.lr if cfg.optim.lr > 0 else 0.0
        f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
    elif s.name == "constant":
        f = 1.0
    else:
        raise ConfigError(
            f"schedule.name: unknown schedule {s.name!r} (multistep, cosine, constant)"
        )
    if s.warmup_iters > 0 and it < s.warmup_iters:
        alpha = it / s.warmup_iters
        f *= s.warmup_factor * (1 - alpha) + alpha
    return f


# ----------------------------------------------------------------------------------- data


class SeededDataset(Dataset):
    """Wraps a dataset so that sample ``i`` of epoch ``e`` is drawn with fixed randomness.

    Before each ``__getitem__`` the python / numpy / torch global RNGs, and the dataset's own
    ``np.random.Generator`` if given (``rng``, the one its transforms hold), are re-seeded from
    ``(seed, epoch, i)``. The augmentation of a sample is then independent of the worker, the
    process and of where the run was resumed.
    """

    def __init__(self, dataset: Dataset, seed: int, rng: np.random.Generator | None = None):
        self.dataset = dataset
        self.seed = int(seed)
        self.rng = rng
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        seq = np.random.SeedSequence([self.seed, self.epoch, int(i)])
        s = seq.generate_state(2)
        random.seed(int(s[0]))
        np.random.seed(int(s[1]))
        torch.manual_seed(int(s[0]) ^ int(s[1]))
        if self.rng is not None:
            self.rng.bit_generator.state = np.random.PCG64(seq).state
        return self.dataset[i]


def default_collate(samples: Sequence[Mapping[str, Any]]) -> Batch:
    """Stack tensors / arrays key by key; lists of tensors are stacked per position (one
    entry per resolution); ``meta`` and other objects stay lists."""
    out: Batch = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        first = vals[0]
        if key == "meta":
            out[key] = vals
        elif isinstance(first, Tensor):
            out[key] = torch.stack(vals)
        elif isinstance(first, np.ndarray):
            out[key] = torch.from_numpy(np.stack(vals))
        elif (
            isinstance(first, (list, tuple))
            and first
            and isinstance(first[0], (Tensor, np.ndarray))
        ):
            out[key] = [
                torch.stack([torch.as_tensor(v[j]) for v in vals]) for j in range(len(first))
            ]
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            out[key] = torch.tensor(vals)
        else:
            out[key] = vals
    return out


def _collate_fn() -> Callable[[Sequence[Mapping[str, Any]]], Batch]:
    try:
        from fusepose.data import collate  # type: ignore[attr-defined]

        return collate
    except ImportError:
        return default_collate


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: (v if k == "meta" else to_device(v, device)) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _filter_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def build_codec(cfg: Config, kind: str) -> Any:
    """The codec for a model ``kind`` at ``cfg.data.input_size``."""
    from fusepose import codecs
    from fusepose.skeletons import get_skeleton

    h, w = cfg.data.input_size
    if kind == "bottom_up":
        sk = get_skeleton(cfg.data.skeleton)
        return codecs.AssociativeEmbeddingCodec(
            cfg.model.num_keypoints,
            (h, w),
            sigma=cfg.data.sigma,
            max_people=cfg.data.max_people,
            flip_index=sk.flip_index,
        )
    return codecs.TopDownHeatmapCodec(
        input_size=(h, w), heatmap_size=(h // 4, w // 4), sigma=cfg.data.sigma
    )


def build_dataset(
    cfg: Config, kind: str, codec: Any, *, train: bool, rng: np.random.Generator | None = None
) -> Dataset:
    """COCO-format (bottom-up / top-down) or MPII dataset from ``cfg.data``.

    ``rng``: the generator the training transforms draw from (re-seeded per sample by
    :class:`SeededDataset`).
    """
    from fusepose import data as fdata
    from fusepose.skeletons import get_skeleton

    d = cfg.data
    ann = d.train_ann if train else d.val_ann
    images = d.train_images if train else d.val_images
    if not ann:
        which = "train_ann" if train else "val_ann"
        raise ConfigError(f"data.{which}: no annotation file given")
    h, w = d.input_size
    # augment=False keeps the training entries and fixed-size crops but draws nothing at
    # random: no flip / rotation / shift / half body, scale fixed at scale_range[0]
    aug = d.augment
    kwargs: dict[str, Any] = dict(
        train=train,
        skeleton=get_skeleton(d.skeleton),
        flip_prob=d.flip_prob if aug else 0.0,
        rotation=d.rotation if aug else 0.0,
        scale_range=d.scale_range if aug else (d.scale_range[0], d.scale_range[0]),
        translate=d.translate if aug else 0.0,
        half_body_prob=d.half_body_prob if aug else 0.0,
        max_images=d.max_train_images if train else d.max_val_images,
        rng=rng,
    )
    if d.dataset == "mpii":
        cls = fdata.MpiiDataset
        kwargs["input_size"] = (h, w)
    elif kind == "bottom_up":
        cls = fdata.CocoBottomUpDataset
        if d.resize not in ("crop", "letterbox"):
            raise ConfigError(f"data.resize: {d.resize!r} is not 'crop' or 'letterbox'")
        kwargs["input_size"] = (h, w) if d.resize == "letterbox" else h
        kwargs["resize"] = d.resize
    else:
        cls = fdata.CocoTopDownDataset
        kwargs["input_size"] = (h, w)
        kwargs["det_file"] = None if train else d.det_file
    ds = cls(ann, images, codec, **_filter_kwargs(cls.__init__, kwargs))
    limit = d.max_train_images if train else d.max_val_images
    if limit and len(ds) > limit and "max_images" not in inspect.signature(cls.__init__).parameters:
        ds = torch.utils.data.Subset(ds, list(range(limit)))
    return ds


# ------------------------------------------------------------------------------- validation


def predict_coco(
    model: nn.Module,
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    input_size: Sequence[int],
    device: torch.device | str = "cpu",
    flip: bool = True,
    det_file: str | None = None,
    max_images: int = 0,
    resize: str = "crop",
) -> list[dict[str, Any]]:
    """COCO keypoint results (original-image pixels) of ``model`` on a COCO-format set.

    Uses the :class:`~fusepose.inference.predictor.Predictor` (same pre-processing and codec
    decode as inference). Bottom-up: short side resized to ``input_size[0]`` (HigherHRNet
    rule), or with ``resize="letterbox"`` the whole image fitted into ``input_size (H, W)``
    (the training warp of ``data.resize=letterbox``). Top-down: crops of ``det_file`` boxes,
    or of the non-crowd GT boxes if None.
    """
    from fusepose.data import load_coco_keypoints, read_image
    from fusepose.inference.predictor import Predictor

    index = load_coco_keypoints(ann_file)
    kind = model.info.kind
    size: Any = tuple(int(v) for v in input_size)
    if kind == "bottom_up" and resize == "crop":
        size = size[0]  # HigherHRNet test resize: short side -> input_size[0]
    predictor = Predictor(
        model, device=str(device), flip=flip, input_size=size,
        det_file=det_file if kind == "top_down" else None,
    )  # fmt: skip
    results: list[dict[str, Any]] = []
    ids = index.image_ids[:max_images] if max_images else index.image_ids
    for iid in ids:
        entry = index.images[iid]
        img = read_image(Path(image_dir) / str(entry["file_name"]))
        boxes = None
        if kind == "top_down" and det_file is None:
            anns = [a for a in index.annotations[iid] if not a.iscrowd]
            boxes = np.array([a.bbox for a in anns], dtype=np.float64).reshape(-1, 4)
        people = predictor.predict_frame(img, boxes=boxes, image_id=iid).to_coco(iid)
        if kind == "top_down" and det_file is not None and people:
            # the Predictor already rescored (box x mean confident joint score); HRNet then
            # removes duplicate detections of one person with OKS-NMS at 0.9
            from fusepose.evaluation import oks_nms

            people = [people[i] for i in oks_nms(people, 0.9)]
        results.extend(people)
    return results


def evaluate_model(model: nn.Module, cfg: Config, device: torch.device) -> dict[str, float]:
    """COCO OKS AP/AR of ``model`` on ``cfg.data.val_ann`` (pycocotools or faster-coco-eval)."""
    from fusepose.evaluation import COCO_KEYS, evaluate_coco

    d = cfg.data
    if d.dataset != "coco":
        raise ConfigError(
            f"eval.interval: validation during training scores COCO-format data only, not "
            f"{d.dataset!r}; set eval.interval=0 and score checkpoints with `fusepose eval`"
        )
    results = predict_coco(
        model, d.val_ann, d.val_images, input_size=d.input_size, device=device,
        flip=cfg.eval.flip_test, det_file=d.det_file, max_images=d.max_val_images,
        resize=d.resize,
    )  # fmt: skip
    if not results:
        log.warning("validation: the model found no people; AP = 0")
        return {k: 0.0 for k in COCO_KEYS}
    gt: Any = d.val_ann
    if d.max_val_images:
        from fusepose.data import load_coco_keypoints

        keep = set(load_coco_keypoints(d.val_ann).image_ids[: d.max_val_images])
        gt = _subset_gt(d.val_ann, keep)
    m = evaluate_coco(gt, results, backend=cfg.eval.backend, per_keypoint=False)
    return {k: float(m[k]) for k in COCO_KEYS}


def _subset_gt(ann_file: str, keep: set[int]) -> dict[str, Any]:
    import json

    data = json.loads(Path(ann_file).read_text())
    data["images"] = [im for im in data["images"] if im["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    return data


# ------------------------------------------------------------------------------------ init


def init_from_scratch(model: nn.Module, output_std: float = 0.001) -> None:
    """Re-initialise ``model`` for training from random weights.

    Hidden convolutions get He (Kaiming) normal init, fan-out, ReLU gain, zero bias; norms
    weight 1, bias 0. The prediction convs (``model.head.final_layers`` of a bottom-up model,
    ``final_layer`` / ``final_layers`` attributes elsewhere) keep the official N(0,
    ``output_std``) so the first heatmaps are ~0. The official N(0, 0.001) everywhere suits
    fine-tuning from ImageNet weights; from scratch it leaves the Ghost / attention blocks
    with activations shrinking layer after layer, and the tag maps nearly constant, where the
    push term of the AE loss has no gradient.
    """
    finals: set[int] = set()
    for name, mod in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("final_layer", "final_layers"):
            finals.update(id(m) for m in mod.modules())
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if id(m) in finals:
                nn.init.normal_(m.weight, std=output_std)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------- BN helpers


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics used and not updated)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


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
    experiments); otherwise they are built from ``cfg`` with the registry, ``fusepose.data``,
    ``fusepose.losses`` and :func:`evaluate_model`.
    ``loss_fn(outputs, batch) -> (loss scalar, dict of detached parts)``.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        run_dir: str | Path | None = None,
        model: nn.Module | None = None,
        train_set: Dataset | None = None,
        loss_fn: nn.Module | None = None,
        evaluator: Evaluator | None = None,
        collate_fn: Callable[..., Batch] | None = None,
        config_path: str | Path | None = None,
    ) -> None:
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

        if model is None:
            from fusepose.registry import create_model

            if cfg.model.init not in ("official", "scratch"):
                raise ConfigError(f"model.init: {cfg.model.init!r} is not 'official' or 'scratch'")
            model = create_model(
                cfg.model.name, num_keypoints=cfg.model.num_keypoints, **cfg.model.overrides
            )
            if cfg.model.weights:
                load_weights(model, cfg.model.weights, strict=False)
            elif cfg.model.init == "scratch":
                init_from_scratch(model)
        self.kind = getattr(getattr(model, "info", None), "kind", "bottom_up")
        self.model_name = getattr(getattr(model, "info", None), "name", type(model).__name__)
        self.num_keypoints = int(
            getattr(getattr(model, "info", None), "num_keypoints", cfg.model.num_keypoints)
        )
        model.to(self.device)
        if cfg.train.sync_bn and self.distributed and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.ema = ModelEMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None

        if loss_fn is None:
            from fusepose.losses import build_loss

            lc = cfg.loss
            if self.kind == "bottom_up":
                loss_fn = build_loss(
                    "bottom_up",
                    self.num_keypoints,
                    heatmap_weights=lc.heatmap_weights,
                    push_factor=lc.push_factor,
                    pull_factor=lc.pull_factor,
                )
            else:
                loss_fn = build_loss("top_down", self.num_keypoints, stage_weights=lc.stage_weights)
        self.loss_fn = loss_fn

        rng = None
        if train_set is None:
            self.codec = build_codec(cfg, self.kind)
            rng = np.random.default_rng(cfg.train.seed)
            train_set = build_dataset(cfg, self.kind, self.codec, train=True, rng=rng)
        self.train_set = SeededDataset(train_set, cfg.train.seed, rng)
        self.sampler = dist_utils.EpochSampler(
            len(train_set), shuffle=True, seed=cfg.train.seed, rank=self.rank, world_size=self.world
        )
        self.collate_fn = collate_fn or _collate_fn()
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
        }

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
            outputs = self.ddp(batch["image"])
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
        """Run the evaluator (on the EMA weights if configured); None if there is none."""
        if self.evaluator is None and self.cfg.data.val_ann:
            self.evaluator = evaluate_model
        if self.evaluator is None:
            return None
        model = (
            self.ema.module
            if (self.ema is not None and self.cfg.eval.use_ema)
            else unwrap(self.ddp)
        )
        metrics = None
        if self.main:
            was_training = model.training
            model.eval()
            with torch.no_grad():
                metrics = self.evaluator(model, self.cfg, self.device)
            model.train(was_training)
        dist_utils.barrier()
        return metrics

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
    cfg: Config,
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
