"""``fusepose train CONFIG [--set key=value ...] [--resume auto|PATH] [--out DIR] [--overwrite]``.

Under ``torchrun --nproc_per_node N -m fusepose.cli.main train ...`` every process runs this;
rank 0 alone logs and writes the run folder.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from fusepose.errors import ConfigError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=2e-3 --set train.epochs=10",
    )  # fmt: skip
    parser.add_argument(
        "--resume", default=None, metavar="auto|PATH",
        help="continue a run: 'auto' = OUT/last.pth if it exists, or a checkpoint path",
    )  # fmt: skip
    parser.add_argument(
        "--out", default=None, metavar="DIR",
        help="run folder (default: runtime.out_dir / config name)",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true",
        help="start anew in a run folder that holds an earlier run's checkpoints (they are "
        "deleted); without it such a folder needs --resume",
    )  # fmt: skip


def check_run_folder(args: argparse.Namespace, cfg: Any) -> Path:
    """The run folder; a folder holding an earlier run's checkpoints is refused unless the
    command resumes it or says ``--overwrite`` (then they are deleted first, so no stale
    ``best.pth`` outlives the new run's start)."""
    from fusepose.engine.config import run_folder

    out = run_folder(cfg, args.out, args.config)
    done = [out / n for n in ("last.pth", "best.pth") if (out / n).is_file()]
    if done and not args.resume:
        if not args.overwrite:
            raise ConfigError(
                f"--out {out}: holds an earlier run's {done[0].name}; continue it with --resume "
                "auto, or start anew with --overwrite (deletes its checkpoints)"
            )
        for path in done:
            log.warning("--overwrite: deleting %s", path)
            path.unlink(missing_ok=True)  # another rank of the same command may be first
    return out


def run(args: argparse.Namespace) -> int:
    from fusepose.engine.config import load_config
    from fusepose.engine.trainer import train

    cfg = load_config(args.config, args.overrides)
    check_run_folder(args, cfg)
    result = train(cfg, resume=args.resume, run_dir=args.out, config_path=Path(args.config))
    if result.get("is_main", True):
        best = result["best_metric"]
        best_s = f", best {cfg.eval.metric} {best:.4f}" if best > float("-inf") else ""
        print(f"run folder: {result['run_dir']} (last.pth{', best.pth' if best_s else ''}){best_s}")
    return 0
