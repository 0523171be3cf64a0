"""What a model file is: everything needed to run it, as plain data.

A :class:`ModelDescription` travels inside every fusepose checkpoint (key ``description``) and
every exported ONNX file (metadata ``fusepose.description``), so ``predict``, ``eval``,
``export``, ``visualize``, ``bench`` and ``serve`` run a trained model the way it was validated,
with no size or architecture flags. A flag the user passes overrides the stored value
(:meth:`ModelDescription.replace`).

    desc = ModelDescription.from_dict(json.loads(text))
    desc.geometry            # InputGeometry("letterbox", (256, 384))
    desc.test.flip           # test-time settings the validation used
    desc.val                 # {"metric": "AP", "value": 0.953, "ann": ..., ...} or None

Only plain types (str, int, float, bool, list, dict, None) appear in :meth:`to_dict`, so the
safe ``torch.load(weights_only=True)`` unpickler and JSON both read it back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from fusepose.errors import CheckpointError, ConfigError
from fusepose.family import Family, get_family
from fusepose.files import dumps_json
from fusepose.geometry import InputGeometry
from fusepose.limits import MAX_INPUT_SIDE, check_number
from fusepose.skeletons import SKELETONS, Skeleton, get_skeleton

__all__ = [
    "DESCRIPTION_VERSION",
    "Described",
    "ModelDescription",
    "TestSettings",
    "default_codec_spec",
    "default_description_for",
    "skeleton_for",
]

DESCRIPTION_VERSION = 1
# test-time scales beyond this make inputs that no model was trained for (and huge ones)
MAX_TEST_SCALE = 8.0
MAX_KEYPOINTS = 1000


@dataclass(frozen=True)
class TestSettings:
    """Test-time settings of a model (the ones its validation used, unless overridden).

    flip: average with the horizontally flipped input.
    scales: bottom-up multi-scale test factors (``short_side`` geometry only).
    nms_thr: top-down OKS-NMS threshold over one image's people (HRNet: 0.9); None = off.
    score_thr: people scored below this are left out of drawings and saved results
        (evaluation always scores every person, as the official protocols do).
    kpt_thr: joints scored below this are not drawn, nor any limb that touches one.
    """

    __test__ = False  # a settings record, not a pytest test class

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    nms_thr: float | None = None
    score_thr: float = 0.1
    kpt_thr: float = 0.3

    def __post_init__(self) -> None:
        scales = tuple(float(s) for s in self.scales) or (1.0,)
        for s in scales:
            check_number(s, "scale", 0, MAX_TEST_SCALE, lo_open=True)
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "flip", bool(self.flip))
        for name in ("score_thr", "kpt_thr"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} {v}: must lie in [0, 1]")
            object.__setattr__(self, name, v)
        if self.nms_thr is not None:
            v = float(self.nms_thr)
            if not 0.0 < v <= 1.0:
                raise ConfigError(f"nms_thr {v}: must lie in (0, 1] (or None for no NMS)")
            object.__setattr__(self, "nms_thr", v)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scales"] = list(self.scales)
        return d

    @classmethod
    def from_dict(cls, data: Any) -> TestSettings:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"test settings {data!r}: expected a mapping")
        if not isinstance(data.get("flip", False), bool):
            raise ConfigError(f"test.flip {data['flip']!r}: expected true or false")
        if not isinstance(data.get("scales", []), list | tuple):
            raise ConfigError(f"test.scales {data['scales']!r}: expected a list of numbers")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ModelDescription:
    """Everything needed to run a model, besides its weights.

    model: registered name (``fusepose models``); overrides: its architecture overrides
        (``create_model(model, num_keypoints=..., **overrides)``).
    kind: ``bottom_up`` or ``top_down`` (the serialized family; a
        :class:`~fusepose.family.Family` given here is stored by its name); :attr:`family`
        is the Family value code asks.
    skeleton: keypoint names, flip pairs, limbs and OKS sigmas.
    geometry: the input warp and size (:class:`~fusepose.geometry.InputGeometry`).
    codec: ``{"type": class in fusepose.codecs, "kwargs": {...}}``: decoding parameters
        (``num_keypoints``, ``flip_index`` and the input size are filled in from the fields
        above when the codec is built).
    test: :class:`TestSettings`.
    val: the best validation result, ``{"metric", "value", "ann", "images", "boxes",
        "epoch", ...}``, or None.
    """

    model: str
    kind: str
    num_keypoints: int
    skeleton: Skeleton
    geometry: InputGeometry
    codec: dict[str, Any]
    test: TestSettings = field(default_factory=TestSettings)
    overrides: dict[str, Any] = field(default_factory=dict)
    val: dict[str, Any] | None = None
    version: int = DESCRIPTION_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", get_family(self.kind).name)
        if self.skeleton.num_keypoints != int(self.num_keypoints):
            raise ConfigError(
                f"skeleton {self.skeleton.name!r} has {self.skeleton.num_keypoints} keypoints, "
                f"model {self.model!r} {self.num_keypoints}"
            )
        if max(self.geometry.size) > MAX_INPUT_SIDE:
            raise ConfigError(
                f"input size {list(self.geometry.size)}: at most {MAX_INPUT_SIDE} pixels a side"
            )
        if self.geometry.mode not in self.family.geometry_modes:
            raise ConfigError(
                f"{self.kind} model {self.model!r} cannot use the {self.geometry.mode!r} geometry"
            )
        if not isinstance(self.codec, dict) or "type" not in self.codec:
            raise ConfigError(f"codec {self.codec!r}: expected {{'type', 'kwargs'}}")
        object.__setattr__(self, "overrides", _tuples(dict(self.overrides or {})))

    # -------------------------------------------------------------- derived
    @property
    def family(self) -> Family:
        return get_family(self.kind)

    @property
    def flip_index(self) -> list[int]:
        return list(self.skeleton.flip_index)

    @property
    def val_metric(self) -> float | None:
        """The best validation value (e.g. AP), or None when the file has none."""
        if not self.val or self.val.get("value") is None:
            return None
        return float(self.val["value"])

    def replace(self, **changes: Any) -> ModelDescription:
        """A copy with fields replaced; ``test_*`` keywords replace single test settings
        (``replace(test_flip=True, geometry=...)``); None values are ignored (unset flags)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        test = {k[5:]: changes.pop(k) for k in list(changes) if k.startswith("test_")}
        if test:
            changes["test"] = dataclasses.replace(self.test, **test)
        return dataclasses.replace(self, **changes)

    # -------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": int(self.version),
            "model": self.model,
            "kind": self.kind,
            "num_keypoints": int(self.num_keypoints),
            "overrides": _plain(self.overrides),
            "skeleton": self.skeleton.to_dict(),
            "geometry": self.geometry.to_dict(),
            "codec": _plain(self.codec),
            "test": self.test.to_dict(),
            "val": _plain(self.val),
        }

    def to_json(self) -> str:
        return dumps_json(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<description>") -> ModelDescription:
        """Inverse of :meth:`to_dict`; :class:`CheckpointError` naming ``source`` if malformed."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: model description is not a mapping")
        missing = [k for k in ("model", "kind", "num_keypoints", "skeleton", "geometry", "codec")
                   if k not in data]  # fmt: skip
        if missing:
            raise CheckpointError(f"{source}: model description lacks {missing}")
        try:  # a file from elsewhere is data: every field typed and range-checked
            version = check_number(data.get("version", 1), "version", 1, integer=True)
            if version > DESCRIPTION_VERSION:
                raise CheckpointError(
                    f"{source}: model description version {version} is newer than this "
                    f"fusepose reads ({DESCRIPTION_VERSION}); upgrade fusepose"
                )
            return cls(
                model=_text(data["model"], "model"),
                kind=_text(data["kind"], "kind"),
                num_keypoints=check_number(
                    data["num_keypoints"], "num_keypoints", 1, MAX_KEYPOINTS, integer=True
                ),  # fmt: skip
                skeleton=Skeleton.from_dict(data["skeleton"], f"{source}: skeleton"),
                geometry=InputGeometry.from_dict(data["geometry"]),
                codec=_codec_spec(data["codec"]),
                test=TestSettings.from_dict(data.get("test")),
                overrides=_overrides(data.get("overrides") or {}),
                val=_val(data.get("val")),
                version=version,
            )
        except (ConfigError, TypeError, ValueError, RecursionError) as e:
            raise CheckpointError(f"{source}: malformed model description: {e}") from None

    @classmethod
    def from_json(cls, text: str, source: str = "<description>") -> ModelDescription:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise CheckpointError(f"{source}: model description is not JSON ({e})") from None
        return cls.from_dict(data, source)

    # -------------------------------------------------------------- display
    def summary(self) -> dict[str, Any]:
        """The ``fusepose inspect --json`` view: the stable keys first, then the details."""
        val = self.val or {}
        return {
            "model": self.model,
            "kind": self.kind,
            "num_keypoints": int(self.num_keypoints),
            "skeleton": self.skeleton.name,
            "input_size": list(self.geometry.size),
            "resize": self.geometry.mode,
            "val_AP": self.val_metric if val.get("metric", "AP") == "AP" else None,
            "val": _plain(self.val),
            "flip": self.test.flip,
            "scales": list(self.test.scales),
            "nms_thr": self.test.nms_thr,
            "score_thr": self.test.score_thr,
            "kpt_thr": self.test.kpt_thr,
            "codec": _plain(self.codec),
            "overrides": _plain(self.overrides),
            "keypoints": list(self.skeleton.keypoints),
        }


class Described:
    """``model_name``, ``kind`` (and its ``family``) and ``num_keypoints`` of anything that
    holds a ``description`` (the Predictor, an exported network)."""

    description: ModelDescription

    @property
    def model_name(self) -> str:
        return self.description.model

    @property
    def kind(self) -> str:
        return self.description.kind

    @property
    def family(self) -> Family:
        return self.description.family

    @property
    def num_keypoints(self) -> int:
        return self.description.num_keypoints


def default_codec_spec(kind: str | Family, **kwargs: Any) -> dict[str, Any]:
    """``{"type", "kwargs"}`` of the target codec of a family; ``kwargs`` are its parameters
    besides the ones a description supplies (keypoints, flip pairs, input size)."""
    return get_family(kind).default_codec_spec(**kwargs)


def skeleton_for(dataset: str, k: int, skeleton: Any = None) -> Skeleton:
    """``skeleton`` (a Skeleton, a name, a file or a dict), else the built-in one of
    ``dataset``, else a built-in with ``k`` keypoints."""
    if isinstance(skeleton, Skeleton):
        skel = skeleton
    elif isinstance(skeleton, dict):
        skel = Skeleton.from_dict(skeleton)
    elif skeleton:
        skel = get_skeleton(skeleton)
    else:
        cands = [SKELETONS[dataset]] if dataset in SKELETONS else []
        cands += list(SKELETONS.values())
        skel = next((s for s in cands if s.num_keypoints == k), None)
        if skel is None:
            raise ConfigError(f"no built-in skeleton has {k} keypoints: pass a skeleton file")
    if skel.num_keypoints != k:
        raise ConfigError(f"skeleton {skel.name!r} has {skel.num_keypoints} keypoints, model {k}")
    return skel


def default_description_for(
    info: Any,
    *,
    num_keypoints: int | None = None,
    overrides: dict[str, Any] | None = None,
    skeleton: Any = None,
    geometry: InputGeometry | None = None,
) -> ModelDescription:
    """The description of a registered model (its ``ModelInfo``) with its paper's defaults:
    bottom-up at the HigherHRNet short-side resize of its paper input, top-down crops at its
    paper input with HRNet's OKS-NMS; no flip."""
    k = int(num_keypoints or info.num_keypoints)
    skel = skeleton_for(info.dataset, k, skeleton)
    fam = get_family(info.kind)
    return ModelDescription(
        model=info.name, kind=fam.name, num_keypoints=k, skeleton=skel,
        geometry=geometry or fam.geometry(info.input_size),
        codec=fam.default_codec_spec(**fam.codec_defaults),
        test=TestSettings(nms_thr=fam.nms_thr), overrides=dict(overrides or {}),
    )  # fmt: skip


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ConfigError(f"{name} {value!r}: expected a name")
    return value


def _plain_value(value: Any, name: str, *, negative: bool = True, item: bool = False) -> Any:
    """A stored scalar: None, bool, a finite number (``negative=False``: >= 0) or a short
    string; or a list of them (one level: no nesting)."""
    if isinstance(value, list | tuple):
        if item:
            raise ConfigError(f"{name}: nested lists")
        return [_plain_value(v, f"{name}[{i}]", negative=negative, item=True)
                for i, v in enumerate(value)]  # fmt: skip
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > 200:
            raise ConfigError(f"{name}: a string of {len(value)} characters")
        return value
    return check_number(value, name, None if negative else 0)


def _overrides(data: Any) -> dict[str, Any]:
    """Architecture overrides: names -> counts, sizes, flags and names (never negative)."""
    if not isinstance(data, dict):
        raise ConfigError(f"overrides {data!r}: expected a mapping")
    out = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(f"overrides: {key!r} is not an option name")
        out[key] = _plain_value(value, f"overrides.{key}", negative=False)
    return out


def _codec_spec(data: Any) -> dict[str, Any]:
    """``{"type": name, "kwargs": {name: plain value}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ConfigError(f"codec {data!r}: expected {{'type': name, 'kwargs': {{...}}}}")
    kwargs = data.get("kwargs") or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ConfigError(f"codec kwargs {kwargs!r}: expected a mapping of names")
    return {**data, "kwargs": {k: _plain_value(v, f"codec.{k}") for k, v in kwargs.items()}}


def _val(data: Any) -> dict[str, Any] | None:
    """The validation record: None, or a mapping whose ``value`` is a number (or None)."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"val {data!r}: expected a mapping or null")
    value = data.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"val.value {value!r}: expected a number")
    dumps_json(data)  # plain data only (TypeError / RecursionError otherwise)
    return data


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively (JSON / weights_only friendly)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def _tuples(overrides: dict[str, Any]) -> dict[str, Any]:
    """Lists -> tuples in architecture overrides (the factories take tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
