"""ImageNet initialisation of a bottom-up model's backbone (``model.pretrained``).

    report = load_pretrained_backbone(model, "models/imagenet/hrnet_w32-36af842e.pth")
    report.loaded, report.missing, report.unexpected

Layouts read (the file may be a bare state dict, ``{"state_dict": ...}``, ``module.``-
prefixed, a ``.pth`` / ``.pth.tar`` / ``.bin`` torch file or a ``.safetensors`` file):

- **HRNet ImageNet** (``hrnet``): the official HRNet-Image-Classification checkpoints
  (``hrnet_w32-36af842e.pth``, ``lib/models/cls_hrnet.py``) and timm's ``hrnet_w32``, which
  uses the same module names (its hub weights are the official ones; its
  ``model.safetensors`` has no BatchNorm ``num_batches_tracked`` counters). The backbone names
  ``conv1 bn1 conv2 bn2 layer1 transition1-3 stage2-4`` are renamed by
  :mod:`fusepose.models.convert` (the official HigherHRNet mapping: the pose net and the
  classifier share those modules); the classification head (``incre_modules``,
  ``downsamp_modules``, ``final_layer``, ``classifier``) and the classifier's extra fusion
  layers of its last module (``stage4.2.fuse_layers.1-3``: the pose net fuses into the 1/4
  branch only) are left out, as the official HigherHRNet ``init_weights`` leaves them: for
  ``higherhrnet_w32`` it takes 1,752 tensors (every backbone tensor, BN counters included).
  The official HigherHRNet *pose* checkpoint is read the same way (its backbone only).
- **fusepose** (``fusepose``): every ``backbone.*`` tensor of a fusepose file, e.g. what
  ``fusepose pretrain`` writes (its validated weights: the EMA when validation used it), or
  a trained pose checkpoint of a model with the same backbone.

``strict`` (default): the file must fill every backbone tensor with one of the same shape,
otherwise it is another architecture and is refused (:class:`CheckpointError`, one line);
``strict=False`` loads what fits and reports the rest. BatchNorm ``num_batches_tracked``
counters a file lacks are not counted missing (they are step counters, not weights, and
play no part with BN momentum set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusepose.errors import CheckpointError
from fusepose.models import convert

log = logging.getLogger(__name__)

__all__ = ["BackboneReport", "load_pretrained_backbone", "read_weights"]

_HRNET_MARKERS = (
    "conv1.weight",
    "layer1.0.conv1.weight",
    "transition1.0.0.weight",
    "stage2.0.branches.0.0.conv1.weight",
)
_COUNTER = "num_batches_tracked"


@dataclass
class BackboneReport:
    """What :func:`load_pretrained_backbone` did.

    ``loaded`` / ``missing`` / ``mismatched``: model state-dict names (``backbone.…``) taken
    from the file, not in it, in it with another shape (not loaded); ``unexpected``: the
    file's own names that have no place in the backbone (classification head, fusion layers
    the pose net lacks, a pose head). ``layout``: ``hrnet`` or ``fusepose``.
    """

    path: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    backbone_tensors: int = 0

    def summary(self) -> str:
        """One line for the training log."""
        parts = [
            f"{len(self.loaded)} of {self.backbone_tensors} backbone tensors loaded from "
            f"{self.path} ({self.layout} layout)",
            f"{len(self.missing)} missing",
            f"{len(self.mismatched)} of another shape",
            f"{len(self.unexpected)} of the file's tensors unused",
        ]
        if self.missing:
            parts[1] += f" (e.g. {self.missing[0]})"
        if self.unexpected:
            heads = sorted({n.split(".")[0] for n in self.unexpected})
            parts[3] += f" ({', '.join(heads[:6])})"
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "layout": self.layout, "loaded": list(self.loaded),
            "missing": list(self.missing), "unexpected": list(self.unexpected),
            "mismatched": list(self.mismatched), "backbone_tensors": self.backbone_tensors,
        }  # fmt: skip


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a weight file (torch or ``.safetensors``), prefixes stripped."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint file not found")
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise CheckpointError(
                f"{path}: reading .safetensors needs the safetensors package "
                "(pip install 'fusepose[pretrained]')"
            ) from None
        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"{path}: not a readable .safetensors file ({e})") from None
    else:
        state = convert.state_dict_of(convert.read_torch_file(path), path)
    return convert.strip_prefixes(state)


def _layout(state: dict[str, Any], path: Path) -> str:
    if any(k.startswith("backbone.") for k in state):
        return "fusepose"
    if all(k in state for k in _HRNET_MARKERS):
        return "hrnet"
    names = ", ".join(sorted(state)[:3])
    raise CheckpointError(
        f"{path}: not an HRNet ImageNet checkpoint (HRNet-Image-Classification or timm "
        f"hrnet_*) nor a fusepose one (no backbone.* or {_HRNET_MARKERS[2]}; found {names}, ...)"
    )


def _renamed(state: dict[str, Any], layout: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(model name -> tensor, model name -> file name) of the file's backbone tensors."""
    out: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name, tensor in state.items():
        if layout == "fusepose":
            new = name if name.startswith("backbone.") else None
        elif name.split(".")[0] in convert.OFFICIAL_BACKBONE_MODULES:
            try:
                new = convert.official_to_fusepose_name(name)
            except CheckpointError:  # a backbone-like name no HRNet module has: unused
                new = None
        else:
            new = None
        if new is not None:
            out[new] = tensor
            source[new] = name
    return out, source


