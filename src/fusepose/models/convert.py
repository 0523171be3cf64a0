"""Checkpoint layouts: reading weight files, and official HRNet names -> fusepose names.

- :func:`read_torch_file`, :func:`state_dict_of`, :func:`strip_prefixes`: the one way a
  weight file is read (``torch.load(weights_only=True)``) and its weights picked out (a
  fusepose checkpoint's validated weights, ``{'state_dict': ...}`` of other trainers, or a bare
  state dict), used by :mod:`fusepose.modelfile` and :mod:`fusepose.models.pretrained`.
- The official name mapping below.

The official model (``lib/models/pose_higher_hrnet.py`` of HRNet/HigherHRNet-Human-Pose-
Estimation) uses flat names (``conv1``, ``layer1``, ``transition1``, ``stage2``, ``final_layers``,
``deconv_layers``) and bare ``nn.Sequential`` indices for conv/BN pairs. fusepose groups them
under ``backbone.`` / ``head.`` and names conv/BN pairs ``.conv`` / ``.bn``. The mapping is a
pure rename: every official tensor maps to exactly one fusepose tensor of the same shape.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fusepose.errors import CheckpointError

_PAIR = {"0": "conv", "1": "bn"}

# (pattern, replacement function); tried in order, first match wins.
_RULES: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(r"^(conv|bn)([12])\.(\w+)$"),
        lambda m: f"backbone.stem.conv{m[2]}.{'conv' if m[1] == 'conv' else 'bn'}.{m[3]}",
    ),
    (re.compile(r"^layer1\.(.+)$"), lambda m: f"backbone.stage1.{m[1]}"),
    # new branch: transitionN.i.k.{0,1}.param (chain of stride-2 conv-BN-ReLU)
    (
        re.compile(r"^transition(\d)\.(\d+)\.(\d+)\.([01])\.(\w+)$"),
        lambda m: f"backbone.transitions.{int(m[1]) - 1}.{m[2]}.{m[3]}.{_PAIR[m[4]]}.{m[5]}",
    ),
    # width change of an existing branch: transitionN.i.{0,1}.param
    (
        re.compile(r"^transition(\d)\.(\d+)\.([01])\.(\w+)$"),
        lambda m: f"backbone.transitions.{int(m[1]) - 1}.{m[2]}.0.{_PAIR[m[3]]}.{m[4]}",
    ),
    (
        re.compile(r"^stage(\d)\.(\d+)\.branches\.(.+)$"),
        lambda m: f"backbone.stages.{int(m[1]) - 2}.{m[2]}.branches.{m[3]}",
    ),
    # fusion from a higher-res branch: chain of stride-2 convs, fuse_layers.i.j.k.{0,1}.param
    (
        re.compile(r"^stage(\d)\.(\d+)\.fuse_layers\.(\d+)\.(\d+)\.(\d+)\.([01])\.(\w+)$"),
        lambda m: (
            f"backbone.stages.{int(m[1]) - 2}.{m[2]}.fuse_layers.{m[3]}.{m[4]}.{m[5]}."
            f"{_PAIR[m[6]]}.{m[7]}"
        ),
    ),
    # fusion from a lower-res branch: 1x1 conv, BN, upsample: fuse_layers.i.j.{0,1}.param
    (
        re.compile(r"^stage(\d)\.(\d+)\.fuse_layers\.(\d+)\.(\d+)\.([01])\.(\w+)$"),
        lambda m: (
            f"backbone.stages.{int(m[1]) - 2}.{m[2]}.fuse_layers.{m[3]}.{m[4]}.0."
            f"{_PAIR[m[5]]}.{m[6]}"
        ),
    ),
    (re.compile(r"^final_layers\.(.+)$"), lambda m: f"head.final_layers.{m[1]}"),
    (
        re.compile(r"^deconv_layers\.(\d+)\.0\.([01])\.(\w+)$"),
        lambda m: f"head.deconv_layers.{m[1]}.{'deconv' if m[2] == '0' else 'bn'}.{m[3]}",
    ),
    (
        # each head block sits in its own nn.Sequential: deconv_layers.d.(k + 1).0.rest
        re.compile(r"^deconv_layers\.(\d+)\.(\d+)\.0\.(.+)$"),
        lambda m: f"head.deconv_layers.{m[1]}.blocks.{int(m[2]) - 1}.{m[3]}",
    ),
]

_OFFICIAL_MARKERS = ("conv1.weight", "layer1.0.conv1.weight", "final_layers.0.weight")

# top-level module names of the official HRNet backbone, shared by HigherHRNet
# (pose_higher_hrnet.py), the ImageNet classifier (HRNet-Image-Classification cls_hrnet.py) and
# timm's hrnet_*: every other name of those files belongs to a head
OFFICIAL_BACKBONE_MODULES = frozenset(
    {"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "transition2", "transition3",
     "stage2", "stage3", "stage4"}
)  # fmt: skip


# ------------------------------------------------------------------------------ weight files


def read_torch_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; CheckpointError naming ``path`` when it
    is missing, a folder, truncated, corrupt or not a torch file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # a pickle protocol note is no concern of the user's
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        if "Weights only load failed" in text:
            # a file is data: never pass on torch's advice to load it as code
            found = re.search(r"GLOBAL ([\w.]+)", text)
            if found:
                raise CheckpointError(
                    f"{path}: refused: the file holds Python objects ({found[1]}), not only "
                    "tensors and plain data; fusepose reads model files as data"
                ) from None
            detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
            first = detail[1].strip() if detail else "not tensors and plain data"
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, corrupt or not a torch file): {first}"
        ) from None


def is_fusepose_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and "model_name" in obj and "state_dict" in obj


def strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def _looks_like_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def validated_on_ema(obj: dict[str, Any]) -> bool:
    """True if the run that wrote fusepose checkpoint ``obj`` validated its EMA weights."""
    cfg = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    ev, tr = cfg.get("eval") or {}, cfg.get("train") or {}
    return bool(ev.get("use_ema", False)) and float(tr.get("ema_decay", 0.0) or 0.0) > 0


def state_dict_of(obj: Any, path: str | Path) -> dict[str, Any]:
    """The inference weights of a loaded file: a fusepose checkpoint's validated weights (its
    EMA when validation used the EMA), ``{'state_dict': ...}`` of other trainers (timm's and
    the official ones), or a bare state dict."""
    if is_fusepose_checkpoint(obj):
        ema = obj.get("ema")
        if validated_on_ema(obj) and isinstance(ema, dict) and ema.get("state_dict"):
            return ema["state_dict"]
        return obj["state_dict"]
    if isinstance(obj, dict) and _looks_like_state_dict(obj.get("state_dict")):
        return obj["state_dict"]
    if _looks_like_state_dict(obj):
        return obj
    raise CheckpointError(f"{path}: neither a fusepose checkpoint nor a state dict")


# ------------------------------------------------------------------------------ names


def is_official_higherhrnet(state_dict: Mapping[str, Any]) -> bool:
    """True if ``state_dict`` (optionally ``module.``-prefixed) uses the official names."""
    sd = strip_prefixes(state_dict)
    return all(k in sd for k in _OFFICIAL_MARKERS)


def official_to_fusepose_name(name: str) -> str:
    """Map one official HigherHRNet state-dict name to its fusepose name.

    Raises CheckpointError for a name outside the official HigherHRNet layout.
    """
    for pattern, repl in _RULES:
        m = pattern.match(name)
        if m:
            return repl(m)
    raise CheckpointError(f"official HigherHRNet checkpoint: unexpected parameter name {name!r}")


def convert_official_higherhrnet(
    state_dict: Mapping[str, Any], source: str = "<state_dict>"
) -> dict[str, Any]:
    """Rename an official HigherHRNet state dict (e.g. ``pose_higher_hrnet_w32_512.pth``) to
    fusepose names (model ``higherhrnet_w32``). Tensors are not copied or changed.

    ``source`` names the checkpoint file in error messages.
    """
    sd = strip_prefixes(state_dict)
    if not is_official_higherhrnet(sd):
        raise CheckpointError(
            f"{source}: not an official HigherHRNet state dict (missing one of {_OFFICIAL_MARKERS})"
        )
    out: dict[str, Any] = {}
    for name, tensor in sd.items():
        try:
            new = official_to_fusepose_name(name)
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        out[new] = tensor
    return out
