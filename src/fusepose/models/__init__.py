"""Pose networks (torch only). Build them by name with :func:`create_model`.

Importing this package fills the registry (``fusepose.models.zoo`` registers every entry).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from fusepose.models import zoo  # noqa: F401  (registers the models)
from fusepose.models.blocks.attention import CBAM
from fusepose.models.blocks.hsa import HSA
from fusepose.models.deploy import InferenceWrapper, output_names
from fusepose.models.registry import (
    ModelInfo,
    create_model,
    get_model_info,
    list_models,
    register_model,
)

__all__ = [
    "InferenceWrapper",
    "ModelInfo",
    "attention_modules",
    "create_model",
    "get_model_info",
    "list_models",
    "output_names",
    "register_model",
]


def attention_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(qualified_name, module)`` for every attention module (CBAM, HSA) in ``model``.

    Set ``module.record_maps = True`` to make each forward store detached maps in
    ``module.last_maps`` (docs/design.md, Models).
    """
    for name, module in model.named_modules():
        if isinstance(module, CBAM | HSA):
            yield name, module
