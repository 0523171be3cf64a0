"""Data-loader throughput and bottom-up decode time on synthetic data.

* Loader: samples/s of ``torch.utils.data.DataLoader`` over :class:`CocoBottomUpDataset`
  (512 input, HigherHRNet targets at 1/4 and 1/2) and :class:`CocoTopDownDataset`
  (256x192 crops, 64x48 heatmaps), with training augmentation, per worker count. The first
  batch (worker start-up) is excluded from the rate.
* Decode: median milliseconds of :meth:`AssociativeEmbeddingCodec.decode` on the output of a
  perfect network (GT heatmaps + one constant tag per person) for a synthetic 10-person
  512x512 image, without and with the flip input.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusepose.codecs.pipelines import build_codec
from fusepose.data.coco import COCO_DATASETS
from fusepose.data.collate import collate
from fusepose.data.synth import SynthConfig, generate_synthetic, render_image
from fusepose.errors import DataError
from fusepose.family import BOTTOM_UP, FAMILIES, TOP_DOWN, Family, get_family
from fusepose.geometry import InputGeometry
from fusepose.skeletons import COCO17

logger = logging.getLogger(__name__)

__all__ = ["loader_throughput", "decode_time", "bench_data"]


# the geometry each family's loader is timed at: bottom-up HigherHRNet crops of the given
# side, top-down the paper's 256x192 person crops
_GEOMETRY = {
    BOTTOM_UP: InputGeometry.short_side,
    TOP_DOWN: lambda _side: TOP_DOWN.fixed_geometry((256, 192)),
}


def _dataset(kind: str, data_dir: Path, input_size: int, seed: int):
    ann = data_dir / "train.json"
    if not ann.is_file():
        raise DataError(f"{ann}: not found (make one with `fusepose synth {data_dir}`)")
    rng = np.random.default_rng(seed)
    if kind not in FAMILIES:
        raise ValueError(f"unknown dataset kind {kind!r}")
    fam = get_family(kind)
    geometry = _GEOMETRY[fam](input_size)
    codec = _codec(fam, geometry.size)
    return COCO_DATASETS[fam](ann, data_dir / "images", codec, geometry=geometry, rng=rng)


def _codec(kind: str | Family, hw: tuple[int, int]):
    """The target codec a COCO-17 model of ``kind`` trains with at ``hw``."""
    return build_codec(get_family(kind).default_codec_spec(sigma=2.0), num_keypoints=17,
                       flip_index=COCO17.flip_index, input_size=hw)  # fmt: skip


def loader_throughput(
    dataset: torch.utils.data.Dataset, workers: int, batch_size: int = 8, max_batches: int = 0
) -> dict[str, float]:
    """Samples per second of one pass (after the first batch) with ``workers`` processes.

    The main process runs with one torch thread, like DataLoader workers: with several, the
    batch ``torch.stack`` in ``collate`` fights the loading for the cores (measured 3x slower
    for ``workers=0`` on a busy 2-core machine).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _throughput(dataset, workers, batch_size, max_batches, collate)
    finally:
        torch.set_num_threads(threads)


def _throughput(dataset, workers: int, batch_size: int, max_batches: int, collate) -> dict:

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate
    )
    n = 0
    t0 = None
    n_batches = 0
    start = time.perf_counter()
    for batch in loader:
        n_batches += 1
        if t0 is None:  # exclude worker start-up and the first batch
            t0 = time.perf_counter()
            first = time.perf_counter() - start
            continue
        n += len(batch["image"])
        if max_batches and n_batches >= max_batches:
            break
    elapsed = time.perf_counter() - t0 if t0 is not None else float("nan")
    rate = n / elapsed if n and elapsed > 0 else float("nan")
    return {"samples_per_s": rate, "samples": n, "first_batch_s": first if t0 else float("nan")}


def decode_time(
    num_people: int = 10, size: int = 512, repeats: int = 20, seed: int = 0, flip: bool = False
) -> dict[str, float]:
    """Median / min wall ms (and median CPU ms) of decoding a perfect network's output for
    ``num_people`` synthetic people (some joints out of frame, so refine runs too)."""
    cfg = SynthConfig(size=size, min_people=num_people, max_people=num_people, max_torso=0.2)
    _, anns = render_image(np.random.default_rng([seed, 10_000]), cfg)
    kp = np.stack([a["keypoints"] for a in anns])
    codec = _codec(BOTTOM_UP, (size, size))
    out_q, out_h = codec.ideal_outputs(kp)
    flip_args = ()
    if flip:
        fi = COCO17.flip_index
        fq = np.ascontiguousarray(np.concatenate([out_q[:17][fi], out_q[17:][fi]])[:, :, ::-1])
        fh = np.ascontiguousarray(out_h[fi][:, :, ::-1])
        flip_args = (fq, fh)
    poses, _ = codec.decode(out_q, out_h, *flip_args)  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        codec.decode(out_q, out_h, *flip_args)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {
        "median_ms": 1000 * float(np.median(times)),
        "min_ms": 1000 * float(np.min(times)),
        # CPU time of this process (all its threads): less sensitive to a busy machine
        "cpu_median_ms": 1000 * float(np.median(cpu)),
        "people_annotated": len(kp),
        "people_with_keypoints": int((kp[..., 2] > 0).any(-1).sum()),
        "people_decoded": len(poses),
    }


def bench_data(
    workers: Sequence[int] = (0, 1, 2),
    images: int = 64,
    data_dir: str | Path | None = None,
    batch_size: int = 8,
    input_size: int = 512,
    seed: int = 0,
    kinds: Sequence[str] = tuple(FAMILIES),
    decode_repeats: int = 20,
) -> dict[str, Any]:
    """Loader samples/s per kind and worker count, and decode ms (see the module docstring).

    ``data_dir``: an existing synthetic (or any COCO-format) folder with ``train.json`` and
    ``images/``; by default ``images`` synthetic images are generated in a temporary folder.
    """
    results: dict[str, Any] = {"loader": [], "decode": {}}
    with tempfile.TemporaryDirectory(prefix="fusepose-bench-") as tmp:
        root = Path(data_dir) if data_dir is not None else Path(tmp)
        if data_dir is None:
            generate_synthetic(root, images, seed=seed, size=input_size, val_fraction=0.0)
        for kind in kinds:
            ds = _dataset(kind, root, input_size, seed)
            for w in workers:
                r = loader_throughput(ds, int(w), batch_size)
                r.update(kind=kind, workers=int(w), dataset_size=len(ds))
                logger.info("%s workers=%d: %.1f samples/s", kind, w, r["samples_per_s"])
                results["loader"].append(r)
    for flip in (False, True):
        results["decode"]["flip" if flip else "single"] = decode_time(
            10, input_size, decode_repeats, seed, flip=flip
        )
    return results
