"""fusepose: lightweight human pose estimation (L-MFNet, SFM + HSA) with honest numbers."""

from fusepose.errors import FusePoseError
from fusepose.registry import ModelInfo, create_model, get_model_info, list_models, register_model
from fusepose.skeletons import Skeleton, get_skeleton, load_skeleton
from fusepose.structures import PoseInstance, PoseResult

__version__ = "0.1.0"

__all__ = [
    "FusePoseError",
    "ModelInfo",
    "PoseInstance",
    "PoseResult",
    "Predictor",
    "Skeleton",
    "create_model",
    "get_model_info",
    "get_skeleton",
    "list_models",
    "load_skeleton",
    "register_model",
]


def __getattr__(name: str):
    # The Predictor pulls in OpenCV and the codecs; load it on first use only.
    if name == "Predictor":
        from fusepose.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'fusepose' has no attribute {name!r}")
