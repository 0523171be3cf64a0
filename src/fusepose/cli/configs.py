"""``fusepose configs``: the configs that ship inside the package, one line each.

Any of them can be given by name where a config is expected
(``fusepose train lmfnet_coco4-256_1xb4-150e``), or copied with ``--show NAME > my.yaml``.
"""

from __future__ import annotations

import argparse

from fusepose.engine.config import bundled_configs, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", metavar="NAME", help="print one config's YAML")


def _summary(text: str) -> str:
    """The first comment line of a config (its purpose)."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#") and line.strip("# "):
            return line.lstrip("# ").strip()
    return ""


def run(args: argparse.Namespace) -> int:
    if args.show:
        print(resolve_config(args.show).read_text(), end="")
        return 0
    configs = bundled_configs()
    width = max((len(n) for n in configs), default=0)
    for name, path in configs.items():
        print(f"{name:<{width}}  {_summary(path.read_text())}")
    return 0
