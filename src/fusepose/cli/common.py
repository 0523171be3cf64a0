"""Flags shared by the verbs that run a model, and the one place they become a Predictor.

Any model file the project writes runs with no size or architecture flags: a checkpoint or an
exported ``.onnx`` file describes itself (``fusepose inspect FILE``). The flags below only
override what the file says.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fusepose.errors import ConfigError
from fusepose.export.ir import is_exported, is_ir
from fusepose.geometry import GEOMETRY_MODES
from fusepose.inference.backends import BACKENDS, INT8_SCOPE_CHOICES, PRECISIONS
from fusepose.inference.options import BoxOptions, RunOptions, TestOptions
from fusepose.inference.predictor import Predictor

__all__ = ["add_inference_arguments", "add_model_arguments", "build_predictor", "model_source"]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``MODEL``, ``--weights`` / ``--random-weights`` and ``--device``."""
    parser.add_argument(
        "model", nargs="?",
        help="registered model name (see `fusepose models`), or a checkpoint / .onnx file; "
        "may be omitted when --weights or --onnx is given",
    )  # fmt: skip
    w = parser.add_mutually_exclusive_group()
    w.add_argument("--weights", help="checkpoint (fusepose, state dict or official) or .onnx file")
    w.add_argument(
        "--random-weights",
        action="store_true",
        help="run with random weights (smoke tests only: output is meaningless)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")


def add_inference_arguments(parser: argparse.ArgumentParser, *, boxes: bool = True) -> None:
    """Backend, test-time and output flags; each overrides the model file's stored value."""
    parser.add_argument(
        "--backend", choices=(*BACKENDS, "auto"), default=None,
        help="default: onnx for an .onnx file, else torch; openvino needs fusepose[openvino]; "
        "auto: the fastest path whose accuracy guard passes on this CPU (measured once, cached "
        "in ~/.cache/fusepose/auto)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=PRECISIONS, default=None,
        help="fp32 (default), bf16 (torch / openvino, CPUs with AVX512_BF16 or AMX) or int8 "
        "(onnx / openvino: static INT8, quantized on first use and cached)",
    )  # fmt: skip
    parser.add_argument(
        "--int8-scope",
        choices=INT8_SCOPE_CHOICES,
        default="auto",
        help="int8: the model's measured default scope, or the whole graph",
    )
    parser.add_argument("--calibration", nargs="+", metavar="IMAGE", default=None,
                        help="images for INT8 calibration and the auto accuracy guard "
                        "(default: the bundled sample photo)")  # fmt: skip
    parser.add_argument("--onnx", metavar="FILE",
                        help="exported model: .onnx (implies --backend onnx) or an OpenVINO IR "
                        ".xml (implies --backend openvino)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="flip test (default: as the model was validated)")  # fmt: skip
    parser.add_argument("--scales", type=float, nargs="+", default=None,
                        help="bottom-up multi-scale test, e.g. 0.5 1 2")  # fmt: skip
    parser.add_argument(
        "--input-size", type=int, nargs="+", default=None, metavar="SIZE",
        help="override the stored input size: one int (short side) or H W",
    )  # fmt: skip
    parser.add_argument("--resize", choices=GEOMETRY_MODES, default=None,
                        help="override the stored input geometry")  # fmt: skip
    parser.add_argument(
        "--compile", action="store_true",
        help="torch backend: torch.compile the network (first frame of each size compiles, "
        "minutes on CPU; pays off for video, webcam and fixed input sizes)",
    )  # fmt: skip
    parser.add_argument(
        "--score-thr",
        type=float,
        default=None,
        help="people scored below are not drawn or saved (default: stored, 0.1)",
    )
    parser.add_argument(
        "--kpt-thr",
        type=float,
        default=None,
        help="joints scored below are not drawn (default: stored, 0.3)",
    )
    if boxes:
        parser.add_argument("--det-file", help="COCO detection JSON with person boxes (top-down)")
        parser.add_argument("--detector", help="bottom-up model, checkpoint or .onnx giving "
                            "person boxes (top-down)")  # fmt: skip
        parser.add_argument("--detector-weights", help="weights of --detector")
        parser.add_argument(
            "--oks-nms", type=float, default=None, metavar="THR",
            help="top-down: OKS-NMS threshold over each image's people (default: stored, "
            "HRNet's 0.9; 0 = off)",
        )  # fmt: skip


def model_source(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(model, weights)`` for the Predictor from MODEL / --weights / --onnx."""
    model, weights = args.model, getattr(args, "weights", None)
    onnx = getattr(args, "onnx", None)
    if onnx:
        if weights:
            raise ConfigError("--onnx and --weights: give one model file")
        weights = onnx
    backend = getattr(args, "backend", None)
    file = onnx or weights or model
    if backend in ("onnx", "openvino") and not (file and is_exported(file)):
        raise ConfigError(f"--backend {backend} needs an .onnx file (MODEL, --weights or --onnx)")
    if backend in ("onnx", "torch") and file and is_ir(file):
        raise ConfigError(f"{file}: an OpenVINO IR runs on --backend openvino only, not {backend}")
    if not model and not weights:
        raise ConfigError("no model: give MODEL (a name or a file), --weights FILE or --onnx FILE")
    named = model and not Path(str(model)).suffix and not Path(str(model)).is_file()
    if weights is None and named and not args.random_weights:
        raise ConfigError("give --weights FILE, or --random-weights for a smoke test")
    return model, weights


def build_predictor(args: argparse.Namespace, **kwargs: Any) -> Predictor:
    """The Predictor of a verb's arguments; ``kwargs`` (option fields by name, e.g.
    ``backend="torch"``, ``flip=False``) override them."""
    model, weights = model_source(args)
    size = getattr(args, "input_size", None)
    if size is not None and len(size) not in (1, 2):
        raise ConfigError(f"--input-size {' '.join(map(str, size))}: give one int or H W")
    if size is not None and min(size) <= 0:
        raise ConfigError(f"--input-size {' '.join(map(str, size))}: sizes must be positive")
    run = RunOptions(
        device=args.device,
        backend=getattr(args, "backend", None),
        precision=getattr(args, "precision", None),
        int8_scope=getattr(args, "int8_scope", None) or "auto",
        num_threads=getattr(args, "threads", None),
        compile=bool(getattr(args, "compile", False)),
        calibration=getattr(args, "calibration", None),
    )
    test = TestOptions(
        flip=getattr(args, "flip", None),
        scales=tuple(args.scales) if getattr(args, "scales", None) else None,
        input_size=(size[0] if len(size) == 1 else tuple(size)) if size else None,
        resize=getattr(args, "resize", None),
        nms_thr=getattr(args, "oks_nms", None),
        score_thr=getattr(args, "score_thr", None),
        kpt_thr=getattr(args, "kpt_thr", None),
    )
    boxes = BoxOptions(
        detector=getattr(args, "detector", None),
        detector_weights=getattr(args, "detector_weights", None),
        det_file=getattr(args, "det_file", None),
    )
    random_weights = bool(getattr(args, "random_weights", False))
    # --backend auto logs its choice (AutoChoice.describe)
    return Predictor(model, weights, run=run, test=test, boxes=boxes,
                     allow_random_weights=random_weights, **kwargs)  # fmt: skip
