"""Optimiser and learning-rate schedule from a config (Adam / AdamW / SGD; multistep, cosine,
constant, with linear warm-up), over a fixed number of epochs or a time budget's plan."""

from __future__ import annotations

import math
from typing import Any

import torch

from fusepose.engine.budget import BudgetPlan
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


def lr_factor(
    it: int,
    cfg: Config,
    steps_per_epoch: int,
    plan: BudgetPlan | None = None,
    *,
    budgeted: bool = False,
) -> float:
    """LR multiplier at iteration ``it`` (0-based, counted over the whole run).

    Linear warm-up from ``warmup_factor`` to 1 over ``warmup_iters`` iterations, times the
    schedule: ``multistep`` (x gamma at each milestone epoch), ``cosine`` (from 1 to
    ``min_lr / lr`` over all iterations) or ``constant``.

    With a time budget (``budgeted``; :mod:`fusepose.engine.budget`) the schedule follows the
    ``plan``: before it exists (the probe) the cosine holds at 1 and no milestone has passed;
    then the cosine runs from the probe's last step to ``plan.total_steps``, and each
    milestone sits at the same fraction of the planned steps as of ``train.epochs``.
    """
    s = cfg.schedule
    spe = max(steps_per_epoch, 1)
    start, total = 0, cfg.train.epochs * spe
    marks = [m * spe for m in s.milestones]
    if budgeted:
        start, total = (plan.probe_steps, plan.total_steps) if plan else (0, None)
        marks = [round(m / cfg.train.epochs * total) for m in s.milestones] if total else []
    if s.name == "multistep":
        f = s.gamma ** sum(1 for m in marks if it >= m)
    elif s.name == "cosine":
        if total is None:
            f = 1.0
        else:
            span = max(total - start, 1)
            floor = s.min_lr / cfg.optim.lr if cfg.optim.lr > 0 else 0.0
            f = floor + (1 - floor) * 0.5 * (
                1 + math.cos(math.pi * min(max(it - start, 0), span) / span)
            )
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
