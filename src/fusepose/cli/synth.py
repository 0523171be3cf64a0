"""``fusepose synth OUT_DIR --images N``: write the synthetic COCO-format people dataset."""

from __future__ import annotations

import argparse
import logging

from tqdm import tqdm

from fusepose.data.synth import PRESETS, generate_synthetic

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="output folder (train.json, val.json, images/)")
    parser.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
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


def run(args: argparse.Namespace) -> int:
    with tqdm(total=args.images, unit="img", desc="synth") as bar:
        paths = generate_synthetic(
            args.out_dir,
            args.images,
            seed=args.seed,
            size=args.size,
            val_fraction=args.val_fraction,
            config=PRESETS[args.preset],
            progress=bar.update,
        )
    print(f"wrote {paths['train']}, {paths['val']} and {paths['images']}/")
    return 0
