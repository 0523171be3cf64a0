"""Throughput: N single-thread streams over a folder or video, images/s beside latency.

Latency (one image as fast as possible) wants every core on one image: few, large ops. A
folder, a video or the server's queue wants the opposite: each core on its own image, with no
barrier between them. :func:`measure_throughput` runs ``streams`` worker processes (default:
one per logical CPU), each with its own :class:`~fusepose.inference.Predictor` at
``threads_per_stream`` intra-op threads (default 1), over the same frames (stream ``i`` takes
frames ``i, i + N, ...``), after every worker has built its network and warmed up. It reports
images/s over the wall time of the timed part and the per-image latency each stream saw.

Processes, not threads: preprocess and decode hold the GIL, so threads would serialise them.
Workers are spawned (a fresh interpreter each: a forked ONNX Runtime / OpenMP pool is not safe),
so the predictor's arguments must be picklable (paths, names, plain values, an ``nn.Module``).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fusepose.errors import ConfigError, SourceError

logger = logging.getLogger(__name__)

__all__ = ["ThroughputResult", "load_frames", "measure_throughput"]


@dataclass
class ThroughputResult:
    """``images_per_s`` of ``streams`` parallel streams; ``latency_ms`` / ``latency_p90_ms``:
    median / 90th percentile of one image's end-to-end time inside a stream (ms)."""

    streams: int
    threads_per_stream: int
    images: int
    seconds: float
    images_per_s: float
    latency_ms: float
    latency_p90_ms: float
    per_stream_images: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_frames(source: Any, max_frames: int | None = None) -> list[np.ndarray]:
    """BGR frames (H, W, 3) uint8 of an image, a folder or a video file, in order (at most
    ``max_frames``), read once so that decoding the files is not timed."""
    from fusepose.inference.sources import iter_frames

    frames = []
    for frame in iter_frames(source):
        frames.append(frame.image)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise SourceError(f"{source}: no frames")
    return frames


def _worker(index: int, kwargs: dict[str, Any], frames: list[np.ndarray], warmup: int,
            ready, start, results) -> None:  # fmt: skip
    """One stream: build the Predictor, warm up, wait for the common start, run the frames."""
    error = None
    try:
        from fusepose.inference.predictor import Predictor

        pred = Predictor(**kwargs)
        for i in range(warmup):
            pred.predict_frame(frames[i % len(frames)])
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises
        error = f"{type(e).__name__}: {e}"
    ready.wait()
    start.wait()
    if error is not None:
        results.put((index, [], error))
        return
    times = []
    for frame in frames:
        t0 = time.perf_counter()
        pred.predict_frame(frame)
        times.append((time.perf_counter() - t0) * 1e3)
    results.put((index, times, None))


def measure_throughput(
    predictor: dict[str, Any],
    frames: Sequence[np.ndarray],
    *,
    streams: int | None = None,
    threads_per_stream: int = 1,
    rounds: int = 1,
    warmup: int = 2,
    timeout_s: float = 3600.0,
) -> ThroughputResult:
    """Run ``streams`` single-thread Predictors in parallel over ``frames``.

    predictor: keyword arguments of :class:`~fusepose.inference.Predictor` (e.g.
        ``{"model": "best.pth", "backend": "openvino", "precision": "bf16"}``); ``num_threads``
        is set to ``threads_per_stream``.
    frames: BGR images (H, W, 3) uint8 (:func:`load_frames`); the set is run ``rounds`` times,
        split round-robin over the streams.
    streams: worker processes (default: the number of logical CPUs).
    Returns images/s over the timed part (after every stream has built and warmed up) and the
    per-image latency inside the streams.
    """
    n = int(streams or os.cpu_count() or 1)
    if n < 1 or threads_per_stream < 1 or rounds < 1 or warmup < 0:
        raise ConfigError("streams, threads_per_stream and rounds must be >= 1, warmup >= 0")
    if not frames:
        raise ConfigError("measure_throughput: no frames")
    work = list(frames) * int(rounds)
    shares = [work[i::n] for i in range(n)]
    if any(not s for s in shares):
        raise ConfigError(f"{len(work)} frames for {n} streams: give at least one per stream")
    kwargs = {**predictor, "num_threads": int(threads_per_stream)}
    ctx = mp.get_context("spawn")
    ready, start, results = ctx.Barrier(n + 1), ctx.Barrier(n + 1), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker, daemon=True, args=(i, kwargs, shares[i], warmup, ready, start, results)
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    try:
        ready.wait(timeout=timeout_s)
        t0 = time.perf_counter()
        start.wait(timeout=timeout_s)
        got = [results.get(timeout=timeout_s) for _ in range(n)]
        seconds = time.perf_counter() - t0
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    errors = [err for _, _, err in got if err]
    if errors:
        raise ConfigError(f"a throughput stream failed: {errors[0]}")
    times = [t for _, ts, _ in got for t in ts]
    per_stream = [len(ts) for _, ts, _ in sorted(got, key=lambda g: g[0])]
    p90 = float(np.percentile(times, 90))
    res = ThroughputResult(n, int(threads_per_stream), len(times), round(seconds, 3),
                           round(len(times) / seconds, 3), round(statistics.median(times), 2),
                           round(p90, 2), per_stream)  # fmt: skip
    logger.info("throughput: %s", res)
    return res
