"""``fusepose bench-data``: data-loader samples/s per worker count and decode time."""

from __future__ import annotations

import argparse

from fusepose.benchmark.dataloader import bench_data
from fusepose.family import FAMILIES
from fusepose.files import write_json_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts")
    parser.add_argument("--images", type=int, default=64, help="synthetic images to generate")
    parser.add_argument("--data", default=None, help="existing folder with train.json + images/")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=512, help="bottom-up input side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--json", default=None, help="also write the results to this file")


def run(args: argparse.Namespace) -> int:
    res = bench_data(
        workers=args.workers,
        images=args.images,
        data_dir=args.data,
        batch_size=args.batch_size,
        input_size=args.input_size,
        seed=args.seed,
        kinds=args.kinds,
    )
    print(f"{'targets':<10} {'workers':>7} {'samples/s':>10} {'samples':>8}")
    for r in res["loader"]:
        print(f"{r['kind']:<10} {r['workers']:>7d} {r['samples_per_s']:>10.1f} {r['samples']:>8d}")
    for name, d in res["decode"].items():
        print(
            f"decode {args.input_size}x{args.input_size} {d['people_annotated']} people ({name}): "
            f"median {d['median_ms']:.1f} ms, min {d['min_ms']:.1f} ms, "
            f"CPU {d['cpu_median_ms']:.1f} ms, "
            f"{d['people_decoded']} decoded"
        )
    if args.json:
        write_json_atomic(args.json, res, indent=2)
    return 0
