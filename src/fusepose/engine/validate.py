"""Validation during training: the same predictor and dataset loop as ``fusepose eval``.

The model runs through :class:`fusepose.inference.Predictor` with the run's
:class:`~fusepose.description.ModelDescription` (the one its checkpoints carry), over
:func:`fusepose.inference.dataset.evaluate_dataset`, so the AP a checkpoint records is the AP
``fusepose eval --model ... --weights CKPT`` reproduces.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from fusepose.description import ModelDescription
from fusepose.engine.config import Config, config_to_dict
from fusepose.engine.data import build_dataset, target_codec
from fusepose.errors import ConfigError
from fusepose.evaluation import COCO_KEYS
from fusepose.inference.dataset import evaluate_dataset
from fusepose.inference.predictor import Predictor
from fusepose.losses import TagSeparation
from fusepose.modelfile import description_from_config

log = logging.getLogger(__name__)

__all__ = ["evaluate_model", "run_description", "tag_separation"]


def run_description(cfg: Config) -> ModelDescription:
    """The description of the model a config trains (geometry, codec, test settings)."""
    return description_from_config(config_to_dict(cfg))


def evaluate_model(
    model: nn.Module,
    cfg: Config,
    device: torch.device | str,
    desc: ModelDescription | None = None,
) -> dict[str, float]:
    """COCO OKS AP/AR of ``model`` on ``cfg.data.val_ann`` (top-down: ``data.det_file`` boxes
    when given, else the GT boxes)."""
    metrics = score_model(model, cfg, device, desc)
    return {k: float(metrics[k]) for k in COCO_KEYS}


def score_model(
    model: nn.Module,
    cfg: Config,
    device: torch.device | str,
    desc: ModelDescription | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_model` with everything :func:`fusepose.inference.dataset.evaluate_dataset`
    returns: the metrics, ``results`` (the scored people) and the rest. ``data.num_workers``
    threads read the images ahead; in a process group every rank must call it (the images
    are sharded over the ranks, every rank returns the same metrics)."""
    d = cfg.data
    if d.dataset != "coco":
        raise ConfigError(
            f"eval.interval: validation during training scores COCO-format data only, not "
            f"{d.dataset!r}; set eval.interval=0 and score checkpoints with `fusepose eval`"
        )
    desc = desc or run_description(cfg)
    predictor = Predictor(model, device=str(device), description=desc, det_file=d.det_file)
    # every rank of a training run validates its shard of the images (the loop gathers them)
    metrics: dict[str, Any] = evaluate_dataset(
        predictor, d.val_ann, d.val_images, boxes="auto", max_images=d.max_val_images,
        backend=cfg.eval.backend, workers=d.num_workers,
    )  # fmt: skip
    if not metrics["results"]:
        log.warning("validation: the model found no people; AP = 0")
    return metrics


@torch.no_grad()
def tag_separation(
    model: nn.Module,
    cfg: Config,
    device: torch.device | str,
    desc: ModelDescription | None = None,
) -> dict[str, float]:
    """How far apart a bottom-up model's tags put the people of ``cfg.data.val_ann``.

    Each validation image goes through the training codec at the validation geometry (no
    augmentation); the network's 1/4 tag maps are read at every labelled joint of every
    person (``tag_joints``) and summarised by :class:`fusepose.losses.TagSeparation`
    (``tag_within``, ``tag_between``, ``tag_separation``, ``tag_pairs_apart``, ...), with the
    decoder's ``tag_threshold`` as the distance that counts as apart.
    """
    desc = desc or run_description(cfg)
    if not desc.family.tags:
        raise ConfigError(f"model.name: {desc.model} is not bottom-up: it has no tags")
    codec = target_codec(desc, cfg)
    data = build_dataset(cfg, desc, codec, train=False)
    stats = TagSeparation(float(getattr(codec, "tag_threshold", 1.0)))
    k = desc.num_keypoints
    was_training = model.training
    model.eval()
    try:
        for i in range(len(data)):
            sample = data[i]
            out_q = model(sample["image"][None].to(device))[0]
            stats.update(out_q[:, k : 2 * k].float().cpu(), sample["tag_joints"][None])
    finally:
        model.train(was_training)
    return stats.result()
