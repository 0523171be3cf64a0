"""Model files: read and write checkpoints, and turn any model file into a runnable model.

- :func:`save_checkpoint` / :func:`load_checkpoint`: one dict, written atomically, read with
  ``torch.load(weights_only=True)``.
- :func:`load_weights`: weights into an existing module (fusepose checkpoint, bare state dict
  or the official HigherHRNet file).
- :func:`load_model`: ``(model, description)`` from a checkpoint, rebuilt with the
  architecture it was trained with; :func:`describe`: the
  :class:`~fusepose.description.ModelDescription` of a checkpoint or an exported ONNX file.
- :func:`default_description` / :func:`description_from_config`: the description of a
  registered model with defaults, or of a training config.

A fusepose checkpoint is a dict with ``format_version, model_name, model_config, state_dict``,
``description`` (format 2), and for training runs ``config, optimizer, scheduler, scaler, ema,
epoch, step, best_metric, rng``. Format-1 checkpoints (no ``description``) are described from
their ``config`` the way their validation ran.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fusepose.description import ModelDescription, default_description_for, skeleton_for
from fusepose.errors import CheckpointError, ConfigError, FusePoseError
from fusepose.export.ir import is_exported
from fusepose.export.metadata import read_description
from fusepose.files import atomic_write
from fusepose.geometry import InputGeometry
from fusepose.limits import check_number
from fusepose.modelcheck import check_fits, materialize, model_skeleton, state_tensors
from fusepose.models import convert
from fusepose.models.registry import get_model_info

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "default_description",
    "describe",
    "description_from_config",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "save_checkpoint",
]

FORMAT_VERSION = 2
_REQUIRED = ("format_version", "model_name", "state_dict")


# ------------------------------------------------------------------------------ files


def save_checkpoint(path: str | os.PathLike, ckpt: Mapping[str, Any]) -> Path:
    """Write ``ckpt`` to ``path`` atomically (:func:`fusepose.files.atomic_write`): a crash
    at any point leaves the previous file intact."""
    path = Path(path)
    data = dict(ckpt)
    data.setdefault("format_version", FORMAT_VERSION)
    with atomic_write(path, "wb") as f:
        torch.save(data, f)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a fusepose checkpoint dict (tensors on CPU).

    Raises CheckpointError naming ``path`` if it is missing, unreadable, truncated, or not a
    fusepose checkpoint (lacks ``format_version`` / ``model_name`` / ``state_dict``).
    """
    path = Path(path)
    obj = convert.read_torch_file(path)
    _check_fusepose(obj, path)
    return obj


def _check_fusepose(obj: Any, path: Path) -> None:
    if not isinstance(obj, dict) or any(k not in obj for k in _REQUIRED):
        keys = sorted(map(str, obj))[:5] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path}: not a fusepose checkpoint (needs keys {list(_REQUIRED)}; found {keys})"
        )
    try:
        version = check_number(obj["format_version"], "format_version", 1, integer=True)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this fusepose "
            f"(reads up to {FORMAT_VERSION})"
        )
    if not isinstance(obj["model_name"], str):
        raise CheckpointError(f"{path}: model_name {obj['model_name']!r} is not a name")


def load_weights(
    model: torch.nn.Module, path: str | os.PathLike, *, strict: bool = True, state: Any = None
):
    """Load weights into ``model`` from ``path``.

    Accepts a fusepose checkpoint (its ``model_name`` must equal ``model.info.name``; the
    validated weights are taken, see :func:`load_model`), a bare state dict, or the official
    HigherHRNet checkpoint (names converted by ``fusepose.models.convert``). ``state``: an
    already loaded file object (saves reading ``path`` twice). ``strict``: every tensor must
    fit (:func:`fusepose.modelcheck.check_fits`). Returns torch's
    ``(missing_keys, unexpected_keys)``.
    """
    path = Path(path)
    obj = convert.read_torch_file(path) if state is None else state
    expected = getattr(getattr(model, "info", None), "name", None)
    if (
        convert.is_fusepose_checkpoint(obj)
        and expected is not None
        and obj["model_name"] != expected
    ):
        raise CheckpointError(f"{path}: checkpoint is for {obj['model_name']}, not {expected}")
    own = model.state_dict()
    weights = _inference_weights(obj, own, path)
    if strict:
        check_fits(own, weights, str(path), expected or type(model).__name__)
    elif weights and not any(k in own for k in weights):
        raise CheckpointError(f"{path}: none of its weights' names is one of "
                              f"{expected or type(model).__name__}'s")  # fmt: skip
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # strict=False: a tensor of another shape
        raise CheckpointError(
            f"{path}: weights do not fit {expected or type(model).__name__}: "
            + " ".join(str(e).split())[:300]
        ) from None
    log.info("loaded weights from %s", path)
    return result


