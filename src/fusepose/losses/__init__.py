"""Training losses: masked multi-resolution heatmap MSE + associative embedding (bottom-up),
weighted JointsMSELoss with intermediate supervision (top-down), label-smoothed cross-entropy
(backbone pretraining)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from fusepose.family import BOTTOM_UP, TOP_DOWN, Family, get_family
from fusepose.losses.ae import AELoss, TagSeparation, ae_loss_per_image, person_tags
from fusepose.losses.heatmap import (
    JointsMSELoss,
    MultiResolutionHeatmapLoss,
    MultiStageJointsMSELoss,
    masked_heatmap_mse,
)

__all__ = [
    "AELoss",
    "BottomUpLoss",
    "LOSSES",
    "ClassificationLoss",
    "JointsMSELoss",
    "MultiResolutionHeatmapLoss",
    "MultiStageJointsMSELoss",
    "TagSeparation",
    "TopDownLoss",
    "ae_loss_per_image",
    "build_loss",
    "loss_options",
    "masked_heatmap_mse",
    "person_tags",
]


class BottomUpLoss(nn.Module):
    """HigherHRNet total loss: Σ_resolutions masked MSE + push + pull (batch means).

    ``forward(outputs, batch)`` with ``outputs = (out_q (B, 2K, H/4, W/4), out_h (B, K, H/2,
    W/2))`` and ``batch`` holding ``heatmaps`` (list per stride of ``(B, K, h, w)``), ``masks``
    (list of ``(B, h, w)``) and ``tag_joints`` ``(B, M, K, 2)`` at stride 4.
    Returns ``(total, parts)`` with parts ``heatmap_s4, heatmap_s2, push, pull``.
    """

    # the settings (``loss.*`` of a training config) this loss takes
    options = ("heatmap_weights", "push_factor", "pull_factor", "ae_type", "heatmap_fg_weight")

    @classmethod
    def build(cls, num_keypoints: int, **options: Any) -> BottomUpLoss:
        return cls(num_keypoints, **options)

    def __init__(
        self,
        num_keypoints: int,
        heatmap_weights: Sequence[float] = (1.0, 1.0),
        push_factor: float = 1e-3,
        pull_factor: float = 1e-3,
        ae_type: str = "exp",
        heatmap_fg_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.k = int(num_keypoints)
        self.heatmap = MultiResolutionHeatmapLoss(heatmap_weights, heatmap_fg_weight)
        self.ae = AELoss(push_factor, pull_factor, ae_type)

    def forward(self, outputs: Sequence[Tensor], batch: Mapping[str, Any]):
        out_q, out_h = outputs[0], outputs[1]
        k = self.k
        preds = [out_q[:, :k], out_h]
        hm, parts = self.heatmap(preds, batch["heatmaps"], batch["masks"])
        push, pull = self.ae(out_q[:, k : 2 * k], batch["tag_joints"])
        total = hm + push + pull
        names = ["heatmap_s4", "heatmap_s2"]
        logs = {n: p.detach() for n, p in zip(names, parts, strict=False)}
        logs.update(push=push.detach(), pull=pull.detach())
        return total, logs


class TopDownLoss(nn.Module):
    """Weighted JointsMSELoss on every top-down output (intermediate supervision).

    ``batch`` holds the codec targets: heatmaps ``(B, K, h, w)`` and weights ``(B, K)``.
    """

    options = ("stage_weights",)  # the settings (``loss.*``) this loss takes

    @classmethod
    def build(cls, num_keypoints: int, **options: Any) -> TopDownLoss:
        return cls(**options)  # the same for any keypoint count

    def __init__(self, stage_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.loss = MultiStageJointsMSELoss(stage_weights)

    def forward(self, outputs: Sequence[Tensor] | Tensor, batch: Mapping[str, Any]):
        target = batch["heatmaps"] if "heatmaps" in batch else batch["target"]
        weights = batch.get("weights", batch.get("target_weight"))
        total, parts = self.loss(outputs, target, weights)
        logs = {f"mse_stage{i}": p.detach() for i, p in enumerate(parts)}
        return total, logs


class ClassificationLoss(nn.Module):
    """Cross-entropy with label smoothing ``eps`` (target ``1 - eps + eps / C`` on the true
    class, ``eps / C`` elsewhere), averaged over the batch.

    ``forward(logits (B, C), batch)`` with ``batch["label"]`` ``(B,)`` int64; computed in
    float32 (AMP logits are upcast). Returns ``(loss, {"ce": loss})``.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: Tensor, batch: Mapping[str, Any]):
        loss = F.cross_entropy(
            logits.float(), batch["label"], label_smoothing=self.label_smoothing
        )
        return loss, {"ce": loss.detach()}


# family -> its training loss (a class with ``options`` and ``build(num_keypoints, **options)``)
LOSSES: dict[Family, Any] = {BOTTOM_UP: BottomUpLoss, TOP_DOWN: TopDownLoss}


def build_loss(kind: str | Family, num_keypoints: int, **kwargs: Any) -> nn.Module:
    """The loss of a model family (a Family or its name ``"bottom_up"`` / ``"top_down"``);
    ``kwargs``: its options (:func:`loss_options`)."""
    return LOSSES[get_family(kind)].build(num_keypoints, **kwargs)


def loss_options(kind: str | Family, settings: Any) -> dict[str, Any]:
    """The options of the family's loss read from ``settings`` (any object with those
    attributes, e.g. a training config's ``loss`` section)."""
    return {name: getattr(settings, name) for name in LOSSES[get_family(kind)].options}
