"""Checkpoints: one dict, written atomically, read with ``torch.load(weights_only=True)``.

A fusepose checkpoint is a dict with keys ``format_version, model_name, model_config,
state_dict`` and, for training runs, ``optimizer, scheduler, scaler, ema, epoch, step,
best_metric, rng``. Everything in it is a tensor, a number, a string, a list or a dict, so the
safe (``weights_only``) unpickler can read it back.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusepose.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_REQUIRED = ("format_version", "model_name", "state_dict")


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


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, corrupt or not a torch file): {first}"
        ) from e


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a fusepose checkpoint dict (tensors on CPU).

    Raises CheckpointError naming ``path`` if it is missing, unreadable, truncated, or not a
    fusepose checkpoint (lacks ``format_version`` / ``model_name`` / ``state_dict``).
    """
    path = Path(path)
    obj = _torch_load(path)
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
    return obj


def _strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
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


def load_weights(model: torch.nn.Module, path: str | os.PathLike, *, strict: bool = True):
    """Load weights into ``model`` from ``path``.

    Accepts a fusepose checkpoint (its ``model_name`` must equal ``model.info.name``), a bare
    state dict, or the official HigherHRNet checkpoint (names converted by
    ``fusepose.models.convert``). Returns torch's ``(missing_keys, unexpected_keys)``.
    """
    path = Path(path)
    obj = _torch_load(path)
    expected = getattr(getattr(model, "info", None), "name", None)
    if isinstance(obj, dict) and "model_name" in obj and "state_dict" in obj:
        if expected is not None and obj["model_name"] != expected:
            raise CheckpointError(f"{path}: checkpoint is for {obj['model_name']}, not {expected}")
        state = obj["state_dict"]
    elif isinstance(obj, dict) and _looks_like_state_dict(obj.get("state_dict")):
        state = obj["state_dict"]  # e.g. {'state_dict': ...} from other trainers
    elif _looks_like_state_dict(obj):
        state = obj
    else:
        raise CheckpointError(f"{path}: neither a fusepose checkpoint nor a state dict")
    state = _strip_prefixes(state)
    own = model.state_dict()
    if not any(k in own for k in state):
        state = _try_convert_official(state, path)
    try:
        result = model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: weights do not fit {expected or type(model).__name__}: "
            + _mismatch_summary(model.state_dict(), state)
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


def checkpoint_model_kwargs(path: str | os.PathLike) -> dict[str, Any]:
    """The ``create_model`` keyword arguments a fusepose checkpoint was trained with
    (``num_keypoints`` and the architecture overrides); ``{}`` for other weight files."""
    try:
        obj = load_checkpoint(path)
    except CheckpointError:
        return {}
    cfg = obj.get("model_config") if isinstance(obj, dict) else None
    if not isinstance(cfg, dict):
        return {}
    kwargs = dict(cfg.get("overrides") or {})
    if cfg.get("num_keypoints") is not None:
        kwargs["num_keypoints"] = int(cfg["num_keypoints"])
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def _try_convert_official(state: dict[str, Any], path: Path) -> dict[str, Any]:
    try:
        from fusepose.models import convert  # type: ignore[attr-defined]
    except ImportError:
        return state
    fn = getattr(convert, "convert_official_higherhrnet", None)
    if fn is None:
        return state
    try:
        return dict(fn(state))
    except Exception as e:  # noqa: BLE001 - report as a checkpoint problem
        raise CheckpointError(f"{path}: could not convert official HigherHRNet names: {e}") from e


# ------------------------------------------------------------------------------ RNG states


def get_rng_state() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU + CUDA) as tensors / lists / ints only."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            np_state[0],
            torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    py = state["python"]
    random.setstate((int(py[0]), tuple(int(x) for x in py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (str(n[0]), np.asarray(n[1], dtype=np.uint32), int(n[2]), int(n[3]), float(n[4]))
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
