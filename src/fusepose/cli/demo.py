"""``fusepose demo [--out DIR] [--images N] [--epochs E]``: the whole pipeline on CPU.

Renders the synthetic people, trains a reduced L-MFNet with a progress bar, scores held-out AP
(all images, two- and three-person images) and tag separation, draws predictions beside the
ground truth and plots the curves: :func:`fusepose.experiments.demo.run_demo`.
"""

from __future__ import annotations

import argparse

from fusepose.experiments.demo import DEMO_CONFIG, run_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--images", type=int, default=1200,
                        help="synthetic images to render (10%% held out; default 1200)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default: the config's, {DEMO_CONFIG.name})")  # fmt: skip
    parser.add_argument(
        "--config", default=None, help=f"training config (default {DEMO_CONFIG.name})"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="extra config overrides")  # fmt: skip
    parser.add_argument("--draw", type=int, default=8, help="held-out images to draw (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed (default 0)")


def run(args: argparse.Namespace) -> int:
    s = run_demo(args.out, images=args.images, epochs=args.epochs, config=args.config,
                 overrides=args.overrides, draw=args.draw, seed=args.seed, say=print)  # fmt: skip
    print(
        f"\nheld-out COCO AP (pycocotools): {s['AP']:.3f} (AP50 {s['AP50']:.3f}); untrained "
        f"{s['AP_untrained']:.3f}\n"
        f"  two-person images: AP {_f(s['AP_2people'])}, three-person images: AP "
        f"{_f(s['AP_3people'])}\n"
        f"tag separation (between-person / within-person spread): {s['tag_separation']:.2f}, "
        f"{100 * s['tag_pairs_apart']:.0f}% of person pairs more than 1 tag unit apart "
        f"(untrained {s['tag_separation_untrained']:.2f})\n"
        f"training: {s['steps']} steps x {s['batch_size']} = {s['images_seen']} images in "
        f"{s['train_step_seconds']:.0f} s = {_f(s['train_images_per_s'], 1)} images/s "
        f"({s['torch_threads']} torch thread); whole demo {s['total_seconds']:.0f} s\n"
        f"run folder:  {s['run_dir']}  (config.yaml, train.csv, last.pth, curves.png)\n"
        f"drawings:    {len(s['predictions'])} held-out images, prediction | ground truth\n"
        f"summary:     {s['summary']}"
    )
    return 0


def _f(v, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"
