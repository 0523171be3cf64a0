"""fusepose: lightweight human pose estimation (L-MFNet, SFM + HSA) with honest numbers.

    import fusepose
    predictor = fusepose.Predictor("runs/o/best.pth")      # a model file runs itself
    tracker = fusepose.PoseTracker(predictor)              # ids across a video's frames
    model, desc = fusepose.load_model("runs/o/best.pth")   # the network and its description
    fusepose.create_model("lmfnet")                         # a registered architecture
    fusepose.load_pretrained_backbone(model, "hrnet_w32-36af842e.pth")  # ImageNet init

The names that need PyTorch are imported on first use, so ``import fusepose`` (and the
evaluation of a results file) stays light.
"""

from fusepose.errors import FusePoseError
from fusepose.skeletons import Skeleton, get_skeleton, load_skeleton
from fusepose.structures import PoseInstance, PoseResult

__version__ = "0.1.0"

# name -> module that defines it (loaded on first access)
_LAZY = {
    "ModelInfo": "fusepose.models.registry",
    "create_model": "fusepose.models.registry",
    "get_model_info": "fusepose.models.registry",
    "list_models": "fusepose.models.registry",
    "load_pretrained_backbone": "fusepose.models.pretrained",
    "register_model": "fusepose.models.registry",
    "ModelDescription": "fusepose.description",
    "InputGeometry": "fusepose.geometry",
    "describe": "fusepose.modelfile",
    "load_model": "fusepose.modelfile",
    "Predictor": "fusepose.inference.predictor",
    "RunOptions": "fusepose.inference.options",
    "TestOptions": "fusepose.inference.options",
    "BoxOptions": "fusepose.inference.options",
    "ResultWriter": "fusepose.visualization.writer",
    "PoseTracker": "fusepose.inference.tracking",
}

__all__ = [
    "BoxOptions",
    "FusePoseError",
    "InputGeometry",
    "ModelDescription",
    "ModelInfo",
    "PoseInstance",
    "PoseResult",
    "PoseTracker",
    "Predictor",
    "ResultWriter",
    "RunOptions",
    "Skeleton",
    "TestOptions",
    "create_model",
    "describe",
    "get_model_info",
    "get_skeleton",
    "list_models",
    "load_model",
    "load_pretrained_backbone",
    "load_skeleton",
    "register_model",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fusepose' has no attribute {name!r}")
