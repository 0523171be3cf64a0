"""``fusepose export [MODEL] --weights W --output FILE.onnx``: the network, self-describing.

Any checkpoint the project writes exports with no flags: the architecture and the input
geometry come from the file (a short-side model exports with dynamic H, W; a letterboxed or
top-down one at its fixed size, top-down with a dynamic batch). The ONNX metadata carries the
checkpoint's description (``fusepose inspect FILE.onnx``).

After export, ONNX Runtime and PyTorch run the same inputs (a real image warped as the model
expects, and one random input); the command fails (exit 1) when the largest difference is
above ``--tol`` relative to the outputs' magnitude, or when the outputs are constant (a check
that cannot fail proves nothing).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from fusepose.cli.common import add_model_arguments, model_source
from fusepose.errors import CheckpointError, ConfigError, FusePoseError
from fusepose.export.optimize import optimize_for_inference
from fusepose.export.package import compare_onnx, default_dynamic, export_model
from fusepose.inference.predictor import Predictor

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--output", "-o", required=True, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    parser.add_argument(
        "--input", type=int, nargs=2, metavar=("H", "W"), default=None,
        help="traced input size (default: the model file's input size)",
    )  # fmt: skip
    parser.add_argument(
        "--tol", type=float, default=1e-3,
        help="largest ONNX Runtime vs PyTorch difference allowed, relative to max |output|",
    )  # fmt: skip
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime check")
    parser.add_argument("--no-optimize", action="store_true",
                        help="export the module as is (default: BN folded, fast attention ops)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch and ORT)")


def check_inputs(pred: Predictor, hw: tuple[int, int]) -> list[np.ndarray]:
    """Network inputs for the check: the bundled sample photo warped as the model expects
    (real pixels give real activations; when its input has the traced size) and one random
    normal input."""
    inputs = [np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)]
    real = pred.sample_input()
    if tuple(real.shape[2:]) == tuple(hw):
        inputs.insert(0, real)
    return inputs


def run(args: argparse.Namespace) -> int:
    model_arg, weights = model_source(args)
    if str(weights or model_arg).lower().endswith(".onnx"):
        raise ConfigError(f"{weights or model_arg}: already an ONNX file")
    pred = Predictor(model_arg, weights=weights, num_threads=args.threads,
                     allow_random_weights=args.random_weights, optimize=False)  # fmt: skip
    model, desc = pred.model, pred.description
    hw = tuple(args.input) if args.input else desc.geometry.size
    if min(hw) <= 0:
        raise ConfigError(f"--input {hw[0]} {hw[1]}: sizes must be positive")
    dynamic = True if args.dynamic else default_dynamic(desc)
    to_export = model
    if not args.no_optimize:
        to_export = optimize_for_inference(model)
        to_export.info = model.info
    try:
        export_model(to_export, args.output, hw, desc=desc, opset=args.opset, dynamic=dynamic)
    except FusePoseError:
        raise
    except Exception as e:  # noqa: BLE001 - exporter errors are many and private
        raise CheckpointError(f"{args.output}: ONNX export of {desc.model} failed: {e}") from None
    print(f"exported {desc.model} -> {args.output} (input 1x3x{hw[0]}x{hw[1]}, "
          f"{'dynamic H, W' if dynamic is True else 'fixed size'}, opset {args.opset}; "
          f"geometry {desc.geometry.describe()})")  # fmt: skip
    if args.no_check:
        return 0
    diff = compare_onnx(model, args.output, hw, num_threads=args.threads,
                        inputs=check_inputs(pred, hw))  # fmt: skip
    constant = diff["ref_std"] <= 1e-6 * max(diff["ref_max_abs"], 1e-12) or diff["ref_max_abs"] == 0
    ok = diff["max_rel"] <= args.tol and not constant
    verdict = "ok" if ok else ("FAIL: the outputs are constant" if constant else "FAIL")
    print(f"onnxruntime vs pytorch: max abs diff {diff['max_abs']:.3e}, relative "
          f"{diff['max_rel']:.3e} of max |output| {diff['ref_max_abs']:.3e} ({verdict}, "
          f"tol {args.tol:g})")  # fmt: skip
    return 0 if ok else 1
