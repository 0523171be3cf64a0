"""``fusepose pretrain CONFIG [--set key=value ...] [--resume auto|PATH] [--out DIR]``:
ImageNet-style classification pretraining of a bottom-up model's backbone.

Under ``torchrun --nproc_per_node N -m fusepose.cli.main pretrain ...`` every process runs
this; rank 0 alone logs and writes the run folder. The run's ``best.pth`` is what
``model.pretrained`` of a pose config takes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fusepose.cli.train import add_arguments as _train_arguments
from fusepose.cli.train import check_run_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _train_arguments(parser)  # the same flags as `fusepose train`


def run(args: argparse.Namespace) -> int:
    from fusepose.engine.config import PretrainConfig, load_config
    from fusepose.engine.pretrain import pretrain

    cfg = load_config(args.config, args.overrides, schema=PretrainConfig)
    check_run_folder(args, cfg)
    result = pretrain(cfg, resume=args.resume, run_dir=args.out, config_path=Path(args.config))
    if result.get("is_main", True):
        best = result["best_metric"]
        best_s = f", best {cfg.eval.metric} {best:.4f}" if best > float("-inf") else ""
        print(f"run folder: {result['run_dir']} (last.pth{', best.pth' if best_s else ''}){best_s}")
        if best_s:
            print(f"use it: --set model.pretrained={Path(result['run_dir']) / 'best.pth'}")
    return 0