def _inference_weights(obj: Any, own: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The weights of a loaded file (:func:`convert.state_dict_of`, checked to be a mapping
    of tensors, prefixes stripped) in fusepose names: the official HigherHRNet file's are
    converted when none of them is one of ``own``'s names."""
    weights = convert.strip_prefixes(state_tensors(convert.state_dict_of(obj, path), str(path)))
    if weights and not any(k in own for k in weights) and convert.is_official_higherhrnet(weights):
        weights = dict(convert.convert_official_higherhrnet(weights, str(path)))
    return weights


# ------------------------------------------------------------------------------ descriptions


def default_description(
    name: str,
    *,
    num_keypoints: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    skeleton: Any = None,
    geometry: InputGeometry | None = None,
) -> ModelDescription:
    """The description of registered model ``name`` with its paper's defaults
    (:func:`fusepose.description.default_description_for`)."""
    return default_description_for(
        _info(name), num_keypoints=num_keypoints, overrides=overrides, skeleton=skeleton,
        geometry=geometry,
    )  # fmt: skip


def description_from_config(
    cfg: Mapping[str, Any], val: Mapping[str, Any] | None = None
) -> ModelDescription:
    """The description of a model trained with config ``cfg`` (``config_to_dict`` output):
    the geometry, codec and test settings its validation uses."""
    model = dict(cfg.get("model") or {})
    data = dict(cfg.get("data") or {})
    ev = dict(cfg.get("eval") or {})
    name = str(model.get("name") or "")
    info = _info(name)
    k = int(model.get("num_keypoints") or info.num_keypoints)
    if data.get("resize", "crop") not in ("crop", "letterbox"):
        raise ConfigError(f"data.resize: {data['resize']!r} is not 'crop' or 'letterbox'")
    fam = info.family
    geo = fam.geometry(data.get("input_size") or info.input_size, data.get("resize"))
    skel = skeleton_for(str(data.get("dataset") or info.dataset), k, data.get("skeleton"))
    desc = default_description(
        name, num_keypoints=k, overrides=model.get("overrides"), skeleton=skel, geometry=geo
    )
    # the family's codec parameters, as the config's data section sets them (data.sigma, ...)
    codec_kwargs = {key: type(v)(data.get(key, v)) for key, v in fam.codec_defaults.items()}
    return desc.replace(
        codec=fam.default_codec_spec(**codec_kwargs),
        test_flip=bool(ev.get("flip_test", False)),
        val=dict(val) if val else None,
    )


def _info(name: str):
    try:
        return get_model_info(name)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None


def _described(obj: Any, path: Path, name: str | None) -> ModelDescription:
    """The description of a loaded checkpoint object (format 2, format 1 or a bare state
    dict); what the file stores is checked field by field (CheckpointError naming ``path``)."""
    if convert.is_fusepose_checkpoint(obj):
        if not isinstance(obj["model_name"], str):
            raise CheckpointError(f"{path}: model_name {obj['model_name']!r} is not a name")
        if name and obj["model_name"] != name:
            raise CheckpointError(f"{path}: checkpoint is for {obj['model_name']}, not {name}")
        if "description" in obj and obj["description"] is not None:
            desc = ModelDescription.from_dict(obj["description"], str(path))
            if desc.model != obj["model_name"]:
                raise CheckpointError(f"{path}: model_name {obj['model_name']!r} and its "
                                      f"description's model {desc.model!r} disagree")  # fmt: skip
            return desc
        try:
            return _described_legacy(obj)
        except FusePoseError as e:
            raise CheckpointError(f"{path}: {e}") from None
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
            raise CheckpointError(f"{path}: malformed training config ({e})") from None
    if not name:
        raise CheckpointError(
            f"{path}: a bare state dict does not say which model it is: pass the model name "
            "(see `fusepose models`)"
        )
    return default_description(name)


def _described_legacy(obj: dict[str, Any]) -> ModelDescription:
    """A format-1 checkpoint's description: from its training config, else its model_config."""
    cfg = obj.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return description_from_config(cfg, _legacy_val(obj, cfg))
    mc = obj.get("model_config") if isinstance(obj.get("model_config"), dict) else {}
    return default_description(
        str(obj["model_name"]), num_keypoints=mc.get("num_keypoints"),
        overrides=mc.get("overrides"),
    )  # fmt: skip


def _legacy_val(obj: dict[str, Any], cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    best = obj.get("best_metric")
    if best is None or not (float(best) > float("-inf")):
        return None
    data, ev = cfg.get("data") or {}, cfg.get("eval") or {}
    return {
        "metric": ev.get("metric", "AP"),
        "value": float(best),
        "ann": data.get("val_ann"),
        "images": data.get("val_images"),
        "boxes": "det" if data.get("det_file") else "gt",
    }


def _checked(path: Path, name: str | None) -> tuple[ModelDescription, torch.nn.Module, dict]:
    """A checkpoint read as data and checked before any tensor is built
    (:mod:`fusepose.modelcheck`): ``(description, meta skeleton, inference weights)``."""
    obj = convert.read_torch_file(path)
    if isinstance(obj, dict) and "format_version" in obj:
        _check_fusepose(obj, path)
    desc = _described(obj, path, name)
    skeleton = model_skeleton(desc, str(path))
    own = skeleton.state_dict()
    weights = _inference_weights(obj, own, path)
    what = f"{desc.model} with {desc.num_keypoints} keypoints" + (
        f" and overrides {desc.overrides}" if desc.overrides else "")  # fmt: skip
    check_fits(own, weights, str(path), what)
    return desc, skeleton, weights


def describe(path: str | os.PathLike, name: str | None = None) -> ModelDescription:
    """The :class:`ModelDescription` of a checkpoint, an exported ``.onnx`` file or an
    OpenVINO IR ``.xml``, checked as :func:`load_model` checks it (a file ``inspect`` accepts
    is one every verb runs)."""
    path = Path(path)
    if is_exported(path):
        return read_description(path)
    return _checked(path, name)[0]


def load_model(
    path: str | os.PathLike, name: str | None = None, *, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, ModelDescription]:
    """``(model in eval mode, description)`` from a checkpoint file.

    The architecture is rebuilt from the file (registered name, keypoint count, overrides), so
    any checkpoint the project writes runs with no flags; ``name`` checks it (and is required
    for bare state dicts and the official HigherHRNet file). The weights are the ones the
    checkpoint's validation scored (its EMA when validation used the EMA). The file is read
    as data and checked first (:func:`_checked`); memory is taken only for a model whose
    weights fit.
    """
    path = Path(path)
    if is_exported(path):
        raise ConfigError(f"{path}: an exported file runs with the onnx / openvino backend, not "
                          "as a torch model")  # fmt: skip
    desc, skeleton, weights = _checked(path, name)
    model = materialize(skeleton, weights)
    log.info("loaded weights from %s", path)
    return model.to(device).eval(), desc


def check_loadable(path: str | os.PathLike, name: str | None = None) -> ModelDescription:
    """:func:`describe` with one-line errors for every failure (for argument validation)."""
    try:
        return describe(path, name)
    except FusePoseError:
        raise
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
