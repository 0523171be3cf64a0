"""Exponential moving average of model weights (parameters and BN buffers)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


class ModelEMA:
    """``ema = d * ema + (1 - d) * model`` after each optimiser step.

    The decay ramps up as ``decay * (1 - exp(-updates / 2000))`` (so early weights do not
    dominate); integer buffers (e.g. BN ``num_batches_tracked``) are copied. Works on an
    unwrapped model: pass ``ddp.module``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, ramp: float = 2000.0) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.ramp = float(ramp)
        self.updates = 0

    def current_decay(self) -> float:
        if self.ramp <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-self.updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        src = model.state_dict()
        for name, ema_v in self.module.state_dict().items():
            v = src[name].detach()
            if ema_v.dtype.is_floating_point:
                ema_v.mul_(d).add_(v.to(ema_v.dtype), alpha=1.0 - d)
            else:
                ema_v.copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return {
            "state_dict": self.module.state_dict(),
            "updates": self.updates,
            "decay": self.decay,
            "ramp": self.ramp,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["state_dict"])
        self.updates = int(state["updates"])
        self.decay = float(state.get("decay", self.decay))
        self.ramp = float(state.get("ramp", self.ramp))
