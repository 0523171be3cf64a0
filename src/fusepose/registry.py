"""The model registry under its original import path (``fusepose.registry``).

The registry lives in :mod:`fusepose.models.registry`; this module re-exports it so that
``from fusepose.registry import create_model`` keeps working.
"""

from fusepose.models.registry import (
    ModelInfo,
    ModelKind,
    create_model,
    get_model_info,
    list_models,
    register_model,
)

__all__ = [
    "ModelInfo",
    "ModelKind",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]
