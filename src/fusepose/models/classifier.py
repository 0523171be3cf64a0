"""ImageNet-style classifier around a bottom-up model's backbone, for ``fusepose pretrain``.

The head is HRNet-Image-Classification's (``cls_hrnet.py``, the network behind
``hrnet_w32-36af842e.pth``): the backbone keeps all its branches at the end (the last HR
module fuses into every branch), each branch goes through one Bottleneck (``incre_modules``:
widths -> 4 x head_channels, i.e. 128 / 256 / 512 / 1024 for W32), the highest-resolution
result is carried down by stride-2 3x3 conv-BN-ReLUs (``downsamp_modules``) and summed into
each lower branch, a 1x1 conv-BN-ReLU widens it to ``num_features`` (``final_layer``, 2048),
then global average pooling and a linear ``classifier``. The head's module names equal the
official ones.

Only ``backbone.*`` carries over to the pose model (``load_pretrained_backbone``); the fusion
layers the pose backbone does not have (``backbone.stages[-1][-1].fuse_layers.1..``) and the
head are dropped, as the official HigherHRNet ``init_weights`` drops them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusepose.errors import ConfigError
from fusepose.models.backbones.hrnet import HRNetBackbone
from fusepose.models.blocks.conv import BN_MOMENTUM
from fusepose.models.blocks.resnet import Bottleneck
from fusepose.models.init import init_from_scratch, zero_init_residuals
from fusepose.models.registry import create_model, get_model_info

__all__ = ["BackboneClassifier", "build_classifier"]

HRNET_HEAD_CHANNELS = (32, 64, 128, 256)  # cls_hrnet.py _make_head


class BackboneClassifier(nn.Module):
    """x (B, 3, H, W) normalized RGB, H and W multiples of 32 -> logits (B, num_classes).

    ``backbone``: an :class:`HRNetBackbone` built with ``multi_scale_output=True``.
    ``model_name``: ``"<registered bottom-up model>/classifier"`` (checkpoints, messages).
    """

    def __init__(
        self,
        backbone: HRNetBackbone,
        num_classes: int,
        head_channels: tuple[int, ...] = HRNET_HEAD_CHANNELS,
        num_features: int = 2048,
        model_name: str = "",
    ) -> None:
        super().__init__()
        widths = tuple(backbone.cfg.widths)
        if len(head_channels) != len(widths):
            raise ConfigError(
                f"classifier head_channels {tuple(head_channels)}: need one per branch {widths}"
            )
        if num_classes < 2:
            raise ConfigError(f"classifier: num_classes must be >= 2, got {num_classes}")
        self.backbone = backbone
        self.model_name = model_name
        outs = [c * Bottleneck.expansion for c in head_channels]
        self.incre_modules = nn.ModuleList(
            nn.Sequential(Bottleneck(w, c)) for w, c in zip(widths, head_channels, strict=True)
        )
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(outs[i], outs[i + 1], 3, 2, 1),
                nn.BatchNorm2d(outs[i + 1], momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            )
            for i in range(len(outs) - 1)
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(outs[-1], num_features, 1),
            nn.BatchNorm2d(num_features, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(num_features, int(num_classes))
        self.num_classes = int(num_classes)

    def forward(self, x: Tensor) -> Tensor:
        ys = self.backbone.forward_branches(x)
        y = self.incre_modules[0](ys[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](ys[i + 1]) + down(y)
        y = self.final_layer(y)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def build_classifier(
    name: str,
    num_classes: int,
    *,
    head_channels: tuple[int, ...] = HRNET_HEAD_CHANNELS,
    num_features: int = 2048,
    **overrides: Any,
) -> BackboneClassifier:
    """The classifier for the backbone of registered bottom-up model ``name`` (with its
    architecture ``overrides``), He-initialised as HRNet-Image-Classification's
    ``init_weights`` (conv weights Kaiming-normal fan-out, BN 1 / 0), then with every residual
    block starting as its shortcut and every attention gate as a constant
    (:func:`~fusepose.models.init.zero_init_residuals`; the Ghost-Block networks do not learn
    without it)."""
    try:
        info = get_model_info(name)
    except KeyError as e:
        raise ConfigError(f"model.name: {e.args[0]}") from None
    pose = create_model(name, **overrides)
    if info.family.needs_boxes or not isinstance(getattr(pose, "backbone", None), HRNetBackbone):
        raise ConfigError(
            f"model.name: {name!r} is {info.kind}; `fusepose pretrain` pretrains the HRNet-style "
            "backbones of the bottom-up models"
        )
    backbone = HRNetBackbone(pose.backbone.cfg, multi_scale_output=True)
    model = BackboneClassifier(
        backbone, num_classes, tuple(head_channels), int(num_features), f"{name}/classifier"
    )
    init_from_scratch(model, output_std=None)
    zero_init_residuals(model)
    return model