def load_pretrained_backbone(
    model: nn.Module, path: str | Path, *, strict: bool = True
) -> BackboneReport:
    """Load the backbone of ``model`` (a registered bottom-up model, or any module with a
    ``backbone``) from the ImageNet classification checkpoint ``path`` (layouts: module
    docstring). Tensors are copied in place; the rest of ``model`` is untouched.

    Raises :class:`CheckpointError` (one line naming ``path``) for an unreadable file, a file
    of another layout, a file none of whose tensors fit, and, with ``strict``, a file that
    leaves backbone tensors missing or of another shape.
    """
    path = Path(path)
    backbone = getattr(model, "backbone", None)
    name = getattr(getattr(model, "info", None), "name", type(model).__name__)
    if not isinstance(backbone, nn.Module):
        raise CheckpointError(f"{path}: {name} has no backbone to initialise")
    state = read_weights(path)
    layout = _layout(state, path)
    weights, source = _renamed(state, layout)
    own = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    report = BackboneReport(str(path), layout, backbone_tensors=len(own))
    taken = set()
    for key, target in own.items():
        if key not in weights:
            if not key.endswith(_COUNTER):
                report.missing.append(key)
        elif tuple(weights[key].shape) != tuple(target.shape):
            report.mismatched.append(key)
        else:
            report.loaded.append(key)
            taken.add(key)
    report.unexpected = [k for k in state if k not in {source[t] for t in taken}]
    if not report.loaded:
        raise CheckpointError(
            f"{path}: no tensor fits the backbone of {name}: a file of another architecture "
            f"({len(report.mismatched)} of another shape, e.g. "
            f"{(report.mismatched or report.missing or ['-'])[0]})"
        )
    if strict and (report.missing or report.mismatched):
        bad = report.mismatched or report.missing
        raise CheckpointError(
            f"{path}: a file of another architecture than the backbone of {name}: "
            f"{len(report.missing)} of its {len(own)} tensors missing, "
            f"{len(report.mismatched)} of another shape (e.g. {bad[0]}); pretrain this backbone "
            "with `fusepose pretrain`, or set model.pretrained_strict=false to load the "
            f"{len(report.loaded)} that fit"
        )
    prefix = len("backbone.")
    backbone.load_state_dict({k[prefix:]: weights[k] for k in report.loaded}, strict=False)
    log.debug("%s", report.summary())  # the trainer logs it at INFO
    return report
