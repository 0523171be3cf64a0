"""``fusepose flops MODEL [--input H W] [--json FILE]``: params and multiply-accumulates."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusepose.errors import ConfigError
from fusepose.files import write_json_atomic

CONVENTIONS = {
    "gmacs": "FlopCounterMode FLOPs/2: convs (transposed convs on their input grid) + matmuls",
    "gmacs_repo": "HRNet-repo convention: conv weights x output HxW, transposed conv on its "
    "OUTPUT grid, Linear in x out; BN/act/pool/element-wise ignored",
    "gmacs_fvcore": "fvcore FlopCountAnalysis total (one fused multiply-add = one)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="registered model name (see `fusepose models`)")
    parser.add_argument(
        "--input", nargs=2, type=int, metavar=("H", "W"), help="input size (default: the paper's)"
    )
    parser.add_argument("--num-keypoints", type=int, help="override K")
    parser.add_argument("--no-fvcore", action="store_true", help="skip the fvcore column")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the counts as JSON")


def run(args: argparse.Namespace) -> int:
    from fusepose.benchmark.complexity import measure_registered
    from fusepose.models.registry import get_model_info

    try:
        info = get_model_info(args.model)
    except KeyError as e:
        raise ConfigError(f"MODEL: {e.args[0]}") from None
    overrides = {} if args.num_keypoints is None else {"num_keypoints": args.num_keypoints}
    size = tuple(args.input) if args.input else tuple(info.input_size)
    if min(size) < 1:
        raise ConfigError(f"--input: H and W must be positive, got {size}")
    c = measure_registered(args.model, [size], fvcore=not args.no_fvcore, **overrides)[size]
    d = c.to_dict()
    k = overrides.get("num_keypoints", info.num_keypoints)
    print(f"model    {args.model} ({info.kind}, K={k}) "
          f"input {size[0]}x{size[1]}, batch 1, eval, one forward")  # fmt: skip
    print(f"params   {c.params / 1e6:.3f} M ({c.params:,})")
    for key in ("gmacs", "gmacs_repo", "gmacs_fvcore"):
        value = d[key]
        shown = "n/a (fvcore off or not installed)" if value is None else f"{value:.3f} G"
        print(f"{key:<12} {shown:<10} {CONVENTIONS[key]}")
    paper = info.paper
    if paper.get("params_m") is not None or paper.get("gflops") is not None:
        print(f"paper    {paper.get('params_m', '-')} M params, {paper.get('gflops', '-')} "
              f"GFLOPs (= GMACs) at {info.input_size[0]}x{info.input_size[1]}")  # fmt: skip
    if args.json:
        payload = {"model": args.model, "kind": info.kind, **d, "conventions": CONVENTIONS,
                   "paper": paper}  # fmt: skip
        try:
            write_json_atomic(args.json, payload, indent=2)
        except OSError as e:
            raise ConfigError(f"--json {args.json}: cannot write: {e.strerror or e}") from None
    return 0
