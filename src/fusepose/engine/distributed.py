"""torch.distributed for training: the rank and collective helpers of
:mod:`fusepose.distributed` (re-exported here, where the trainer has always found them) and a
deterministic per-epoch sampler that supports mid-epoch resume."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

# the rank and collective helpers live below inference (which shards its loops too); they are
# imported here so ``fusepose.engine.distributed.<name>`` keeps working
from fusepose.distributed import (  # noqa: F401
    agree,
    all_gather,
    all_gather_checked,
    all_reduce_mean,
    barrier,
    broadcast,
    cleanup,
    get_rank,
    get_world_size,
    init_distributed,
    is_distributed,
    is_main_process,
)


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every process (:func:`fusepose.distributed.broadcast`):
    decisions that must agree, such as a time budget's plan, which rests on each process's
    own clock."""
    return broadcast(obj, src)


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
