"""torch.distributed helpers: init from torchrun's env (NCCL on GPU, Gloo on CPU), rank
queries, and a deterministic per-epoch sampler that supports mid-epoch resume."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


def init_distributed(device: str = "auto") -> tuple[bool, int, int, torch.device]:
    """Initialise the default process group when launched by torchrun (``WORLD_SIZE`` > 1),
    or use the one the caller initialised (e.g. a one-process group for a DDP check).

    Returns ``(distributed, rank, world_size, device)``. The backend is NCCL when CUDA is
    used, Gloo otherwise; the init method is ``env://`` (MASTER_ADDR / MASTER_PORT / RANK).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_available() and dist.is_initialized():  # a group the caller set up (any size)
        return True, dist.get_rank(), dist.get_world_size(), dev
    if world <= 1:
        return False, 0, 1, dev
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
        log.info("process group: backend %s, rank %d / %d", backend, dist.get_rank(), world)
    return True, dist.get_rank(), dist.get_world_size(), dev


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of ``t`` over processes (a copy; ``t`` itself is untouched)."""
    if not is_distributed():
        return t
    t = t.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / get_world_size()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (picklable) on every process: decisions that must agree, such
    as a time budget's plan, which rests on each process's own clock."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


class EpochSampler(Sampler[int]):
    """Seeded per-epoch permutation, sharded over ranks like ``DistributedSampler``.

    Epoch e uses ``torch.randperm(n, generator=seed + e)`` (padded by wrapping so every rank
    gets the same count); rank r takes ``order[r::world_size]``. ``set_epoch(e, start=i)``
    skips the first ``i`` local samples, which is how a mid-epoch resume continues with exactly
    the batches the interrupted run had not yet seen. With ``world_size`` ranks and per-rank
    batch b, global batch j of the 1-process order (batch ``world_size * b``) contains the same
    samples as the union of the ranks' batch j.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.n = int(num_samples)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = get_rank() if rank is None else int(rank)
        self.world = get_world_size() if world_size is None else int(world_size)
        self.drop_last = drop_last
        self.epoch = 0
        self.start = 0
        if self.drop_last:
            self.per_rank = self.n // self.world
        else:
            self.per_rank = -(-self.n // self.world)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = int(epoch)
        self.start = int(start)

    def order(self) -> list[int]:
        """This rank's full sample order for the current epoch (before skipping)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        total = self.per_rank * self.world
        if total > len(idx):
            idx = (idx * (total // max(len(idx), 1) + 1))[:total]
        else:
            idx = idx[:total]
        return idx[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)
