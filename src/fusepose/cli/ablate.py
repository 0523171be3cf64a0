"""``fusepose ablate {table3,sfm-attention} [--budget smoke|cpu|paper] [--out DIR]``: train every
variant of a paper's ablation with one recipe, score and time them, and write the table beside
the paper's (:func:`fusepose.experiments.ablation.run_ablation`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusepose.errors import ConfigError
from fusepose.experiments.ablation import BUDGETS, EXPERIMENTS, run_ablation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", choices=list(EXPERIMENTS),
                        help="table3: L-MFNet Table 3; sfm-attention: SFM none / spatial / HSA")  # fmt: skip
    parser.add_argument("--budget", choices=BUDGETS, default="cpu",
                        help="smoke: seconds per variant (tests); cpu: the synthetic set in "
                        "minutes per variant (default); paper: the papers' configs (GPUs)")  # fmt: skip
    parser.add_argument(
        "--out", default=None, help="output folder (default runs/ablate-EXPERIMENT-BUDGET)"
    )
    parser.add_argument("--data", default=None,
                        help="a COCO-format set laid out as `fusepose synth` writes it "
                        "(DIR/train.json, DIR/val.json, DIR/images)")  # fmt: skip
    for split in ("train", "val"):
        parser.add_argument(f"--{split}-ann", default=None, help=f"{split} annotation file")
        parser.add_argument(f"--{split}-images", default=None, help=f"{split} image folder")
    parser.add_argument("--variants", default=None,
                        help="comma-separated subset of the experiment's variants")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config change applied to every variant")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="threads for scoring and latency")
    parser.add_argument("--latency-runs", type=int, default=10, help="timed runs per variant")


def run(args: argparse.Namespace) -> int:
    data = None
    given = {k: getattr(args, k) for k in ("train_ann", "train_images", "val_ann", "val_images")}
    if args.data:
        if any(given.values()):
            raise ConfigError("--data: give either --data or --train-ann/--val-ann/..., not both")
        root = Path(args.data)
        data = {"train_ann": str(root / "train.json"), "train_images": str(root / "images"),
                "val_ann": str(root / "val.json"), "val_images": str(root / "images")}  # fmt: skip
    elif any(given.values()):
        data = {k: v or "" for k, v in given.items()}
    out = args.out or f"runs/ablate-{args.experiment}-{args.budget}"
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    result = run_ablation(args.experiment, out, budget=args.budget, data=data,
                          overrides=args.overrides, variants=variants, threads=args.threads,
                          latency_runs=args.latency_runs,
                          say=lambda msg: print(msg, flush=True))  # fmt: skip
    md = Path(out) / "ablation.md"
    print(md.read_text())
    print(
        f"wrote {Path(out) / 'ablation.json'}, {md}, ablation_ap_gmacs.png and "
        f"ablation_ap_latency.png in {out} ({result['seconds']:.0f} s)"
    )
    return 0
