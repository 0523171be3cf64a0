"""A model file is data from elsewhere: the checks every verb runs before building a tensor.

A checkpoint's description and weights, an exported file's metadata and graph outputs are
untrusted, like PyTorch's ``weights_only`` loading treats a file: typed, range-checked and
compared with each other before anything is allocated. Each failure is one
:class:`~fusepose.errors.CheckpointError` line naming the file and the first things that
disagree; none advises loading a file as code.

- :func:`check_description`: the registered model and its family, the codec and its
  parameters (what :meth:`ModelDescription.from_dict` checks field by field comes first).
- :func:`state_tensors`: the weights are a mapping of names to tensors.
- :func:`model_skeleton`: the architecture the description asks for, built on the ``meta``
  device (shapes only, no memory, no initialisation), refused past :data:`MAX_PARAMETERS`.
- :func:`check_fits`: the weights' names and shapes against the architecture (a checkpoint
  against its description, a resume against the run's model).
- :func:`materialize`: the skeleton given real memory and the checked weights.
- :func:`check_outputs`: an exported network's outputs against its description's family
  (an ONNX file whose metadata was edited to the other family is refused).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from fusepose.codecs.pipelines import build_codec
from fusepose.description import ModelDescription
from fusepose.errors import CheckpointError, ConfigError
from fusepose.limits import MAX_INPUT_SIDE, NumberRange
from fusepose.models.registry import ModelInfo, create_model, get_model_info

__all__ = [
    "MAX_PARAMETERS",
    "check_description",
    "check_fits",
    "check_outputs",
    "materialize",
    "model_skeleton",
    "state_tensors",
]

# 2 GB of float32 weights: ten times HigherHRNet-W48; a file asking for more is refused
# before any memory is taken.
MAX_PARAMETERS = 500_000_000

# the codec parameters a file may set, and their ranges (others are refused by the codec)
CODEC_RANGES: dict[str, NumberRange] = {
    "sigma": NumberRange(0, 100, lo_open=True),
    "max_people": NumberRange(1, 1000, integer=True),
    "max_num_people": NumberRange(1, 1000, integer=True),
    "tag_threshold": NumberRange(0, 1e6),
    "detection_threshold": NumberRange(0, 1),
    "nms_kernel": NumberRange(1, 31, integer=True),
    "dark_kernel": NumberRange(1, 63, integer=True),
    "strides": NumberRange(1, 64, integer=True),
    "heatmap_size": NumberRange(2, MAX_INPUT_SIDE, integer=True),
    "joint_order": NumberRange(0, 999, integer=True),
}

_INIT_LOCK = threading.Lock()


def check_description(
    desc: ModelDescription, source: str, *, exported: bool = False
) -> ModelInfo | None:
    """The registered model of ``desc`` (same family), and its codec buildable with
    parameters in range. ``exported``: the network is in the file, so a model name unknown
    here is allowed (None is returned)."""
    try:
        info: ModelInfo | None = get_model_info(desc.model)
    except KeyError as e:
        if not exported:
            raise CheckpointError(f"{source}: {e.args[0]}") from None
        info = None
    if info is not None and info.family is not desc.family:
        raise CheckpointError(
            f"{source}: the description says {desc.family.title}, but {desc.model} is a "
            f"{info.family.title} model"
        )
    codec = desc.codec
    if codec.get("type") != desc.family.codec:
        raise CheckpointError(
            f"{source}: codec {codec.get('type')!r} does not decode a {desc.family.title} "
            f"model ({desc.family.codec})"
        )
    kwargs = codec.get("kwargs") or {}
    try:
        for key, rng in CODEC_RANGES.items():
            if key in kwargs and kwargs[key] is not None:
                values = kwargs[key] if isinstance(kwargs[key], list | tuple) else [kwargs[key]]
                for v in values:
                    rng.check(v, f"codec {key}")
        build_codec(codec, num_keypoints=desc.num_keypoints, flip_index=desc.flip_index,
                    input_size=desc.geometry.size)  # fmt: skip
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from None
    return info


def state_tensors(state: Any, source: str, what: str = "state dict") -> dict[str, torch.Tensor]:
    """``state`` as ``{name: tensor}``; CheckpointError when it is not a mapping of names to
    tensors."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: the {what} is a {type(state).__name__}, not a mapping "
                              "of tensor names to tensors")  # fmt: skip
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: the {what} maps {key!r} to a "
                                  f"{type(value).__name__}, not a tensor")  # fmt: skip
    return dict(state)


