"""Experiment configs: nested frozen dataclasses loaded from YAML, with dotted overrides.

Unknown keys are errors (``ConfigError`` naming the key and the file); values are converted
to the field's declared type (``"1e-3"`` -> float, ``"[200, 260]"`` -> tuple of int, ...).

    cfg = load_config("configs/lmfnet_coco-512_1xb12-300e.yaml", overrides=["optim.lr=2e-3"])
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from fusepose.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """``create_model(name, num_keypoints=..., **overrides)``; ``weights``: optional init path."""

    name: str = "lmfnet"
    num_keypoints: int = 17
    overrides: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    # "official": the model's own init (HigherHRNet: every conv N(0, 0.001), made for an
    # ImageNet-pretrained backbone); "scratch": He init of the hidden convs for training from
    # random weights (see fusepose.engine.trainer.init_from_scratch); ignored with `weights`
    init: str = "official"


@dataclass(frozen=True)
class DataConfig:
    """Dataset files and targets. ``input_size`` is (H, W) in input pixels.

    ``dataset``: ``coco`` (COCO-format keypoints, also used for the synthetic set) or ``mpii``.
    Augmentation follows HigherHRNet §2.5 (bottom-up) / Lite-HRNet (top-down).
    """

    dataset: str = "coco"
    train_ann: str = ""
    train_images: str = ""
    val_ann: str = ""
    val_images: str = ""
    det_file: str | None = None
    input_size: tuple[int, int] = (512, 512)
    # bottom-up geometry: "crop" = HigherHRNet (training: square crop of the short side,
    # validation: short side -> input_size[0]); "letterbox" = the whole image scaled to fit
    # input_size (H, W) and centred, the same warp in training and validation
    resize: str = "crop"
    sigma: float = 2.0
    max_people: int = 30
    skeleton: str = "coco"
    num_workers: int = 2
    # augmentation
    flip_prob: float = 0.5
    rotation: float = 30.0
    scale_range: tuple[float, float] = (0.75, 1.5)
    translate: float = 40.0
    half_body_prob: float = 0.0
    augment: bool = True  # False: no flip / rotation / shift / half body; scale = scale_range[0]
    # use at most this many training / validation images (0 = all); for smoke runs
    max_train_images: int = 0
    max_val_images: int = 0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 300
    batch_size: int = 12  # per process (per GPU)
    amp: bool = True  # only takes effect on CUDA
    clip_grad_norm: float = 0.0  # 0 = off
    ema_decay: float = 0.0  # 0 = no EMA
    seed: int = 0
    checkpoint_interval_steps: int = 0  # also save last.pth every N steps (0 = per epoch only)
    log_interval: int = 20  # steps between console / CSV lines
    sync_bn: bool = False
    freeze_bn: bool = False  # keep BN in eval mode (running stats frozen) while training
    max_steps_per_epoch: int = 0  # 0 = full epoch; for smoke runs


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    nesterov: bool = False


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "multistep"  # multistep | cosine | constant
    milestones: tuple[int, ...] = (200, 260)  # epochs
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_factor: float = 1e-3
    min_lr: float = 0.0  # cosine floor


@dataclass(frozen=True)
class LossConfig:
    heatmap_weights: tuple[float, ...] = (1.0, 1.0)  # bottom-up: per resolution
    push_factor: float = 1e-3
    pull_factor: float = 1e-3
    # push term of the AE loss: "exp" (HigherHRNet's default) or "max" (its hinge variant)
    ae_type: str = "exp"
    stage_weights: tuple[float, ...] | None = None  # top-down: per output (None = all 1.0)


@dataclass(frozen=True)
class EvalConfig:
    interval: int = 10  # validate every N epochs (0 = never)
    metric: str = "AP"
    flip_test: bool = True
    backend: str = "pycocotools"
    use_ema: bool = True


@dataclass(frozen=True)
class RuntimeConfig:
    out_dir: str = "runs"
    name: str = ""  # run folder name; default: the config file stem
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int = 0  # torch CPU threads (0 = torch default)
    tensorboard: bool = True
    progress: bool = True


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


# ---------------------------------------------------------------------------------- loading


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` (from YAML) to type hint ``tp``; ConfigError with ``where`` if not."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (tuple, list):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool) and origin is tuple:
            value = [value] if not isinstance(value, str) else yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], where) for v in value)
        if origin is tuple and args:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {list(value)!r}")
            return tuple(_convert(v, a, where) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        out = [_convert(v, inner, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
            return value.lower() in {"true", "yes", "1"}
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key {_join(where, key)!r} (allowed: {', '.join(sorted(names))})"
            )
        kwargs[key] = _convert(value, hints[key], f"{where}: {_join(where, key)}")
    return cls(**kwargs)


def _join(where: str, key: str) -> str:
    # `where` looks like "file.yaml" or "file.yaml: a.b"; keep the dotted path part.
    prefix = where.split(": ", 1)[1] if ": " in where else ""
    return f"{prefix}.{key}" if prefix else str(key)


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """Build a :class:`Config` from a nested dict; unknown keys raise ConfigError."""
    return _build(Config, data, source)


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str = "--set") -> None:
    """Apply ``a.b=c`` strings to the nested dict ``data`` in place (values parsed as YAML)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{source} {item!r}: expected KEY=VALUE (e.g. optim.lr=1e-3)")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"{source} {item!r}: key must be SECTION.NAME (e.g. train.epochs)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{source} {item!r}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = value


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> Config:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping of sections")
        data = loaded
    cfg = config_from_dict(data, source)
    if overrides:
        apply_overrides(data, list(overrides))
        cfg = config_from_dict(data, "--set")
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) suitable for YAML."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def save_config(cfg: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (loadable again with :func:`load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path
