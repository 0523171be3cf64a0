"""Pose networks (torch only). Build them by name with ``fusepose.registry.create_model``."""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn


def _attention_types() -> tuple[type, ...]:
    from .blocks.attention import CBAM

    types: list[type] = [CBAM]
    try:  # HSA lives in another module that may not exist in every checkout
        from .blocks.hsa import HSA
    except ImportError:
        pass
    else:
        types.append(HSA)
    return tuple(types)


def attention_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(qualified_name, module)`` for every attention module (CBAM, HSA) in ``model``.

    Set ``module.record_maps = True`` to make each forward store detached maps in
    ``module.last_maps`` (docs/design.md, Models).
    """
    types = _attention_types()
    for name, module in model.named_modules():
        if isinstance(module, types):
            yield name, module


__all__ = ["attention_modules"]
