"""The model a training config builds, and BatchNorm and DDP helpers for training
(``init_from_scratch`` lives in :mod:`fusepose.models.init`)."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from fusepose.engine.config import Config
from fusepose.errors import ConfigError
from fusepose.files import write_json_atomic
from fusepose.modelfile import load_weights
from fusepose.models.init import init_from_scratch
from fusepose.models.pretrained import BackboneReport, load_pretrained_backbone
from fusepose.models.registry import create_model

log = logging.getLogger(__name__)

__all__ = ["build_model", "freeze_batchnorm", "init_from_scratch", "unwrap"]


def build_model(cfg: Config, report_dir: Path | None) -> tuple[nn.Module, BackboneReport | None]:
    """The registered model of ``cfg.model``: init, then ``weights`` or ``pretrained``; and the
    backbone report of ``pretrained`` (logged and written to ``report_dir/pretrained.json``
    when ``report_dir`` is given, i.e. on the main process)."""
    m = cfg.model
    if m.init not in ("official", "scratch"):
        raise ConfigError(f"model.init: {m.init!r} is not 'official' or 'scratch'")
    if m.weights and m.pretrained:
        raise ConfigError(
            "model.weights and model.pretrained: set one (weights: the whole model; "
            "pretrained: an ImageNet checkpoint for the backbone)"
        )
    model = create_model(m.name, num_keypoints=m.num_keypoints, **m.overrides)
    if m.weights:
        load_weights(model, m.weights, strict=False)
        return model, None
    if m.init == "scratch":
        init_from_scratch(model)
    report = None
    if m.pretrained:
        if not Path(m.pretrained).is_file():
            raise ConfigError(
                f"model.pretrained: {m.pretrained} not found (the ImageNet checkpoint of the "
                "backbone; set model.pretrained=null to train from scratch)"
            )
        report = load_pretrained_backbone(model, m.pretrained, strict=m.pretrained_strict)
        if report_dir is not None:
            log.info("model.pretrained: %s", report.summary())
            write_json_atomic(report_dir / "pretrained.json", report.to_dict())
    return model, report


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics used and not updated)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
