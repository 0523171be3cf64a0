"""Issue 22's parts of ``fusepose perf``: the limit on every row, throughput beside latency, and
the run's speed verdict.

- :func:`mac_bounds`: every row's MAC-bound time at the best dense rate of its precision
  measured in the same run (:func:`fusepose.benchmark.limits.dense_rates`, fp32 and, where it
  is native, bf16) and the row's ratio to it: the row's ``mac_bound`` key, ``dense_rates``.
- :func:`throughput_section`: per bottom-up model, its fastest accurate path that runs an exported file
  (ONNX Runtime or OpenVINO: what folders, videos and the server run) in ``streams``
  single-thread processes (:func:`fusepose.benchmark.throughput.measure_throughput`), beside the
  same path in one process at the run's thread count (latency mode), on the same frames.
- :func:`verdict_section`: the run's verdict (:func:`fusepose.benchmark.verdict.speed_verdicts`
  over this one run); ``fusepose perf --verdict`` combines separate runs into the range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusepose.benchmark.limits import dense_rates
from fusepose.benchmark.throughput import measure_throughput
from fusepose.benchmark.verdict import add_mac_bounds, speed_verdicts, verdict_candidates
from fusepose.data.io import read_image
from fusepose.experiments.perf_rows import PerfConfig, Row
from fusepose.family import get_family

__all__ = ["mac_bounds", "stream_predictor", "throughput_section", "verdict_section"]


def mac_bounds(out: dict[str, Any], cfg: PerfConfig, peak: dict[str, float] | None) -> None:
    """Add ``dense_rates`` (measured now) and every row's ``mac_bound`` to ``out``, in place."""
    add_mac_bounds(out, dense_rates(cfg.threads, peak=peak))


def stream_predictor(row: Row, built: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Predictor keyword arguments of a row that runs an exported file (picklable: the file's
    path), else None (PyTorch rows: their modules are built in this process)."""
    if row.backend not in ("onnx", "openvino"):
        return None
    key = "onnx"
    if row.precision == "int8":
        key = "int8_whole" if row.int8_scope == "whole" else "int8"
    path = built.get(row.model, {}).get(key)
    if path is None:
        return None
    return {"model": str(path), "backend": row.backend, "precision": row.precision}


def throughput_section(rows: Sequence[Row], built: dict[str, dict[str, Any]],
                       images: Sequence[Path], cfg: PerfConfig) -> dict[str, Any]:  # fmt: skip
    """Images/s of ``cfg.streams`` single-thread streams beside latency mode (one process at
    ``cfg.threads`` threads), per model on its fastest file-backed row whose guard passed;
    both over the same frames (``images``, repeated to give each stream about ``cfg.runs``),
    decoding the network's own maps. Top-down models (person boxes per frame) are listed in
    ``not_streamed``."""
    frames = [read_image(p) for p in images]
    rounds = max(1, math.ceil(cfg.runs * cfg.streams / len(frames)))
    out: dict[str, Any] = {"streams": cfg.streams, "threads_per_stream": 1,
                           "latency_threads": cfg.threads, "frames": len(frames) * rounds,
                           "decode_maps": "network outputs", "models": {}}  # fmt: skip
    for name in built:
        if get_family(built[name]["kind"]).needs_boxes:  # a detector per frame: not this study
            out.setdefault("not_streamed", []).append(name)
            continue
        ok = [r for r in rows if r.model == name and r.guard_passed and r.total_ms > 0
              and stream_predictor(r, built) is not None]  # fmt: skip
        if not ok:
            continue
        row = min(ok, key=lambda r: r.total_ms)
        kwargs = stream_predictor(row, built)
        warm = max(cfg.warmup, 1)
        lat = measure_throughput(kwargs, frames, streams=1, threads_per_stream=cfg.threads,
                                 rounds=rounds, warmup=warm)  # fmt: skip
        par = measure_throughput(kwargs, frames, streams=cfg.streams, threads_per_stream=1,
                                 rounds=rounds, warmup=warm)  # fmt: skip
        out["models"][name] = {
            "label": row.label,
            "latency": lat.to_dict(),
            "streams": par.to_dict(),
            "gain": round(par.images_per_s / lat.images_per_s, 3),
        }
    return out


def verdict_section(out: dict[str, Any]) -> dict[str, Any] | None:
    """Issue 22's verdict of this run alone (one run of the :data:`~fusepose.benchmark.verdict.
    MIN_RUNS` it needs), or None without a baseline row or a model of its kind to judge."""
    candidates, baseline = verdict_candidates(out)
    if not candidates or not any(r["model"] == baseline for r in out["rows"]):
        return None
    return speed_verdicts([out], candidates, baseline)
