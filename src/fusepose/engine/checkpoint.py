"""Training checkpoints: the file functions of :mod:`fusepose.modelfile`, and RNG states.

Checkpoint I/O lives in :mod:`fusepose.modelfile` (below the training engine, so inference
can load a model without it); it is re-exported here under the names training code uses.
Everything a checkpoint holds is a tensor, a number, a string, a list or a dict, so the safe
(``weights_only``) unpickler can read it back.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fusepose.modelfile import (
    FORMAT_VERSION,
    load_checkpoint,
    load_model,
    load_weights,
    save_checkpoint,
)

__all__ = [
    "FORMAT_VERSION",
    "get_rng_state",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "save_checkpoint",
    "set_rng_state",
]


# ------------------------------------------------------------------------------ RNG states


def get_rng_state() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU + CUDA) as tensors / lists / ints only."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            np_state[0],
            torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    py = state["python"]
    random.setstate((int(py[0]), tuple(int(x) for x in py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (str(n[0]), np.asarray(n[1], dtype=np.uint32), int(n[2]), int(n[3]), float(n[4]))
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (what the RNG state above holds)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def plain_scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """A scheduler's state without what ``weights_only`` loading refuses: LambdaLR stores its
    plain functions as None, so ``lr_lambdas`` is kept only when every entry is None."""
    return {k: v for k, v in state.items() if k != "lr_lambdas" or all(x is None for x in v)}
