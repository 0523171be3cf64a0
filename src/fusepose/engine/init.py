"""BatchNorm and DDP helpers for training (``init_from_scratch`` lives in
:mod:`fusepose.models.init`)."""

from __future__ import annotations

from torch import nn

from fusepose.models.init import init_from_scratch

__all__ = ["freeze_batchnorm", "init_from_scratch", "unwrap"]


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics used and not updated)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
