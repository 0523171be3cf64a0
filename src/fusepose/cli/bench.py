"""``fusepose bench MODEL``: latency split into preprocess / network / decode (milliseconds).

Runs the real Predictor (same code as ``fusepose predict``) on one multi-person image
(default: the COCO sample 000000196141.jpg of the shared data if present, else a synthetic
image). Weights default to random, which is fine for the network time; for a realistic
bottom-up decode time use ``--gt-outputs`` (decode maps rendered from the image's ground-truth
people, which needs the COCO JSON beside the image) or real ``--weights``. Top-down models use
the GT person boxes of the image (else one whole-image box).

``--compare MODEL2`` benchmarks a second model in the same process, interleaved run by run,
and prints the ratio of total times; ``--json`` writes per model the medians
``preprocess_ms network_ms decode_ms total_ms`` (plus minima) and ``speedup``
(= total of MODEL2 / total of MODEL: how many times faster MODEL is).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from fusepose.errors import ConfigError

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="registered model name")
    parser.add_argument("--weights", help="checkpoint (default: random weights)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--onnx", metavar="FILE", help="exported model for --backend onnx")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch and ORT)")
    parser.add_argument(
        "--input",
        type=int,
        nargs="+",
        metavar="SIZE",
        default=None,
        help="bottom-up: short side or H W; top-down: H W",
    )
    parser.add_argument("--image", help="benchmark image (default: COCO 000000196141.jpg)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="torch backend: torch.compile the network (compiled during warmup)")
    parser.add_argument("--compare", metavar="MODEL2", help="second model, interleaved")
    parser.add_argument("--compare-onnx", metavar="FILE",
                        help="MODEL2 as ONNX (with --backend onnx; default: export MODEL2 with "
                        "random weights at the first model's input size, cached beside --onnx)")
    parser.add_argument(
        "--gt-outputs",
        action="store_true",
        help="bottom-up decode on GT-rendered maps (realistic peak count)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", metavar="FILE", help="write the summary here")


def _predictor(name: str | None, args: argparse.Namespace, onnx: str | None):
    from fusepose.inference.predictor import Predictor

    size = None
    if args.input:
        size = args.input[0] if len(args.input) == 1 else tuple(args.input)
    return Predictor(
        name,
        weights=args.weights if onnx is None and name == args.model else None,
        device=args.device,
        backend="onnx" if onnx else "torch",
        onnx_path=onnx,
        flip=args.flip,
        input_size=size,
        num_threads=args.threads,
        allow_random_weights=True,
        compile=bool(args.compile) and onnx is None,
    )


def _export_compare(name: str, first, onnx_path: str) -> str:
    """Optimized random-weight export of ``name`` at ``first``'s fixed input size (cached)."""
    import torch

    from fusepose.export.optimize import optimize_for_inference
    from fusepose.export.package import export_model
    from fusepose.registry import create_model

    hw = first.runner.fixed_hw if first.runner is not None else None
    out = Path(onnx_path).with_name(f"{name}_{hw[0]}x{hw[1]}_random_opt.onnx" if hw else
                                    f"{name}_random_opt.onnx")  # fmt: skip
    if not out.is_file():
        torch.manual_seed(0)
        try:
            model = create_model(name).eval()
        except KeyError as e:
            raise ConfigError(str(e.args[0])) from None
        export_model(optimize_for_inference(model), out, hw, dynamic=hw is None)
    return str(out)


def run(args: argparse.Namespace) -> int:
    from fusepose.benchmark.latency import benchmark, default_image, gt_people, synthetic_image
    from fusepose.inference.gt_outputs import bottom_up_gt_hook
    from fusepose.inference.sources import read_image

    if args.backend == "onnx" and not args.onnx:
        raise ConfigError("--backend onnx needs --onnx FILE")
    if args.backend == "torch" and not args.model:
        raise ConfigError("MODEL is required")
    if args.runs < 1 or args.warmup < 0:
        raise ConfigError("--runs must be >= 1 and --warmup >= 0")
    path = Path(args.image) if args.image else default_image()
    image = read_image(path) if path is not None else synthetic_image()
    gt = gt_people(path)
    if path is None:
        logger.warning("no sample image found: using a synthetic image (few or no people)")

    first = _predictor(args.model, args, args.onnx)
    preds = [(first.model_name + (" (onnx)" if args.onnx else ""), first)]
    if args.compare:
        onnx2 = None
        if args.backend == "onnx":  # same runtime for both rows
            onnx2 = args.compare_onnx or _export_compare(args.compare, first, args.onnx)
        preds.append((args.compare + (" (onnx)" if onnx2 else ""),
                      _predictor(args.compare, args, onnx2)))
    if len({label for label, _ in preds}) < len(preds):
        preds = [(f"{label}[{i}]", p) for i, (label, p) in enumerate(preds)]
    h, w = image.shape[:2]
    boxes = gt[1] if gt is not None else np.array([[0.0, 0.0, w - 1.0, h - 1.0]])
    if args.gt_outputs:
        if gt is None:
            raise ConfigError(f"--gt-outputs: no COCO ground truth found beside {path}")
        for _label, p in preds:
            if p.kind == "bottom_up":
                p.output_hook = bottom_up_gt_hook(p, gt[0])

    results = benchmark(preds, image, boxes=boxes, runs=args.runs, warmup=args.warmup)
    summary: dict = {
        "image": str(path) if path else "synthetic",
        "image_size": [h, w],
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "flip": args.flip,
        "gt_outputs": bool(args.gt_outputs),
        "models": {},
    }
    print(f"{'model':<24} {'pre ms':>8} {'net ms':>9} {'dec ms':>8} {'total ms':>9} "
          f"{'min ms':>9} people")  # fmt: skip
    for (_label, p), res in zip(preds, results, strict=True):
        s = res.summary()
        s.update(backend=p.backend, kind=p.kind, input_size=p.input_size)
        summary["models"][res.label] = s
        print(
            f"{res.label:<24} {s['preprocess_ms']:8.1f} {s['network_ms']:9.1f} "
            f"{s['decode_ms']:8.1f} {s['total_ms']:9.1f} {s['total_min_ms']:9.1f} {res.people}"
        )
    if len(results) == 2:
        speedup = results[1].median("total_ms") / results[0].median("total_ms")
        summary["speedup"] = round(speedup, 4)
        print(f"speedup ({results[0].label} vs {results[1].label}, median total): {speedup:.2f}x")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2))
    return 0
