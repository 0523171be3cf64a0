"""ImageNet-style pretraining of a bottom-up model's backbone (``fusepose pretrain``).

    cfg = load_config("configs/pretrain/lmfnet_imagenet-224_8xb64-100e.yaml",
                      schema=PretrainConfig)
    result = pretrain(cfg, resume="auto")   # run_dir/best.pth -> model.pretrained

The classifier (:func:`fusepose.models.classifier.build_classifier`: the backbone + the
HRNet-classification head), an :class:`~fusepose.data.image_folder.ImageFolderDataset` with
the standard augmentation, label-smoothed cross-entropy and a top-1 / top-5 evaluator are
handed to the pose training's :class:`~fusepose.engine.trainer.Trainer`: the same ``torchrun``
DDP, AMP, EMA, ``--resume auto``, progress, logs and atomic checkpoints. The checkpoints it
writes (``best.pth`` = best ``eval.metric``, ``last.pth``) load into the pose model with
``model.pretrained`` (:func:`fusepose.load_pretrained_backbone`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from fusepose.data.collate import collate
from fusepose.data.image_folder import CenterCrop, ImageFolderDataset, RandomResizedCrop
from fusepose.engine.config import PretrainConfig
from fusepose.engine.data import to_device
from fusepose.engine.trainer import train
from fusepose.errors import ConfigError
from fusepose.losses import ClassificationLoss
from fusepose.models.classifier import build_classifier

log = logging.getLogger(__name__)

__all__ = ["TopKEvaluator", "build_pretraining", "pretrain", "topk_correct"]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> list[int]:
    """Number of samples whose label is among the ``k`` highest logits, for each ``k``.

    logits ``(B, C)``, labels ``(B,)``; ``k`` is capped at ``C``.
    """
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices  # (B, kmax), best first
    hit = top == labels[:, None]
    return [int(hit[:, : min(k, logits.shape[1])].any(dim=1).sum()) for k in ks]


class TopKEvaluator:
    """The trainer's evaluator: ``(model, cfg, device) -> {"top1", "top5", "val_loss"}`` on
    the validation ImageFolder (fractions 0..1; the model is in eval mode, no grad)."""

    def __init__(self, dataset: ImageFolderDataset, batch_size: int, num_workers: int) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)

    def __call__(self, model: nn.Module, cfg: Any, device: torch.device) -> dict[str, float]:
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False,
                            num_workers=self.num_workers, collate_fn=collate)  # fmt: skip
        correct = [0, 0]
        loss_sum, n = 0.0, 0
        for batch in loader:
            batch = to_device(batch, device)
            logits = model(batch["image"]).float()
            labels = batch["label"]
            for i, c in enumerate(topk_correct(logits, labels, (1, 5))):
                correct[i] += c
            loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            n += int(labels.shape[0])
        return {"top1": correct[0] / n, "top5": correct[1] / n, "val_loss": loss_sum / n}


def build_pretraining(cfg: PretrainConfig) -> dict[str, Any]:
    """The trainer components of ``cfg``: ``model``, ``train_set``, ``loss_fn``, ``evaluator``
    (None without ``data.val_dir``)."""
    d, m = cfg.data, cfg.model
    if not d.train_dir:
        raise ConfigError("data.train_dir: no training image folder given")
    if d.input_size % 32:
        raise ConfigError(f"data.input_size: {d.input_size} is not a multiple of 32")
    crop = RandomResizedCrop(d.input_size, d.crop_scale, d.crop_ratio, d.flip_prob)
    train_set = ImageFolderDataset(d.train_dir, crop, max_images=d.max_train_images)
    num_classes = m.num_classes or train_set.num_classes
    if num_classes < train_set.num_classes:
        raise ConfigError(
            f"model.num_classes: {num_classes} < the {train_set.num_classes} class folders of "
            f"{d.train_dir}"
        )
    evaluator = None
    if d.val_dir:
        val_set = ImageFolderDataset(d.val_dir, CenterCrop(d.input_size, d.val_crop),
                                     classes=train_set.classes, max_images=d.max_val_images)  # fmt: skip
        evaluator = TopKEvaluator(val_set, cfg.train.batch_size, d.num_workers)
    # the same initial weights in every run of a config (the trainer seeds after this)
    torch.manual_seed(cfg.train.seed)
    model = build_classifier(
        m.name, num_classes, head_channels=tuple(m.head_channels),
        num_features=m.num_features, **m.overrides,
    )  # fmt: skip
    return {
        "model": model,
        "train_set": train_set,
        "loss_fn": ClassificationLoss(cfg.loss.label_smoothing),
        "evaluator": evaluator,
    }


def pretrain(
    cfg: PretrainConfig,
    *,
    resume: str | Path | None = None,
    run_dir: str | Path | None = None,
    config_path: str | Path | None = None,
) -> dict[str, Any]:
    """Pretrain the backbone of ``cfg.model.name`` on ``cfg.data`` with the pose trainer.

    Returns the trainer's result (``last``, ``best_metric``, ``run_dir``, ``is_main``) plus
    ``classes`` (label order).
    """
    parts = build_pretraining(cfg)
    classes = parts["train_set"].classes
    if cfg.eval.interval > 0 and parts["evaluator"] is None:
        log.warning("data.val_dir is empty: no validation, best.pth is never written")
    result = train(cfg, resume=resume, run_dir=run_dir, config_path=config_path, **parts)
    result["classes"] = classes
    if result.get("is_main", True) and math.isfinite(result["best_metric"]):
        log.info("pretrained backbone: model.pretrained=%s", Path(result["run_dir"]) / "best.pth")
    return result
