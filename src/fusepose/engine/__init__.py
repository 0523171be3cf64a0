"""Training engine: config, checkpoints, the training loop, DDP helpers, EMA, logging.

Submodules are imported on use (``fusepose.engine.trainer`` pulls in the data stack)."""

from fusepose.engine.checkpoint import load_checkpoint, load_weights, save_checkpoint
from fusepose.engine.config import Config, load_config, save_config

__all__ = [
    "Config",
    "load_checkpoint",
    "load_config",
    "load_weights",
    "save_checkpoint",
    "save_config",
]