@contextmanager
def _no_init() -> Iterator[None]:
    """``torch.nn.init`` functions as no-ops: a skeleton's values are never read, and
    initialising meta tensors costs seconds (every op goes through Python reference
    implementations)."""
    init = torch.nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_")]
    with _INIT_LOCK:
        saved = {n: getattr(init, n) for n in names}
        for n in names:
            setattr(init, n, lambda tensor, *_a, **_k: tensor)
        try:
            yield
        finally:
            for n, f in saved.items():
                setattr(init, n, f)


def model_skeleton(desc: ModelDescription, source: str) -> nn.Module:
    """The architecture of ``desc`` (registered name, keypoints, overrides) on the ``meta``
    device: parameter shapes, no memory. CheckpointError when the overrides cannot build it or
    it has over :data:`MAX_PARAMETERS` parameters."""
    check_description(desc, source)
    try:
        with _no_init(), torch.device("meta"):
            model = create_model(desc.model, num_keypoints=desc.num_keypoints, **desc.overrides)
    except KeyError as e:
        raise CheckpointError(f"{source}: {e.args[0]}") from None
    except (ConfigError, TypeError, ValueError, RuntimeError, ZeroDivisionError) as e:
        raise CheckpointError(
            f"{source}: cannot build {desc.model} with overrides {desc.overrides}: "
            + " ".join(str(e).split())
        ) from None
    count = sum(t.numel() for t in model.state_dict().values())
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{source}: {desc.model} with overrides {desc.overrides} has {count:,} parameters, "
            f"over the {MAX_PARAMETERS:,} fusepose builds"
        )
    return model


def check_fits(
    expected: Mapping[str, Any], weights: Mapping[str, Any], source: str, what: str
) -> None:
    """Every tensor of ``expected`` (a model's state dict) is in ``weights`` with the same
    shape and nothing else is; else CheckpointError naming ``what`` and the first tensors
    missing, unexpected or of another shape. BN ``num_batches_tracked`` counters may be
    absent (older files)."""
    missing = [k for k in expected if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in expected]
    shape = [k for k in expected if k in weights
             and tuple(expected[k].shape) != tuple(weights[k].shape)]  # fmt: skip
    if not (missing or unexpected or shape):
        return
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' * (len(keys) > 3)})")
    if shape:
        k = shape[0]
        parts.append(f"{len(shape)} of another shape ({k}: file {list(weights[k].shape)}, "
                     f"model {list(expected[k].shape)})")  # fmt: skip
    raise CheckpointError(f"{source}: the weights do not fit {what}: " + "; ".join(parts))


def materialize(skeleton: nn.Module, weights: Mapping[str, torch.Tensor]) -> nn.Module:
    """The skeleton with real (CPU) memory holding ``weights`` (checked by
    :func:`check_fits` first): every parameter and buffer is overwritten."""
    model = skeleton.to_empty(device="cpu")
    state = model.state_dict()
    for key, tensor in state.items():  # counters an older file lacks start at zero
        if key not in weights:
            tensor.zero_()
    model.load_state_dict(weights, strict=False)
    return model


def check_outputs(
    desc: ModelDescription, outputs: Sequence[tuple[str, Sequence[Any]]], source: str
) -> None:
    """An exported network's ``outputs`` (``(name, shape)``, a shape entry an int or a
    symbolic name) are its description's family's: their number, names and channels."""
    fam, k = desc.family, desc.num_keypoints
    names = [name for name, _shape in outputs]
    if names != list(fam.output_names):
        raise CheckpointError(
            f"{source}: the network's outputs {names} are not those of a {fam.title} model "
            f"{list(fam.output_names)} (its metadata says {desc.kind}; edited?)"
        )
    for (name, shape), spec in zip(outputs, fam.outputs, strict=True):
        channels = shape[1] if len(shape) > 1 else None
        if isinstance(channels, int) and channels != spec.channels * k:
            raise CheckpointError(
                f"{source}: output {name} has {channels} channels; a {fam.title} model with "
                f"{k} keypoints has {spec.channels * k} (the metadata does not describe it)"
            )
