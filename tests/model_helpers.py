"""Helpers shared by the model tests (imported as a plain module: tests/ is on sys.path)."""

from __future__ import annotations

import torch
from torch import nn

# a reduced depth (1 module per stage, 1 block per branch / head) keeps some checks fast
SMALL = {"modules": (1, 1, 1), "blocks_per_branch": 1, "head_num_blocks": 1}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BN statistics (the official init makes outputs ~0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                std = 1.0 / m.weight[0].numel() ** 0.5
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return model
