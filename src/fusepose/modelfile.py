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
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fusepose.description import ModelDescription, default_description_for, skeleton_for
from fusepose.errors import CheckpointError, ConfigError, FusePoseError
from fusepose.export.metadata import read_description
from fusepose.geometry import InputGeometry
from fusepose.models import convert
from fusepose.models.registry import create_model, get_model_info

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
    """Write ``ckpt`` to ``path`` atomically.

    The data goes to a temporary file in the same folder, is flushed and fsynced, then
    ``os.replace`` puts it in place; a crash at any point leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(ckpt)
    data.setdefault("format_version", FORMAT_VERSION)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable (POSIX); not possible / needed on Windows.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        keys = sorted(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path}: not a fusepose checkpoint (needs keys {list(_REQUIRED)}; found {keys})"
        )
    if int(obj["format_version"]) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {obj['format_version']} is newer than this fusepose "
            f"(reads up to {FORMAT_VERSION})"
        )


def load_weights(
    model: torch.nn.Module, path: str | os.PathLike, *, strict: bool = True, state: Any = None
):
    """Load weights into ``model`` from ``path``.

    Accepts a fusepose checkpoint (its ``model_name`` must equal ``model.info.name``; the
    validated weights are taken, see :func:`load_model`), a bare state dict, or the official
    HigherHRNet checkpoint (names converted by ``fusepose.models.convert``). ``state``: an
    already loaded file object (saves reading ``path`` twice). Returns torch's
    ``(missing_keys, unexpected_keys)``.
    """
    path = Path(path)
    obj = convert.read_torch_file(path) if state is None else state
    expected = getattr(getattr(model, "info", None), "name", None)
    if convert.is_fusepose_checkpoint(obj) and expected is not None and obj["model_name"] != expected:
        raise CheckpointError(f"{path}: checkpoint is for {obj['model_name']}, not {expected}")
    weights = convert.strip_prefixes(convert.state_dict_of(obj, path))
    own = model.state_dict()
    if not any(k in own for k in weights):
        try:
            weights = dict(convert.convert_official_higherhrnet(weights))
        except Exception as e:  # noqa: BLE001 - report as a checkpoint problem
            raise CheckpointError(
                f"{path}: weights do not fit {expected or type(model).__name__} and are not the "
                f"official HigherHRNet layout ({e})"
            ) from None
    try:
        result = model.load_state_dict(weights, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: weights do not fit {expected or type(model).__name__}: "
            + _mismatch_summary(model.state_dict(), weights)
        ) from e
    log.info("loaded weights from %s", path)
    return result


def _mismatch_summary(own: dict[str, Any], state: dict[str, Any]) -> str:
    """One line: how many tensors are missing, unexpected or of another shape (first of each)."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", shape)):
        if keys:
            parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
    return "; ".join(parts) or "incompatible state dict"


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
    """The description of a loaded checkpoint object (format 2, format 1 or a bare state dict)."""
    if convert.is_fusepose_checkpoint(obj):
        if name and obj["model_name"] != name:
            raise CheckpointError(f"{path}: checkpoint is for {obj['model_name']}, not {name}")
        if isinstance(obj.get("description"), dict):
            return ModelDescription.from_dict(obj["description"], str(path))
        cfg = obj.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
            return description_from_config(cfg, _legacy_val(obj, cfg))
        mc = obj.get("model_config") if isinstance(obj.get("model_config"), dict) else {}
        return default_description(
            str(obj["model_name"]), num_keypoints=mc.get("num_keypoints"),
            overrides=mc.get("overrides"),
        )  # fmt: skip
    if not name:
        raise CheckpointError(
            f"{path}: a bare state dict does not say which model it is: pass the model name "
            "(see `fusepose models`)"
        )
    return default_description(name)


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


def describe(path: str | os.PathLike, name: str | None = None) -> ModelDescription:
    """The :class:`ModelDescription` of a checkpoint or an exported ``.onnx`` file."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return read_description(path)
    return _described(convert.read_torch_file(path), path, name)


def load_model(
    path: str | os.PathLike, name: str | None = None, *, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, ModelDescription]:
    """``(model in eval mode, description)`` from a checkpoint file.

    The architecture is rebuilt from the file (registered name, keypoint count, overrides), so
    any checkpoint the project writes runs with no flags; ``name`` checks it (and is required
    for bare state dicts and the official HigherHRNet file). The weights are the ones the
    checkpoint's validation scored (its EMA when validation used the EMA).
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise ConfigError(f"{path}: an ONNX file runs with the onnx backend, not as a torch model")
    obj = convert.read_torch_file(path)
    if isinstance(obj, dict) and "format_version" in obj:
        _check_fusepose(obj, path)
    desc = _described(obj, path, name)
    try:
        model = create_model(desc.model, num_keypoints=desc.num_keypoints, **desc.overrides)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot build {desc.model!r} with {desc.overrides}: {e}") from None
    load_weights(model, path, state=obj)
    return model.to(device).eval(), desc


def check_loadable(path: str | os.PathLike, name: str | None = None) -> ModelDescription:
    """:func:`describe` with one-line errors for every failure (for argument validation)."""
    try:
        return describe(path, name)
    except FusePoseError:
        raise
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
