"""``fusepose export MODEL --weights W --output FILE.onnx``: the network only, self-describing.

The ONNX ``metadata_props`` document the outputs (names, shapes, meaning), the codec and its
parameters, the model name, the number of keypoints and the input normalisation
(see ``fusepose.export.metadata``). After export, ONNX Runtime and PyTorch run one random
input and the max abs difference is printed; above ``--tol`` the command fails (exit 1).
"""

from __future__ import annotations

import argparse
import logging

from fusepose.cli.predict import add_model_arguments
from fusepose.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--output", "-o", required=True, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    parser.add_argument(
        "--input",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="traced input size (default: the model's paper input size)",
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=1e-3,
        help="max abs difference allowed between ONNX Runtime and PyTorch",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime check")
    parser.add_argument("--no-optimize", action="store_true",
                        help="export the module as is (default: BN folded, fast attention ops)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch and ORT)")


def load_model(args: argparse.Namespace):
    """Build ``args.model`` with ``--weights`` (or random weights, loudly)."""
    from fusepose.registry import create_model

    if not args.model:
        raise ConfigError("MODEL is required")
    if not (args.weights or args.random_weights):
        raise ConfigError("give --weights FILE, or --random-weights for a smoke test")
    try:
        model = create_model(args.model)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    if args.weights:
        from fusepose.engine.checkpoint import load_weights

        load_weights(model, args.weights)
    else:
        logger.warning("MODEL %s HAS RANDOM WEIGHTS: its outputs are meaningless", args.model)
    return model.eval()


def run(args: argparse.Namespace) -> int:
    from fusepose.export.package import compare_onnx, default_export_size, export_model

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = load_model(args)
    hw = tuple(args.input) if args.input else default_export_size(model)
    try:
        to_export = model
        if not args.no_optimize:
            from fusepose.export.optimize import optimize_for_inference

            to_export = optimize_for_inference(model)
        export_model(to_export, args.output, hw, opset=args.opset, dynamic=args.dynamic)
    except ValueError as e:
        raise ConfigError(f"--input {hw}: {e}") from None
    except Exception as e:  # noqa: BLE001 - exporter errors are many and private
        raise CheckpointError(f"{args.output}: ONNX export of {args.model} failed: {e}") from None
    print(f"exported {args.model} -> {args.output} (input 1x3x{hw[0]}x{hw[1]}"
          f"{', dynamic' if args.dynamic else ''}, opset {args.opset})")  # fmt: skip
    if args.no_check:
        return 0
    diff = compare_onnx(model, args.output, hw, num_threads=args.threads)
    ok = diff <= args.tol
    print(f"onnxruntime vs pytorch: max abs diff {diff:.3e} ({'ok' if ok else 'FAIL'}, "
          f"tol {args.tol:g})")  # fmt: skip
    return 0 if ok else 1
