"""Model registry: ``@register_model`` binds a name to a factory; ``create_model`` builds it.

The zoo (``fusepose.models.zoo``) registers its entries when ``fusepose.models`` is imported,
which every import of this module does first. No network access happens here: weights are
loaded only from an explicit path by the caller.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fusepose.errors import ConfigError
from fusepose.family import Family, get_family

ModelKind = Literal["bottom_up", "top_down"]


@dataclass(frozen=True)
class ModelInfo:
    """What a caller needs to know about a registered model without building it.

    kind: the serialized family (``bottom_up`` / ``top_down``); :attr:`family` is the
        :class:`~fusepose.family.Family` value code asks.
    input_size: (H, W) in pixels, the paper's input resolution.
    input_multiple: a fixed-size input's H and W must be multiples of this (the network's
        coarsest stride: 32 for the HRNet-family bottom-up nets; 4, the heatmap stride, for the
        top-down ones). 0 = the family default.
    paper: the paper's own figures for this model (e.g. ``params_m``, ``gflops``, ``AP``,
        ``source``); ``{}`` where the paper has none.
    test_only: a tiny model for the test suite (``test_*``, a few thousand parameters at
        32-64 px, the real blocks): registered and built like any other, left out of the
        zoo's listing and table (:func:`zoo_models`).
    """

    name: str
    kind: ModelKind
    input_size: tuple[int, int]
    num_keypoints: int = 17
    dataset: str = "coco"
    description: str = ""
    paper: dict[str, Any] = field(default_factory=dict)
    input_multiple: int = 0
    test_only: bool = False

    def __post_init__(self) -> None:
        fam = get_family(self.kind)
        object.__setattr__(self, "kind", fam.name)
        if not self.input_multiple:
            object.__setattr__(self, "input_multiple", fam.input_multiple)

    @property
    def family(self) -> Family:
        return get_family(self.kind)

    def check_input_size(self, size: Any, what: str = "input size") -> tuple[int, int]:
        """``(H, W)`` if both are positive multiples of :attr:`input_multiple`, else a
        one-line ConfigError naming ``what``."""
        try:
            h, w = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ConfigError(f"{what} {size!r}: expected two integers (H, W)") from None
        m = self.input_multiple
        if h <= 0 or w <= 0 or h % m or w % m:
            raise ConfigError(
                f"{what} {h}x{w}: {self.name} needs positive H and W that are multiples of {m}"
            )
        return h, w


_FACTORIES: dict[str, Callable[..., Any]] = {}
_INFOS: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    kind: ModelKind | Family,
    input_size: tuple[int, int],
    num_keypoints: int = 17,
    dataset: str = "coco",
    description: str = "",
    paper: dict[str, Any] | None = None,
    test_only: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory(num_keypoints=..., **overrides) -> nn.Module`` as ``name``
    (``test_only``: see :class:`ModelInfo`)."""

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _FACTORIES:
            raise ValueError(f"model {name!r} is registered twice")
        _FACTORIES[name] = factory
        _INFOS[name] = ModelInfo(
            name=name,
            kind=kind,
            input_size=tuple(input_size),
            num_keypoints=num_keypoints,
            dataset=dataset,
            description=description or (factory.__doc__ or "").strip().split("\n")[0],
            paper=dict(paper or {}),
            test_only=test_only,
        )
        return factory

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _FACTORIES if fnmatch.fnmatch(n, pattern))


def zoo_models(pattern: str = "*") -> list[str]:
    """The zoo's models matching ``pattern`` (``fusepose models``): the test-only models are
    left out unless ``pattern`` matches nothing else (``fusepose models "test_*"``)."""
    names = list_models(pattern)
    return [n for n in names if not _INFOS[n].test_only] or names


def get_model_info(name: str) -> ModelInfo:
    if name not in _INFOS:
        raise KeyError(_unknown(name))
    return _INFOS[name]


def create_model(name: str, **overrides: Any):
    """Build model ``name``; keyword ``overrides`` go to its factory (e.g. ``num_keypoints=14``).

    The returned module carries ``model.info`` (a :class:`ModelInfo` reflecting the overrides).
    """
    if name not in _FACTORIES:
        raise KeyError(_unknown(name))
    model = _FACTORIES[name](**overrides)
    info = _INFOS[name]
    if "num_keypoints" in overrides:
        info = replace(info, num_keypoints=int(overrides["num_keypoints"]))
    model.info = info
    return model


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(_FACTORIES), n=3, cutoff=0.6) or [
        n for n in _FACTORIES if name.split("_")[0] in n
    ]
    hint = f"; did you mean one of {close}?" if close else ""
    return f"unknown model {name!r}{hint} (see `fusepose models`)"
