"""Model registry: ``@register_model`` binds a name to a factory; ``create_model`` builds it.

The zoo (``fusepose.models.zoo``) registers its entries when ``fusepose.models`` is imported,
which every import of this module does first. No network access happens here: weights are
loaded only from an explicit path by the caller.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

ModelKind = Literal["bottom_up", "top_down"]


@dataclass(frozen=True)
class ModelInfo:
    """What a caller needs to know about a registered model without building it.

    input_size: (H, W) in pixels, the paper's input resolution.
    paper: the paper's own figures for this model (e.g. ``params_m``, ``gflops``, ``AP``,
        ``source``); ``{}`` where the paper has none.
    """

    name: str
    kind: ModelKind
    input_size: tuple[int, int]
    num_keypoints: int = 17
    dataset: str = "coco"
    description: str = ""
    paper: dict[str, Any] = field(default_factory=dict)


_FACTORIES: dict[str, Callable[..., Any]] = {}
_INFOS: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    kind: ModelKind,
    input_size: tuple[int, int],
    num_keypoints: int = 17,
    dataset: str = "coco",
    description: str = "",
    paper: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory(num_keypoints=..., **overrides) -> nn.Module`` as ``name``."""

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
        )
        return factory

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _FACTORIES if fnmatch.fnmatch(n, pattern))


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
    close = [n for n in _FACTORIES if name.split("_")[0] in n]
    hint = f"; did you mean one of {close}?" if close else ""
    return f"unknown model {name!r}{hint} (see `fusepose models`)"
