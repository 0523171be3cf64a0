"""``fusepose synth OUT_DIR --images N``: write the synthetic COCO-format people dataset;
``fusepose synth OUT_DIR --shapes``: the drawn-shapes ImageFolder set (``fusepose pretrain``)."""

from __future__ import annotations

import argparse
import logging

from fusepose.data.synth import PRESETS, generate_shapes, generate_synthetic
from fusepose.progress import Progress

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="output folder (train.json, val.json, images/)")
    parser.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="image side in pixels (default 512; 48 with --shapes)",
    )
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help="rendering settings: default (1-6 people, crowd scenes) or demo (1-3 people, the "
        "demo's and the CPU ablations' set)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="fraction of images in val.json (default 0.1)",
    )
    parser.add_argument(
        "--shapes", action="store_true",
        help="write the drawn-shapes classification set instead: OUT_DIR/{train,val}/<shape>/",
    )  # fmt: skip
    parser.add_argument(
        "--per-class", type=int, nargs=2, default=(40, 10), metavar=("TRAIN", "VAL"),
        help="with --shapes: images per class in train/ and val/ (default 40 10)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.shapes:
        paths = generate_shapes(
            args.out_dir, train_per_class=args.per_class[0], val_per_class=args.per_class[1],
            size=args.size or 48, seed=args.seed,
        )  # fmt: skip
        print(f"wrote {paths['train']}/ and {paths['val']}/")
        return 0
    with Progress(args.images, "synth", unit="img") as bar:
        paths = generate_synthetic(
            args.out_dir,
            args.images,
            seed=args.seed,
            size=args.size or 512,
            val_fraction=args.val_fraction,
            config=PRESETS[args.preset],
            progress=bar.update,
        )
    print(f"wrote {paths['train']}, {paths['val']} and {paths['images']}/")
    return 0
