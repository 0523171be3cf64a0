"""``fusepose export [MODEL] --weights W --output FILE.onnx``: the network, self-describing.

Any checkpoint the project writes exports with no flags: the architecture and the input
geometry come from the file (a short-side model exports with dynamic H, W; a letterboxed or
top-down one at its fixed size, top-down with a dynamic batch). The ONNX metadata carries the
checkpoint's description (``fusepose inspect FILE.onnx``).

After export, ONNX Runtime and PyTorch run the same inputs (a real image warped as the model
expects, and one random input); the command fails (exit 1) when the largest difference is
above ``--tol`` relative to the outputs' magnitude, or when the outputs are constant (a check
that cannot fail proves nothing).

``--format openvino --output FILE.xml`` writes an OpenVINO IR (``FILE.xml`` + ``FILE.bin``,
converted from the ONNX export by OpenVINO, fp32 weights) with the same metadata in its runtime
info; the check then runs OpenVINO (f32) against PyTorch. ``--int8`` quantizes that IR with
NNCF's accuracy control on the checkpoint's validation set (``--data`` / ``--images``, default
the ones its validation recorded): the INT8 IR keeps in float what it must for the accuracy
guard (AP within 0.01 of fp32, median keypoint change <= 0.5 px, p90 <= 2 px) and records it
(``fusepose inspect FILE.xml``); exit 1 when the written file fails the guard.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from fusepose.cli.common import add_model_arguments, model_source
from fusepose.cli.inspect import int8_line
from fusepose.errors import CheckpointError, ConfigError, FusePoseError
from fusepose.export.ir import is_exported, is_ir
from fusepose.export.optimize import optimize_for_inference
from fusepose.export.package import compare_onnx, default_dynamic, export_model
from fusepose.inference.int8_export import quantize_ir
from fusepose.inference.predictor import Predictor

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--output", "-o", required=True,
                        help="file to write: FILE.onnx, or FILE.xml with --format openvino")
    parser.add_argument("--format", choices=("onnx", "openvino"), default="onnx",
                        help="onnx (default) or an OpenVINO IR (FILE.xml + FILE.bin)")
    q = parser.add_argument_group("INT8 (--format openvino --int8: NNCF with accuracy control)")
    q.add_argument("--int8", action="store_true",
                   help="quantize the IR; what stays in float is chosen by the guarded AP")
    q.add_argument("--data", metavar="ANN.json", default=None,
                   help="validation set for the AP (default: the checkpoint's own)")
    q.add_argument("--images", metavar="DIR", default=None, help="images of --data")
    q.add_argument("--calibration", nargs="+", metavar="IMAGE", default=None,
                   help="calibration images (default: the validation images)")
    q.add_argument("--synthetic", type=int, default=8, metavar="N",
                   help="rendered synthetic-people images added to the calibration (default 8)")
    q.add_argument("--no-accuracy-control", action="store_true",
                   help="plain nncf.quantize (the guard's verdict is still computed)")
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


def _check_format(args: argparse.Namespace) -> None:
    """One-line errors for output / format / INT8 flags that do not fit together."""
    suffix = Path(args.output).suffix.lower()
    if args.format == "openvino" and suffix != ".xml":
        raise ConfigError(f"--output {args.output}: --format openvino writes FILE.xml (+ .bin)")
    if args.format == "onnx" and suffix == ".xml":
        raise ConfigError(f"--output {args.output}: an .xml output needs --format openvino")
    int8_only = [f for f in ("data", "images", "calibration") if getattr(args, f)]
    if not args.int8 and (int8_only or args.no_accuracy_control):
        raise ConfigError(f"--{(int8_only or ['no-accuracy-control'])[0]}: applies to --int8 only")
    if args.int8 and args.format != "openvino":
        raise ConfigError("--int8: use --format openvino (ONNX INT8 files are made on first use "
                          "by --precision int8)")  # fmt: skip
    if args.synthetic < 0:
        raise ConfigError(f"--synthetic {args.synthetic}: must be >= 0")


def run(args: argparse.Namespace) -> int:
    model_arg, weights = model_source(args)
    source = str(weights or model_arg)
    if is_exported(source):
        what = "an OpenVINO IR" if is_ir(source) else "an ONNX file"
        raise ConfigError(f"{source}: already {what}")
    _check_format(args)
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
    out = Path(args.output)
    # --int8: the fp32 IR is checked, then quantized into --output; it is made in the system's
    # temporary folder, so a killed export leaves nothing beside the user's files
    with tempfile.TemporaryDirectory(prefix="fusepose-fp32-") as tmp:
        target = Path(tmp) / out.name if args.int8 else out
        try:
            export_model(to_export, target, hw, desc=desc, opset=args.opset, dynamic=dynamic)
        except FusePoseError:
            raise
        except Exception as e:  # noqa: BLE001 - exporter errors are many and private
            raise CheckpointError(f"{args.output}: {args.format} export of {desc.model} failed: "
                                  f"{e}") from None  # fmt: skip
        print(f"exported {desc.model} -> {target if not args.int8 else 'fp32 IR'} (input "
              f"1x3x{hw[0]}x{hw[1]}, {'dynamic H, W' if dynamic is True else 'fixed size'}, "
              f"opset {args.opset}; geometry {desc.geometry.describe()})")  # fmt: skip
        ok = args.no_check or _check(model, target, hw, pred, args)
        if not args.int8 or not ok:
            return 0 if ok else 1
        ann, images = _validation_set(args, desc)
        report = quantize_ir(target, out, ann, images, calibration=args.calibration,
                             num_synthetic=args.synthetic, threads=args.threads,
                             accuracy_control=not args.no_accuracy_control)  # fmt: skip
    print(f"wrote INT8 IR {out} (+ {out.with_suffix('.bin').name}): {int8_line(report)}")
    for name in report["float_ops"]:
        print(f"  kept in float: {name}")
    return 0 if report["guard"]["passed"] else 1


def _check(model, path: Path, hw, pred: Predictor, args: argparse.Namespace) -> bool:
    """The exported file against PyTorch on a real and a random input (printed)."""
    diff = compare_onnx(model, path, hw, num_threads=args.threads,
                        inputs=check_inputs(pred, hw))  # fmt: skip
    constant = diff["ref_std"] <= 1e-6 * max(diff["ref_max_abs"], 1e-12) or diff["ref_max_abs"] == 0
    ok = diff["max_rel"] <= args.tol and not constant
    verdict = "ok" if ok else ("FAIL: the outputs are constant" if constant else "FAIL")
    runtime = "openvino" if args.format == "openvino" else "onnxruntime"
    print(f"{runtime} vs pytorch: max abs diff {diff['max_abs']:.3e}, relative "
          f"{diff['max_rel']:.3e} of max |output| {diff['ref_max_abs']:.3e} ({verdict}, "
          f"tol {args.tol:g})")  # fmt: skip
    return ok


def _validation_set(args: argparse.Namespace, desc) -> tuple[Path, Path]:
    """--data / --images, else the annotation file and images the checkpoint validated on."""
    val = desc.val or {}
    ann, images = args.data or val.get("ann"), args.images or val.get("images")
    if not ann or not images:
        raise ConfigError("--int8: give the validation set, --data ANN.json --images DIR (the "
                          "model file records none)")  # fmt: skip
    for flag, value, ok in (("--data", ann, Path(ann).is_file()),
                            ("--images", images, Path(images).is_dir())):  # fmt: skip
        if not ok:
            raise ConfigError(f"{flag} {value}: not found (the validation set of --int8)")
    return Path(ann), Path(images)
