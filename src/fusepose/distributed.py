"""Processes working together: ``torch.distributed`` from torchrun's environment, rank queries,
deterministic sharding and the object collectives that merge what the ranks did.

Training (``fusepose.engine``), the dataset loop (``fusepose.inference.dataset``) and
``fusepose predict`` share these helpers, so they sit low in the layers. Under ``torchrun``
(``WORLD_SIZE`` > 1) :func:`init_distributed` joins the default process group from the
environment (``env://``): NCCL with ``cuda:LOCAL_RANK`` when CUDA is used, Gloo on CPU. Every
collective here is an *object* collective (pickled Python values), which both backends carry;
on NCCL they travel through the rank's current CUDA device, which ``init_distributed`` sets.

Failure contract: the group has a finite timeout (``FUSEPOSE_DIST_TIMEOUT`` seconds, default
1800), and :func:`agree` / :func:`all_gather_checked` let every rank learn that another one
failed, so a rank that raises never leaves the others blocked in a collective: they all raise
the first failing rank's error (a :class:`~fusepose.errors.FusePoseError` keeps its class and
one-line message). A rank that is killed outright is torchrun's to notice: it stops the others.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from fusepose.errors import FusePoseError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "RankFailedError",
    "agree",
    "all_gather",
    "all_gather_checked",
    "all_reduce_mean",
    "barrier",
    "broadcast",
    "cleanup",
    "env_rank",
    "gather_checked",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "launched",
    "merge_in_order",
    "process_group",
    "shard",
    "timeout",
]

T = TypeVar("T")

# torch's own default for Gloo; long enough for rank 0 to score COCO val2017 while the others
# wait, short enough that a stuck job ends
DEFAULT_TIMEOUT_S = 1800.0


class RankFailedError(RuntimeError):
    """Another rank failed with an error that is not a FusePoseError (a bug, out of memory):
    this rank stops too, naming it (an internal error, not a user mistake)."""


def launched() -> bool:
    """Started by torchrun (or another launcher) as one of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout() -> datetime.timedelta:
    """The process group's timeout: ``FUSEPOSE_DIST_TIMEOUT`` seconds, else 1800."""
    text = os.environ.get("FUSEPOSE_DIST_TIMEOUT", "")
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = DEFAULT_TIMEOUT_S
    return datetime.timedelta(seconds=seconds if seconds > 0 else DEFAULT_TIMEOUT_S)


def init_distributed(device: str = "auto") -> tuple[bool, int, int, torch.device]:
    """Initialise the default process group when launched by torchrun (``WORLD_SIZE`` > 1),
    or use the one the caller initialised (e.g. a one-process group for a DDP check).

    Returns ``(distributed, rank, world_size, device)``. The backend is NCCL when CUDA is
    used, Gloo otherwise; the init method is ``env://`` (MASTER_ADDR / MASTER_PORT / RANK);
    the timeout is :func:`timeout`. ``device`` ``cuda`` becomes ``cuda:LOCAL_RANK`` (set as
    the current CUDA device, where object collectives travel on NCCL).
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
    if is_distributed():  # a group the caller set up (any size)
        return True, dist.get_rank(), dist.get_world_size(), dev
    if world <= 1:
        return False, 0, 1, dev
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout())
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


def env_rank() -> int:
    """This process's rank: the group's when one is initialised, else the launcher's ``RANK``
    (known before the group exists, e.g. to print an argument error once)."""
    if is_distributed():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


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


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def shard(n: int, rank: int | None = None, world_size: int | None = None) -> range:
    """The positions ``0 .. n-1`` rank ``rank`` takes: ``rank, rank + W, rank + 2W, ...``.

    Strided, so neighbouring (often similar) items spread over the ranks; every position
    belongs to exactly one rank and none is repeated (no padding: ranks differ by at most
    one item). 4 items on 2 ranks: ``[0, 2]`` and ``[1, 3]``; 3 items: ``[0, 2]`` and ``[1]``.
    """
    rank = get_rank() if rank is None else int(rank)
    world = get_world_size() if world_size is None else int(world_size)
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    return range(rank, int(n), world)


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _portable(error: BaseException) -> BaseException:
    """An exception another rank can unpickle: FusePoseErrors as they are, anything else as a
    one-line :class:`RankFailedError`."""
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, FusePoseError):
        try:
            pickle.loads(pickle.dumps(error))
            return error
        except Exception:  # noqa: BLE001 - an unpicklable subclass: keep its message
            return FusePoseError(message)
    return RankFailedError(f"rank {get_rank()} failed: {type(error).__name__}: {message}")


def agree(error: BaseException | None = None) -> None:
    """Every rank says whether it failed; if any did, every rank raises.

    The raising rank re-raises its own ``error``; the others raise the lowest failing rank's
    (a FusePoseError as it was, anything else as :class:`RankFailedError`). One process: raise
    ``error`` if given. Call it at the same point on every rank, before a collective that a
    failed rank would never reach.
    """
    if not is_distributed():
        if error is not None:
            raise error
        return
    flags = all_gather(_portable(error) if error is not None else None)
    if error is not None:
        raise error
    failed = [(r, e) for r, e in enumerate(flags) if e is not None]
    if failed:
        rank, first = failed[0]
        log.debug("rank %d failed; stopping rank %d too", rank, get_rank())
        raise first


def all_gather_checked(obj: T, error: BaseException | None = None) -> list[T]:
    """:func:`all_gather` of ``obj`` after :func:`agree` on ``error``: when any rank failed,
    every rank raises instead."""
    agree(error)
    return all_gather(obj)


def gather_checked(obj: T, error: BaseException | None = None, dst: int = 0) -> list[T] | None:
    """Every rank's ``obj`` in rank order on rank ``dst`` (None on the others), after
    :func:`agree` on ``error``."""
    agree(error)
    if not is_distributed():
        return [obj]
    out: list[Any] | None = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def merge_in_order(parts: Sequence[Sequence[tuple[int, T]]]) -> list[T]:
    """Items ``(position, value)`` of every rank as one list sorted by position (the order one
    process would have produced them in)."""
    return [v for _p, v in sorted((item for part in parts for item in part), key=lambda x: x[0])]


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[torch.device | None]:
    """Join torchrun's process group for the duration (:func:`init_distributed`) and leave it
    at the end; yields the device this rank runs on (``cuda:LOCAL_RANK`` for CUDA). Not
    launched, or a group the caller already set up: nothing is initialised or destroyed, and
    it yields None (the caller's device stands)."""
    if not launched() or is_distributed():
        yield None
        return
    _d, _r, _w, dev = init_distributed(device)
    try:
        yield dev
    finally:
        cleanup()
