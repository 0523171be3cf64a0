"""``--backend auto``: the fastest inference path whose accuracy guard passes on this CPU.

Every path this CPU can run (:func:`candidate_paths`: PyTorch fp32 / bf16, ONNX Runtime fp32 /
INT8 with the model's default scope and the whole graph, OpenVINO fp32 / bf16 / INT8) is built,
its network timed on the model's own input (interleaved rounds, median) and its decoded
keypoints compared with the fp32 reference (PyTorch when a module is at hand, else ONNX Runtime)
on the guard images (:mod:`fusepose.inference.guard`). The fastest path that passes is chosen;
one that fails its guard never is. The measurement is cached per machine (CPU model + ISA flags,
:func:`fusepose.cpu.machine_id`) and model file (content hash) in ``~/.cache/fusepose/auto``,
so the next start only builds the chosen path. A cache entry is written atomically with a
checksum and re-validated before use (an interrupted or altered one is measured again), and
the exported files it builds are verified cache entries too (:mod:`fusepose.export.cache`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.assets import sample_image
from fusepose.cpu import cpu_model, isa, machine_id
from fusepose.errors import ConfigError, FusePoseError
from fusepose.export.quantize import int8_scope
from fusepose.files import verified, write_json_atomic, write_verified
from fusepose.inference.backends import CACHE, InferencePath, calibration_batches, make_network
from fusepose.inference.guard import decode_images, guard

logger = logging.getLogger(__name__)

__all__ = ["AutoChoice", "candidate_paths", "choose_path", "model_key"]

CACHE_VERSION = 1


@dataclass
class AutoChoice:
    """What ``auto`` chose: the path, its network, and the measurement of every candidate
    (``report["candidates"]``: ``label``, ``network_ms``, ``guard`` or ``error``, ``passed``)."""

    path: InferencePath
    network: Any
    report: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def describe(self) -> str:
        """One line: the chosen path, its time and why, for the CLI."""
        row = next(c for c in self.report["candidates"] if c["label"] == self.path.label)
        others = ", ".join(
            f"{c['label']} {c['network_ms']:.0f} ms" + ("" if c.get("passed") else " (failed guard)")
            for c in self.report["candidates"] if c.get("network_ms") is not None
            and c["label"] != self.path.label
        )  # fmt: skip
        return (f"--backend auto chose {self.path.label}: network {row['network_ms']:.1f} ms on "
                f"this CPU ({self.report['machine']['cpu']}; "
                f"{'cached measurement' if self.cached else 'measured now'}); others: "
                f"{others or 'none'}")  # fmt: skip


def candidate_paths(has_module: bool, model_name: str | None = None) -> list[InferencePath]:
    """Every path to try, reference first (PyTorch fp32 when ``has_module``, else ONNX
    Runtime fp32); paths this CPU cannot run fail when built and are reported."""
    paths = []
    if has_module:
        paths += [InferencePath("torch"), InferencePath("torch", "bf16")]
    paths += [InferencePath("onnx"), InferencePath("onnx", "int8")]
    if int8_scope(model_name) is not None:  # a scoped default: try the whole graph too
        paths.append(InferencePath("onnx", "int8", "whole"))
    paths += [InferencePath("openvino"), InferencePath("openvino", "bf16"),
              InferencePath("openvino", "int8")]  # fmt: skip
    return paths


def model_key(file: str | Path | None, module: Any = None, extra: str = "") -> str:
    """A content hash of the model file (else of the module's weights) and ``extra``."""
    h = hashlib.sha1(extra.encode())
    if file is not None and Path(file).is_file():
        h.update(Path(file).read_bytes())
    elif module is not None:
        for k, v in sorted(module.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def _time(networks: Sequence[tuple[str, Any]], x: np.ndarray, runs: int) -> dict[str, float]:
    """Median ms of each network on ``x``, one warmup each, rounds interleaved."""
    times: dict[str, list[float]] = {label: [] for label, _ in networks}
    for i in range(runs + 1):
        for label, net in networks:
            t0 = time.perf_counter()
            net(x)
            if i:
                times[label].append((time.perf_counter() - t0) * 1e3)
    return {k: round(float(statistics.median(v)), 2) for k, v in times.items()}


def choose_path(
    *,
    module: Any = None,
    onnx_file: str | Path | None = None,
    model_file: str | Path | None = None,
    desc: Any,
    pipeline: Any,
    threads: int | None = None,
    device: str = "cpu",
    calibration: Sequence[Any] | None = None,
    guard_images: Sequence[Any] | None = None,
    runs: int = 5,
    candidates: Sequence[InferencePath] | None = None,
    cache_dir: str | Path | None = None,
    build: Callable[..., Any] = make_network,
) -> AutoChoice:
    """Measure the ``candidates`` (default :func:`candidate_paths`) and choose (see the module
    docstring). ``model_file``: the file the model came from (checkpoint or .onnx, for the
    cache key; None: the module's weights). ``guard_images`` default: the bundled sample photo.
    ``build``: the network factory (:func:`~fusepose.inference.backends.make_network`)."""
    if module is None and onnx_file is None:
        raise ConfigError("--backend auto needs a model file or a module")
    paths = list(candidates or candidate_paths(module is not None, desc.model))
    images = list(guard_images or [sample_image()])
    folder = Path(cache_dir) if cache_dir else CACHE / "auto"
    key = model_key(model_file or onnx_file, module,
                    f"{CACHE_VERSION}|{desc.to_json()}|{threads}|{[p.label for p in paths]}|"
                    f"{_images(images)}|{_images(calibration or [])}")  # fmt: skip
    cache_file = folder / f"{machine_id()}_{key}.json"
    common = dict(module=module, onnx_file=onnx_file, desc=desc, pipeline=pipeline,
                  threads=threads, device=device, calibration=calibration)  # fmt: skip
    if cache_file.is_file():  # used only when its checksum holds and its choice passed
        try:
            report = _cached_report(cache_file, paths)
            chosen = InferencePath(**report["chosen"])
            return AutoChoice(chosen, build(chosen, **common), report, cached=True)
        except (OSError, ValueError, KeyError, TypeError, FusePoseError) as e:
            logger.warning("%s: cached auto choice unusable (%s); measuring again", cache_file, e)
    built: list[tuple[InferencePath, Any]] = []
    rows: list[dict[str, Any]] = []
    for p in paths:
        row: dict[str, Any] = {"label": p.label, **p.to_dict(), "network_ms": None}
        try:
            built.append((p, build(p, **common)))
        except FusePoseError as e:
            row["error"] = str(e)
            logger.info("auto: %s unavailable: %s", p.label, e)
        rows.append(row)
    if not built:
        raise ConfigError("--backend auto: no inference path could be built: "
                          + "; ".join(r["error"] for r in rows))  # fmt: skip
    x = calibration_batches(pipeline, images[:1], num_synthetic=0)[0]
    times = _time([(p.label, net) for p, net in built], x, runs)
    ref_path, ref_net = built[0]
    ref = decode_images(ref_net, pipeline, images)
    by_label = {r["label"]: r for r in rows}
    for p, net in built:
        row = by_label[p.label]
        row["network_ms"] = times[p.label]
        if p == ref_path:
            row.update(reference=True, passed=True)
            continue
        try:
            row["guard"] = guard(ref, decode_images(net, pipeline, images))
        except Exception as e:  # noqa: BLE001 - a path that crashes when decoding fails its guard
            row["guard"] = {"passed": False, "why": f"{type(e).__name__}: {e}"}
        row["passed"] = bool(row["guard"]["passed"])
    ok = [(by_label[p.label]["network_ms"], i, p) for i, (p, _) in enumerate(built)
          if by_label[p.label]["passed"]]  # fmt: skip
    _, _, chosen = min(ok)
    report = {
        "machine": {"cpu": cpu_model(), "isa": isa(), "id": machine_id()},
        "model": str(model_file or onnx_file or desc.model),
        "threads": threads,
        "reference": ref_path.label,
        "guard_images": [_name(i) for i in images],
        "candidates": rows,
        "chosen": chosen.to_dict(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    write_verified(cache_file, lambda tmp: write_json_atomic(tmp, report, indent=2))
    network = next(net for p, net in built if p == chosen)
    return AutoChoice(chosen, network, report, cached=False)


def _cached_report(cache_file: Path, paths: Sequence[InferencePath]) -> dict[str, Any]:
    """A cached measurement, re-validated: its checksum holds (:func:`fusepose.files.verified`)
    and its choice is one of ``paths`` whose guard passed; ValueError otherwise."""
    if not verified(cache_file):
        raise ValueError("no valid checksum (an interrupted or altered entry)")
    report = json.loads(cache_file.read_text())
    chosen = InferencePath(**report["chosen"])
    rows = {r.get("label"): r for r in report["candidates"]}
    if chosen not in paths or not rows.get(chosen.label, {}).get("passed"):
        raise ValueError(f"its choice {chosen.label!r} is not a measured path that passed")
    return report


def _name(item: Any) -> str:
    return "<array>" if isinstance(item, np.ndarray) else Path(item).name


def _images(items: Sequence[Any]) -> str:
    h = hashlib.sha1()
    for it in items:
        h.update(it.tobytes() if isinstance(it, np.ndarray) else str(Path(it).resolve()).encode())
    return h.hexdigest()[:12]
