"""``fusepose bench [MODEL]``: latency split into preprocess / network / decode (milliseconds).

Runs the real Predictor (same code as ``fusepose predict``) on one multi-person image
(default: the COCO sample 000000196141.jpg of the shared data if present, else the bundled
sample photo). MODEL is a registered name (random weights unless ``--weights``), a checkpoint
or an ``.onnx`` file; a model file runs with its own input geometry. Random weights are He
initialised with BatchNorm statistics calibrated on a sample image (outputs that vary, so the
decoder has peaks to work on); ``--gt-outputs`` decodes maps rendered from the image's
ground-truth people instead (needs the COCO JSON beside the image). Top-down models use the
GT person boxes of the image (else one whole-image box).

``--backend onnx`` runs ONNX Runtime on ``--onnx FILE``, or on an export of the model made
now (cached beside the run in ``--workdir``). ``--compare MODEL2`` benchmarks a second model in
the same process and backend, interleaved run by run, at the first model's input size, and
prints the ratio of total times; ``--json`` writes per model the medians ``preprocess_ms
network_ms decode_ms total_ms`` (plus minima) and ``speedup`` (= total of MODEL2 / total of
MODEL: how many times faster MODEL is).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from fusepose.assets import sample_image
from fusepose.benchmark.latency import benchmark, default_image, gt_people
from fusepose.cli.common import add_inference_arguments, add_model_arguments, build_predictor
from fusepose.data.io import read_image
from fusepose.errors import ConfigError
from fusepose.export.cache import export_cached
from fusepose.export.ir import is_exported
from fusepose.export.package import default_dynamic
from fusepose.files import write_json_atomic
from fusepose.inference.gt_outputs import bottom_up_gt_hook
from fusepose.inference.predictor import Predictor

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_inference_arguments(parser, boxes=False)
    parser.add_argument("--input", type=int, nargs="+", metavar="SIZE", default=None,
                        help="the same as --input-size")  # fmt: skip
    parser.add_argument("--image", help="benchmark image (default: COCO 000000196141.jpg)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compare", metavar="MODEL2", help="second model, interleaved")
    parser.add_argument("--compare-onnx", metavar="FILE",
                        help="MODEL2 as ONNX (with --backend onnx; default: an export of MODEL2 "
                        "at the first model's input size)")  # fmt: skip
    parser.add_argument(
        "--gt-outputs",
        action="store_true",
        help="bottom-up decode on GT-rendered maps (realistic peak count)",
    )
    parser.add_argument("--workdir", default=None,
                        help="ONNX export cache (default ~/.cache/fusepose/bench)")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="write the summary here")


def _onnx_of(pred: Predictor, name: str, workdir: Path) -> Path:
    """A cached optimized ONNX export of a torch predictor's model, with its description."""
    desc = pred.description
    return export_cached(pred.model, name, desc.geometry.size, workdir, "bench", desc=desc,
                         dynamic=default_dynamic(desc))  # fmt: skip


def _tag(pred: Predictor) -> str:
    """`` (onnx)``, `` (openvino int8)``, ``""`` for torch fp32."""
    if pred.backend == "torch" and pred.precision == "fp32":
        return ""
    return f" ({pred.backend}{'' if pred.precision == 'fp32' else ' ' + pred.precision})"


def run(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.warmup < 0:
        raise ConfigError("--runs must be >= 1 and --warmup >= 0")
    if args.input and not args.input_size:
        args.input_size = args.input
    json_out = Path(args.json) if args.json else None
    path = Path(args.image) if args.image else (default_image() or sample_image())
    image = read_image(path)
    gt = gt_people(path)
    workdir = Path(args.workdir) if args.workdir else Path.home() / ".cache" / "fusepose" / "bench"
    if not args.onnx and not args.weights and args.model and is_exported(args.model):
        args.onnx, args.model = args.model, None  # an exported file runs as it is, like --onnx
    want_onnx = args.backend in ("onnx", "openvino") or bool(args.onnx)
    args.random_weights = args.random_weights or not (args.weights or args.onnx)
    file_options = dict(backend=args.backend if args.backend != "auto" else None,
                        precision=args.precision, int8_scope=args.int8_scope,
                        calibration=args.calibration, num_threads=args.threads, flip=args.flip,
                        scales=args.scales)  # fmt: skip
    if args.backend == "auto" or args.onnx:
        first = build_predictor(args)
    else:
        # the module first (random or given weights), exported when a file backend is asked
        torch_args = argparse.Namespace(**{**vars(args), "backend": "torch"})
        first = build_predictor(torch_args, precision=None if want_onnx else args.precision)
        if want_onnx:
            onnx = _onnx_of(first, first.model_name, workdir)
            logger.info("--backend %s: exported %s", args.backend, onnx)
            first = Predictor(onnx, **file_options)
    preds = [(first.model_name + _tag(first), first)]
    if args.compare:
        second = Predictor(args.compare, allow_random_weights=True, num_threads=args.threads,
                           flip=args.flip, input_size=first.geometry.size,
                           resize=None if first.family.needs_boxes else first.geometry.mode)  # fmt: skip
        if want_onnx:
            onnx2 = args.compare_onnx or _onnx_of(second, args.compare, workdir)
            second = Predictor(onnx2, **file_options)
        preds.append((args.compare + _tag(second), second))
    if len({label for label, _ in preds}) < len(preds):
        preds = [(f"{label}[{i}]", p) for i, (label, p) in enumerate(preds)]
    h, w = image.shape[:2]
    boxes = gt[1] if gt is not None else np.array([[0.0, 0.0, w - 1.0, h - 1.0]])
    if args.gt_outputs:
        if gt is None:
            raise ConfigError(f"--gt-outputs: no COCO ground truth found beside {path}")
        for _label, p in preds:
            if p.family.tags:
                p.output_hook = bottom_up_gt_hook(p, gt[0])
    results = benchmark(preds, image, boxes=boxes, runs=args.runs, warmup=args.warmup)
    summary: dict = {
        "image": path.name,
        "image_size": [h, w],
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "flip": bool(first.flip),
        "gt_outputs": bool(args.gt_outputs),
        "weights": "given" if (args.weights or args.onnx) else "random (He init, BN calibrated)",
        "auto": first.choice.report if first.choice is not None else None,
        "models": {},
    }
    print(f"{'model':<24} {'pre ms':>8} {'net ms':>9} {'dec ms':>8} {'total ms':>9} "
          f"{'min ms':>9} people")  # fmt: skip
    for (_label, p), res in zip(preds, results, strict=True):
        s = res.summary()
        s.update(backend=p.backend, precision=p.precision, kind=p.kind, input_size=list(p.input_size),
                 resize=p.geometry.mode)  # fmt: skip
        summary["models"][res.label] = s
        print(
            f"{res.label:<24} {s['preprocess_ms']:8.1f} {s['network_ms']:9.1f} "
            f"{s['decode_ms']:8.1f} {s['total_ms']:9.1f} {s['total_min_ms']:9.1f} {res.people}"
        )
    if len(results) == 2:
        speedup = results[1].median("total_ms") / results[0].median("total_ms")
        summary["speedup"] = round(speedup, 4)
        print(f"speedup ({results[0].label} vs {results[1].label}, median total): {speedup:.2f}x")
    if json_out is not None:
        write_json_atomic(json_out, summary, indent=2)
    return 0
