"""Optimiser and learning-rate schedule from a config (Adam / AdamW / SGD; multistep, cosine,
constant, with linear warm-up)."""

from __future__ import annotations

import math
from typing import Any

import torch

from fusepose.engine.config import Config
from fusepose.errors import ConfigError

__all__ = ["build_optimizer", "lr_factor"]


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
