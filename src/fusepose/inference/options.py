"""The Predictor's options, grouped by what they are about (MMPose's inferencer sorts its
arguments the same way):

- :class:`RunOptions`: how the network runs (device, backend, precision, threads, compile...);
- :class:`TestOptions`: test-time settings that override the model file's description (flip,
  scales, input size and geometry, thresholds, skeleton, codec parameters, crop batch);
- :class:`BoxOptions`: where a top-down model's person boxes come from (a detector, a COCO
  detection file).

Each is a frozen dataclass that checks its values when built (one-line
:class:`~fusepose.errors.ConfigError` naming the field). ``None`` means "as the model file
says". :func:`route_options` sorts the Predictor's old flat keywords (``flip=False``,
``num_threads=2``, ``det_file=...``) into them; an unknown keyword is an :class:`OptionError`
naming the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusepose.description import ModelDescription, TestSettings
from fusepose.errors import ConfigError
from fusepose.geometry import GEOMETRY_MODES, InputGeometry
from fusepose.inference.backends import BACKENDS, INT8_SCOPE_CHOICES, PRECISIONS
from fusepose.inference.network import resolve_device
from fusepose.limits import MAX_THREADS, check_number
from fusepose.skeletons import Skeleton, get_skeleton

__all__ = ["BoxOptions", "OptionError", "RunOptions", "TestOptions", "route_options"]


class OptionError(ConfigError, TypeError):
    """An unknown keyword given to the Predictor (a TypeError, as Python's own for a bad
    keyword, and a FusePoseError, so the CLI prints it as one line)."""


@dataclass(frozen=True)
class RunOptions:
    """How the network runs.

    device: "cpu", "cuda", "cuda:N" or "auto".
    backend: "torch", "onnx", "openvino" (both on an ``.onnx`` file) or "auto" (the fastest
        path whose accuracy guard passes on this CPU: :mod:`fusepose.inference.auto`).
        None: from the file (``.onnx`` -> onnx, else torch).
    precision: "fp32", "bf16" or "int8" (:mod:`fusepose.inference.backends`). None: fp32, or
        an INT8 file's own.
    int8_scope: "auto" (the model's measured default) or "whole" (the whole graph).
    num_threads: torch's CPU threads (set process-wide when the Predictor is built), None: as
        they are.
    optimize, compile: torch backend, see :class:`~fusepose.inference.network.TorchNetwork`.
    calibration: images (paths or BGR arrays) for INT8 calibration and the ``auto`` guard
        (None: the bundled sample photo; calibration adds 3 synthetic images).
    emulate_bf16: torch bf16 on a CPU without bf16 instructions (slow; tests and studies).
    """

    device: str = "cpu"
    backend: str | None = None
    precision: str | None = None
    int8_scope: str = "auto"
    num_threads: int | None = None
    optimize: bool = True
    compile: bool = False
    calibration: tuple[Any, ...] | None = None
    emulate_bf16: bool = False

    def __post_init__(self) -> None:
        resolve_device(self.device)  # ConfigError for an unusable device
        if self.backend not in (None, *BACKENDS, "auto"):
            raise ConfigError(
                f"backend {self.backend!r}: use 'torch', 'onnx', 'openvino' or 'auto'"
            )
        if self.precision not in (None, *PRECISIONS):
            raise ConfigError(f"precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.int8_scope not in INT8_SCOPE_CHOICES:
            raise ConfigError(
                f"int8 scope {self.int8_scope!r}: use {' or '.join(INT8_SCOPE_CHOICES)}"
            )
        if self.num_threads is not None:  # the command line's range (fusepose.cli.flags)
            n = check_number(self.num_threads, "threads", 1, MAX_THREADS, integer=True)
            object.__setattr__(self, "num_threads", n)
        if self.calibration is not None:
            if isinstance(self.calibration, str | Path):
                raise ConfigError(f"calibration {self.calibration!r}: give a list of images")
            object.__setattr__(self, "calibration", tuple(self.calibration))
        for name in ("optimize", "compile", "emulate_bf16"):
            object.__setattr__(self, name, bool(getattr(self, name)))


@dataclass(frozen=True)
class TestOptions:
    """Test-time settings; each one given overrides the model file's description.

    flip: average with the flipped input. scales: bottom-up multi-scale factors.
    input_size: one int (short side / square) or ``(H, W)``, in the stored geometry mode (or
        ``resize``'s). resize: the geometry mode (``short_side``, ``letterbox``, ``crop``).
    nms_thr: top-down OKS-NMS threshold (0 turns it off). score_thr: people scored below are
        left out of results and drawings (0 keeps all). kpt_thr: joints scored below are not
        drawn. skeleton: a Skeleton, a built-in name or a YAML / JSON file.
    codec_kwargs: the target codec's decoding parameters (e.g. ``{"refine": False}``).
    batch_size: top-down crops per network call.
    """

    __test__ = False  # an options record, not a pytest test class

    flip: bool | None = None
    scales: tuple[float, ...] | None = None
    input_size: int | tuple[int, int] | None = None
    resize: str | None = None
    nms_thr: float | None = None
    score_thr: float | None = None
    kpt_thr: float | None = None
    skeleton: Any = None
    codec_kwargs: Mapping[str, Any] | None = None
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.flip is not None:
            object.__setattr__(self, "flip", bool(self.flip))
        if self.scales is not None:
            object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "input_size", _input_size(self.input_size))
        if self.resize is not None and self.resize not in GEOMETRY_MODES:
            raise ConfigError(f"resize {self.resize!r}: use one of {', '.join(GEOMETRY_MODES)}")
        if self.nms_thr is not None and not math.isfinite(float(self.nms_thr)):
            raise ConfigError(f"nms_thr {self.nms_thr}: must be a number (0 = no NMS)")
        # the description's own checks, with the same messages (scale > 0, thresholds in
        # [0, 1], nms_thr in (0, 1])
        TestSettings.from_dict(self._settings())
        if self.codec_kwargs is not None and not isinstance(self.codec_kwargs, Mapping):
            raise ConfigError(f"codec_kwargs {self.codec_kwargs!r}: expected a mapping")
        if isinstance(self.batch_size, bool) or int(self.batch_size) < 1:
            raise ConfigError(f"batch_size {self.batch_size}: must be >= 1")
        object.__setattr__(self, "batch_size", int(self.batch_size))

    def _settings(self) -> dict[str, Any]:
        """The test settings given (``TestSettings`` fields; nms_thr <= 0 -> None = off)."""
        given = {"flip": self.flip, "scales": self.scales, "score_thr": self.score_thr,
                 "kpt_thr": self.kpt_thr}  # fmt: skip
        out = {k: v for k, v in given.items() if v is not None}
        if self.nms_thr is not None:
            out["nms_thr"] = float(self.nms_thr) if self.nms_thr > 0 else None
        return out

    def apply(self, desc: ModelDescription) -> ModelDescription:
        """``desc`` with the values given here (None keeps the stored one)."""
        geometry = desc.geometry
        if self.resize is not None:
            geometry = InputGeometry(self.resize, geometry.size)
        if self.input_size is not None:
            geometry = geometry.with_size(self.input_size)
        test = TestSettings.from_dict({**desc.test.to_dict(), **self._settings()})
        skel = self.skeleton
        if skel is not None and not isinstance(skel, Skeleton):
            skel = get_skeleton(skel)
        return desc.replace(geometry=geometry, skeleton=skel, test=test)


@dataclass(frozen=True)
class BoxOptions:
    """Where a top-down model's person boxes come from when the caller gives none.

    detector: a bottom-up model (anything ``Predictor``'s ``model`` takes, with
        ``detector_weights``) or a Predictor; its people's boxes become the crops.
    det_file: COCO detection JSON with person boxes keyed by image id or file name (it wins
        over the detector); det_thr: its boxes scored below are dropped.
    """

    detector: Any = None
    detector_weights: str | Path | None = None
    det_file: str | Path | None = None
    det_thr: float = 0.0

    def __post_init__(self) -> None:
        thr = float(self.det_thr)
        if not 0.0 <= thr <= 1.0:
            raise ConfigError(f"det_thr {self.det_thr}: must lie in [0, 1]")
        object.__setattr__(self, "det_thr", thr)


def _input_size(size: Any) -> int | tuple[int, int] | None:
    """One positive int or a positive ``(H, W)``; a one-element sequence is its int."""
    if size is None:
        return None
    vals = [size] if isinstance(size, int) else list(size) if isinstance(size, Sequence) else None
    if vals is None or len(vals) not in (1, 2) or any(isinstance(v, bool) for v in vals):
        raise ConfigError(f"input_size {size!r}: give one int or (H, W)")
    if min(int(v) for v in vals) <= 0:
        raise ConfigError(f"input_size {size!r}: sizes must be positive")
    return int(vals[0]) if len(vals) == 1 else (int(vals[0]), int(vals[1]))


_GROUPS = (RunOptions, TestOptions, BoxOptions)
_OWNER = {f.name: cls for cls in _GROUPS for f in dataclasses.fields(cls)}


def route_options(
    run: RunOptions | None,
    test: TestOptions | None,
    boxes: BoxOptions | None,
    keywords: Mapping[str, Any],
    *,
    known: Sequence[str] = (),
) -> tuple[RunOptions, TestOptions, BoxOptions]:
    """The three option objects with ``keywords`` (flat names such as ``flip``,
    ``num_threads``, ``det_file``) set in the one each belongs to, over the objects given
    (None: the defaults). ``known``: the caller's other parameter names, offered as
    suggestions; any other name is an :class:`OptionError` naming the closest valid one."""
    given: dict[type, dict[str, Any]] = {cls: {} for cls in _GROUPS}
    for key, value in keywords.items():
        if key not in _OWNER:
            valid = sorted({*_OWNER, *known})
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(valid)}"
            raise OptionError(f"unknown Predictor option {key!r}: {hint}")
        given[_OWNER[key]][key] = value
    base = {RunOptions: run, TestOptions: test, BoxOptions: boxes}
    for cls, obj in base.items():
        if obj is not None and not isinstance(obj, cls):
            raise OptionError(f"expected a {cls.__name__}, got {type(obj).__name__}")
    out = [dataclasses.replace(base[cls] or cls(), **given[cls]) for cls in _GROUPS]
    return out[0], out[1], out[2]  # type: ignore[return-value]
