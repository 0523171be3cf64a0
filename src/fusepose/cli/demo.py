"""``fusepose demo [--out DIR] [--images N] [--minutes M | --epochs E]``: the whole pipeline on CPU.

Renders the synthetic people, trains a reduced L-MFNet to a time budget (by default what is left
of the 10 minutes the README promises; ``--epochs`` for a fixed schedule), scores held-out AP
(all images, one-, two- and three-person images) and tag separation, draws predictions beside
the ground truth and plots the curves: :func:`fusepose.experiments.demo.run_demo`.
"""

from __future__ import annotations

import argparse

from fusepose.experiments.demo import DEMO_CONFIG, PROMISE_MINUTES, run_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--images", type=int, default=1200,
                        help="synthetic images to render (10%% held out; default 1200)")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=None,
                        help="training budget in minutes, steps and validations (default: what "
                        f"is left of {PROMISE_MINUTES:g} minutes for the whole demo after "
                        "rendering and the untrained scoring, about 8.5 on 2 cores)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None,
                        help="train a fixed number of epochs instead of a time budget (--epochs "
                        "9: the lmfnet_synth-128_1xb8-9e recipe)")  # fmt: skip
    parser.add_argument(
        "--config", default=None, help=f"training config (default {DEMO_CONFIG.name})"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="extra config overrides")  # fmt: skip
    parser.add_argument("--draw", type=int, default=8, help="held-out images to draw (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed (default 0)")


def run(args: argparse.Namespace) -> int:
    s = run_demo(args.out, images=args.images, epochs=args.epochs, minutes=args.minutes,
                 config=args.config, overrides=args.overrides, draw=args.draw, seed=args.seed,
                 say=lambda msg: print(msg, flush=True))  # fmt: skip
    budget = (f" of a {s['budget_minutes']:.2f}-minute budget "
              f"({100 * s['budget_step_share']:.0f}% in training steps)"
              if s.get("budget_minutes") else "")  # fmt: skip
    print(
        f"\nheld-out COCO AP (pycocotools): {s['AP']:.3f} (AP50 {s['AP50']:.3f}); untrained "
        f"{s['AP_untrained']:.3f}\n"
        f"  one-person images: AP {_f(s['AP_1person'])}, two-person images: AP "
        f"{_f(s['AP_2people'])}, three-person images: AP {_f(s['AP_3people'])}\n"
        f"tag separation (between-person / within-person spread): {s['tag_separation']:.2f}, "
        f"{100 * s['tag_pairs_apart']:.0f}% of person pairs more than 1 tag unit apart "
        f"(untrained {s['tag_separation_untrained']:.2f})\n"
        f"training: {s['steps']} steps x {s['batch_size']} = {s['images_seen']} images in "
        f"{s['train_step_seconds']:.0f} s{budget} = {_f(s['train_images_per_s'], 1)} images/s "
        f"({s['torch_threads']} torch threads, {s['isa_kind'] or 'unknown'} CPU)\n"
        f"whole demo: {s['total_seconds']:.0f} s\n"
        f"run folder:  {s['run_dir']}  (config.yaml, train.csv, last.pth, curves.png)\n"
        f"drawings:    {len(s['predictions'])} held-out images, prediction | ground truth\n"
        f"summary:     {s['summary']}"
    )
    return 0


def _f(v, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"
