"""Heatmap losses: HigherHRNet's masked MSE (bottom-up) and JointsMSELoss (top-down).

Both compute in float32 even under autocast: inputs are cast to float inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def masked_heatmap_mse(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, fg_weight: float = 0.0
) -> Tensor:
    """Masked squared error per image: mean over joints and pixels, shape ``(B,)``.

    pred, target: ``(B, K, H, W)``; mask: ``(B, H, W)`` or ``(B, K, H, W)`` (1 = use, 0 =
    ignore, e.g. crowd regions), or None. As HigherHRNet: ``((pred - target)**2 * mask)``
    averaged over K, H, W (the mask zeroes terms; it does not change the denominator).
    ``fg_weight`` > 0 weights each pixel by ``1 + fg_weight * target`` (the Gaussian peaks
    count ``1 + fg_weight`` times a background pixel, as DEKR weights its heatmap loss);
    0 is HigherHRNet's loss exactly.
    """
    pred = pred.float()
    target = target.float()
    err = (pred - target) ** 2
    if fg_weight:
        err = err * (1.0 + float(fg_weight) * target)
    if mask is not None:
        mask = mask.float()
        if mask.dim() == 3:
            mask = mask[:, None]
        err = err * mask
    return err.flatten(1).mean(dim=1)


class MultiResolutionHeatmapLoss(nn.Module):
    """Sum over resolutions of the masked MSE, each averaged over the batch.

    ``forward(preds, targets, masks)`` with lists (one entry per resolution) of
    ``(B, K, H_s, W_s)`` heatmaps and ``(B, H_s, W_s)`` masks. Returns a scalar and the
    per-resolution scalars.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0), fg_weight: float = 0.0) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.fg_weight = float(fg_weight)

    def forward(
        self, preds: Sequence[Tensor], targets: Sequence[Tensor], masks: Sequence[Tensor | None]
    ) -> tuple[Tensor, list[Tensor]]:
        if not (len(preds) == len(targets) == len(masks) == len(self.weights)):
            raise ValueError(
                f"need {len(self.weights)} resolutions, got {len(preds)} preds, "
                f"{len(targets)} targets, {len(masks)} masks"
            )
        parts = [
            w * masked_heatmap_mse(p, t, m, self.fg_weight).mean()
            for w, p, t, m in zip(self.weights, preds, targets, masks, strict=True)
        ]
        return torch.stack(parts).sum(), parts


class JointsMSELoss(nn.Module):
    """Top-down heatmap loss with per-joint target weights (as HRNet / Lite-HRNet).

    ``0.5 * mean((w_k * (pred - target))**2)`` over batch, joints and pixels, for
    ``pred, target: (B, K, h, w)`` and ``weights: (B, K)`` (0 for unlabelled joints).
    """

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        pred = pred.float()
        target = target.float()
        if self.use_target_weight and weights is not None:
            w = weights.float().reshape(weights.shape[0], -1)[:, :, None, None]
            pred = pred * w
            target = target * w
        return 0.5 * ((pred - target) ** 2).mean()


class MultiStageJointsMSELoss(nn.Module):
    """JointsMSELoss on every output of a top-down model (intermediate supervision).

    ``forward(outputs, target, weights)``: ``outputs`` is the model's tuple of
    ``(B, K, h, w)`` heatmaps (intermediate first, final last). Stage weights default to 1.0
    each; set the intermediate weight to 0 to ablate intermediate supervision.
    Returns a scalar and the per-stage scalars.
    """

    def __init__(
        self, stage_weights: Sequence[float] | None = None, use_target_weight: bool = True
    ) -> None:
        super().__init__()
        self.stage_weights = None if stage_weights is None else tuple(map(float, stage_weights))
        self.mse = JointsMSELoss(use_target_weight)

    def forward(
        self, outputs: Sequence[Tensor] | Tensor, target: Tensor, weights: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        if isinstance(outputs, Tensor):
            outputs = (outputs,)
        sw = self.stage_weights or (1.0,) * len(outputs)
        if len(sw) != len(outputs):
            raise ValueError(f"{len(sw)} stage weights for {len(outputs)} model outputs")
        parts = [w * self.mse(o, target, weights) for w, o in zip(sw, outputs, strict=True)]
        return torch.stack(parts).sum(), parts
