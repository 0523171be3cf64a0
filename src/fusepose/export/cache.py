"""ONNX exports for benchmarks, cached by model, size and weights."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import fusepose.export.fold as fold_module
import fusepose.export.optimize as optimize_module
from fusepose.description import ModelDescription
from fusepose.export.optimize import optimize_for_inference
from fusepose.export.package import export_model
from fusepose.files import cached_file

logger = logging.getLogger(__name__)

__all__ = ["export_cached"]


def export_cached(
    model: Any,
    name: str,
    hw: tuple[int, int],
    workdir: Path,
    tag: str,
    *,
    desc: ModelDescription | None = None,
    dynamic: bool | str = False,
    optimize: bool = True,
) -> Path:
    """ONNX export of ``model`` (the optimized inference graph unless ``optimize=False``) in
    ``workdir``, reused when present. ``desc`` / ``dynamic``: as :func:`export_model` (by
    default fixed-shape batch 1 at ``hw``; bottom-up files letterbox into it).

    The file name holds the model name, size, ``tag`` and a fingerprint of the weights and of
    the graph rewrites, so a stale file is never reused for other weights or other code; the
    entry is written atomically with a checksum and re-verified before each use
    (:func:`fusepose.files.cached_file`).
    """
    digest = hashlib.sha1(Path(optimize_module.__file__).read_bytes())  # the graph choices
    digest.update(Path(fold_module.__file__).read_bytes())
    for k, v in sorted(model.state_dict().items()):
        digest.update(k.encode())
        digest.update(v.detach().cpu().float().numpy().tobytes()[:4096])
    if desc is not None:
        digest.update(desc.to_json().encode())
    size = "dyn" if dynamic is True else f"{hw[0]}x{hw[1]}"
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}_{size}_{tag}_{digest.hexdigest()[:10]}.onnx"
    t = time.perf_counter()

    def make(tmp: Path) -> None:
        net = optimize_for_inference(model) if optimize else model
        net.info = model.info
        export_model(net, tmp, hw, desc=desc, dynamic=dynamic)

    # a verified entry only: a half-written or altered file (a killed run) is made again
    path, hit = cached_file(path, make)
    if not hit:
        logger.info("exported %s in %.0f s", path.name, time.perf_counter() - t)
    return path
