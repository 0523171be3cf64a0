"""Experiment configs: nested frozen dataclasses loaded from YAML, with dotted overrides.

Unknown keys are errors (``ConfigError`` naming the key and the file); values are converted
to the field's declared type (``"1e-3"`` -> float, ``"[200, 260]"`` -> tuple of int, ...).

    cfg = load_config("configs/lmfnet_coco-512_1xb12-300e.yaml", overrides=["optim.lr=2e-3"])
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from fusepose.errors import ConfigError
from fusepose.files import write_text_atomic
from fusepose.models.registry import get_model_info
from fusepose.skeletons import get_skeleton


@dataclass(frozen=True)
class ModelConfig:
    """``create_model(name, num_keypoints=..., **overrides)``; ``weights``: optional init path
    of the whole model; ``pretrained``: an ImageNet classification checkpoint for the backbone
    (``fusepose.load_pretrained_backbone``: the official HRNet-Image-Classification file,
    timm's ``hrnet_w32``, or what ``fusepose pretrain`` writes), loaded after ``init``."""

    name: str = "lmfnet"
    num_keypoints: int = 17
    overrides: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    # "official": the model's own init (HigherHRNet: every conv N(0, 0.001), made for an
    # ImageNet-pretrained backbone); "scratch": He init of the hidden convs for training from
    # random weights (see fusepose.engine.trainer.init_from_scratch); ignored with `weights`
    init: str = "official"
    pretrained: str | None = None
    # true: refuse a file that leaves a backbone tensor missing or of another shape
    pretrained_strict: bool = True


@dataclass(frozen=True)
class DataConfig:
    """Dataset files and targets. ``input_size`` is (H, W) in input pixels.

    ``dataset``: ``coco`` (COCO-format keypoints, also used for the synthetic set) or ``mpii``.
    Augmentation follows HigherHRNet (bottom-up) / Lite-HRNet (top-down):
    docs/reconstruction.md#higherhrnet-recipe and #sfm-recipe.
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
    num_workers: int = 2  # training: DataLoader processes; validation: reader threads
    # augmentation
    flip_prob: float = 0.5
    rotation: float = 30.0
    scale_range: tuple[float, float] = (0.75, 1.5)
    translate: float = 40.0
    half_body_prob: float = 0.0
    augment: bool = True  # False: no flip / rotation / shift / half body; scale = scale_range[0]
    # Official HigherHRNet quirks (bottom-up training targets), off by default = fusepose's
    # geometrically exact conventions (docs/design.md, "Training-time options"):
    # official_flip: a flipped sample's targets at stride s are mirrored as `res - 1 - x` at
    #   each output resolution (official RandomHorizontalFlip after the affine), i.e. shifted
    #   (s - 1) / s output px (0.75 at 1/4, 0.5 at 1/2) from the flipped image content
    # official_mask: the loss mask of stride s is the input-resolution mask at input pixel
    #   s * j (the official warp straight to each output resolution) instead of its bilinear
    #   downsampling at the centre of each s x s block
    # official_shift: the crop-centre shift is an integer number of original pixels drawn as
    #   numpy randint(int(-m), int(m)) (m = translate * crop / 200), not a continuous U(-m, m)
    official_flip: bool = False
    official_mask: bool = False
    official_shift: bool = False
    # use at most this many training / validation images (0 = all); for smoke runs
    max_train_images: int = 0
    max_val_images: int = 0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 300
    batch_size: int = 12  # per process (per GPU)
    amp: bool = True  # only takes effect on CUDA
    channels_last: bool = False  # NHWC model and input batches (faster convs with AMP on CUDA)
    clip_grad_norm: float = 0.0  # 0 = off
    ema_decay: float = 0.0  # 0 = no EMA
    seed: int = 0
    checkpoint_interval_steps: int = 0  # also save last.pth every N steps (0 = per epoch only)
    log_interval: int = 20  # steps between console / CSV lines
    sync_bn: bool = False
    freeze_bn: bool = False  # keep BN in eval mode (running stats frozen) while training
    max_steps_per_epoch: int = 0  # 0 = full epoch; for smoke runs
    # > 0: train for this many minutes (steps and validations, wall time) instead of `epochs`:
    # the first epoch measures the speed, then the steps, the LR schedule and the validation
    # points are fixed to fill the budget and stored in the checkpoints (fusepose.engine.budget)
    time_budget_minutes: float = 0.0


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
    # bottom-up: heatmap pixels weighted 1 + w * target (0 = HigherHRNet's plain masked MSE)
    heatmap_fg_weight: float = 0.0
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


# ------------------------------------------------------------------- backbone pretraining


@dataclass(frozen=True)
class PretrainModelConfig:
    """The classifier ``fusepose pretrain`` trains: the backbone of registered bottom-up model
    ``name`` (with ``overrides``) + the HRNet-classification head
    (``fusepose.models.classifier``). ``num_classes``: 0 = the class folders of train_dir."""

    name: str = "lmfnet"
    overrides: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 0
    head_channels: tuple[int, ...] = (32, 64, 128, 256)
    num_features: int = 2048


@dataclass(frozen=True)
class ImageFolderConfig:
    """ImageFolder data (``root/<class>/<image>``) and the standard ImageNet augmentation:
    a random resized crop (area ``crop_scale`` of the image, aspect ``crop_ratio``) to
    ``input_size``, flip ``flip_prob``; validation: the central ``val_crop`` of the short side
    resized to ``input_size`` (Resize(256) + CenterCrop(224))."""

    train_dir: str = ""
    val_dir: str = ""
    input_size: int = 224
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 4 / 3)
    flip_prob: float = 0.5
    val_crop: float = 0.875
    num_workers: int = 8
    max_train_images: int = 0
    max_val_images: int = 0


@dataclass(frozen=True)
class ClassificationLossConfig:
    label_smoothing: float = 0.1


@dataclass(frozen=True)
class ClassificationEvalConfig:
    interval: int = 1  # validate every N epochs (0 = never)
    metric: str = "top1"  # top1 | top5 (fractions 0..1)
    use_ema: bool = False


@dataclass(frozen=True)
class PretrainConfig:
    """``fusepose pretrain CONFIG``: the sections of :class:`Config` with the classification
    ``model``, ``data``, ``loss`` and ``eval``; ``train`` / ``optim`` / ``schedule`` /
    ``runtime`` are the pose training's (one trainer)."""

    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: ImageFolderConfig = field(default_factory=ImageFolderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: ClassificationLossConfig = field(default_factory=ClassificationLossConfig)
    eval: ClassificationEvalConfig = field(default_factory=ClassificationEvalConfig)
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


def config_from_dict(data: dict[str, Any], source: str = "<config>", schema: type = Config) -> Any:
    """Build a :class:`Config` (or ``schema``, e.g. :class:`PretrainConfig`) from a nested
    dict; unknown keys raise ConfigError."""
    return _build(schema, data, source)


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


BUNDLED = Path(__file__).resolve().parents[1] / "configs"  # fusepose/configs (package data)


def bundled_configs() -> dict[str, Path]:
    """The configs that ship inside the package: ``{name: path}``, sorted; the name is the file
    stem, with its sub-folder for the ones in one (``pretrain/lmfnet_shapes-32_1xb32-10e``)."""
    if not BUNDLED.is_dir():
        return {}
    return {str(p.relative_to(BUNDLED).with_suffix("")): p for p in sorted(BUNDLED.rglob("*.yaml"))}


def resolve_config(path_or_name: str | os.PathLike) -> Path:
    """A config file: an existing path, else the bundled config of that name (with or without
    ``.yaml``, with or without a ``configs/`` prefix). ConfigError naming close matches."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    bundled = bundled_configs()
    key = str(p.with_suffix("")) if p.suffix in (".yaml", ".yml") else str(p)
    key = key.removeprefix("configs/")
    if key in bundled:
        return bundled[key]
    stem = Path(key).name
    close = difflib.get_close_matches(stem, list(bundled), n=3, cutoff=0.5)
    hint = f"; did you mean {close}?" if close else " (`fusepose configs` lists the bundled ones)"
    raise ConfigError(f"{p}: config file not found, nor a bundled config of that name{hint}")


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    schema: type = Config,
) -> Any:
    """Read a YAML config (a path or the name of a bundled config; defaults when ``path`` is
    None) and apply ``a.b=c`` overrides; ``schema``: :class:`Config` (pose training) or
    :class:`PretrainConfig`."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        p = resolve_config(path)
        source = str(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a YAML config (binary content, not UTF-8 text)") from None
        except OSError as e:
            raise ConfigError(f"{p}: cannot read the config ({e.strerror or e})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping of sections")
        data = loaded
    cfg = config_from_dict(data, source, schema)
    if overrides:
        apply_overrides(data, list(overrides))
        cfg = config_from_dict(data, "--set", schema)
    return cfg


def _check(ok: bool, key: str, value: Any, need: str, source: str) -> None:
    if not ok:
        raise ConfigError(f"{source}: {key} = {value!r}: {need}")


def validate_config(cfg: Config, source: str = "config") -> Config:
    """Check what the dataclass types cannot: a registered model, sizes against the model's
    stride, positive batch / epochs / learning rate, probabilities in [0, 1], known names.
    ConfigError naming ``source`` and the key; called before any training work."""
    m, d, t, o, sch, ev, rt = (cfg.model, cfg.data, cfg.train, cfg.optim, cfg.schedule,
                               cfg.eval, cfg.runtime)  # fmt: skip
    try:
        info = get_model_info(m.name)
    except KeyError as e:
        raise ConfigError(f"{source}: model.name: {e.args[0]}") from None
    _check(m.num_keypoints >= 1, "model.num_keypoints", m.num_keypoints, "must be >= 1", source)
    _check(m.init in ("official", "scratch"), "model.init", m.init, "'official' or 'scratch'",
           source)  # fmt: skip
    _check(d.dataset in ("coco", "mpii"), "data.dataset", d.dataset, "'coco' or 'mpii'", source)
    _check(d.resize in ("crop", "letterbox"), "data.resize", d.resize, "'crop' or 'letterbox'",
           source)  # fmt: skip
    h, w = info.check_input_size(d.input_size, f"{source}: data.input_size")
    if info.family.geometry((h, w), d.resize).mode == "short_side":  # trained on square crops
        _check(h == w, "data.input_size", list(d.input_size),
               "the square random crop (data.resize: crop) needs H == W", source)  # fmt: skip
    get_skeleton(d.skeleton)  # SkeletonError (a FusePoseError) for a bad name or file
    for key, v in (("data.sigma", d.sigma), ("optim.lr", o.lr), ("schedule.gamma", sch.gamma)):
        _check(v > 0 and math.isfinite(v), key, v, "must be a positive number", source)
    for key, v in (("data.flip_prob", d.flip_prob), ("data.half_body_prob", d.half_body_prob),
                   ("optim.momentum", o.momentum), ("train.ema_decay", t.ema_decay)):  # fmt: skip
        _check(0.0 <= v <= 1.0, key, v, "must lie in [0, 1]", source)
    lo, hi = d.scale_range
    _check(0 < lo <= hi, "data.scale_range", list(d.scale_range), "needs 0 < low <= high", source)
    for key, v in (("data.max_people", d.max_people), ("train.batch_size", t.batch_size),
                   ("train.epochs", t.epochs)):  # fmt: skip
        _check(v >= 1, key, v, "must be >= 1", source)
    for key, v in (("data.num_workers", d.num_workers), ("data.max_train_images",
                   d.max_train_images), ("data.max_val_images", d.max_val_images),
                   ("optim.weight_decay", o.weight_decay), ("train.clip_grad_norm",
                   t.clip_grad_norm), ("schedule.warmup_iters", sch.warmup_iters),
                   ("schedule.min_lr", sch.min_lr), ("eval.interval", ev.interval),
                   ("runtime.num_threads", rt.num_threads), ("train.log_interval",
                   t.log_interval), ("train.checkpoint_interval_steps",
                   t.checkpoint_interval_steps), ("train.max_steps_per_epoch",
                   t.max_steps_per_epoch), ("train.time_budget_minutes",
                   t.time_budget_minutes), ("data.rotation", d.rotation),
                   ("data.translate", d.translate)):  # fmt: skip
        _check(v >= 0, key, v, "must be >= 0", source)
    _check(all(x >= 0 for x in sch.milestones), "schedule.milestones", list(sch.milestones),
           "epochs must be >= 0", source)  # fmt: skip
    _check(o.name.lower() in ("adam", "adamw", "sgd"), "optim.name", o.name,
           "adam, adamw or sgd", source)  # fmt: skip
    _check(sch.name in ("multistep", "cosine", "constant"), "schedule.name", sch.name,
           "multistep, cosine or constant", source)  # fmt: skip
    _check(ev.backend in ("pycocotools", "faster"), "eval.backend", ev.backend,
           "pycocotools or faster", source)  # fmt: skip
    dev = rt.device
    _check(dev in ("auto", "cpu") or dev.startswith("cuda"), "runtime.device", dev,
           "auto, cpu, cuda or cuda:N", source)  # fmt: skip
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


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (loadable again with :func:`load_config`)."""
    return write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def run_folder(cfg: Any, run_dir: str | os.PathLike | None = None, config_path: Any = None) -> Path:
    """A training run's folder: ``run_dir``, else ``runtime.out_dir / name`` (``runtime.name``,
    else the config file's stem, else ``run``)."""
    name = cfg.runtime.name or (Path(config_path).stem if config_path else "run")
    return Path(run_dir) if run_dir is not None else Path(cfg.runtime.out_dir) / name
