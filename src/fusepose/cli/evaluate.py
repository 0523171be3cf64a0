"""``fusepose eval``: COCO OKS AP/AR or MPII PCKh of a results file.

Results mode (no model): ``fusepose eval --gt GT --results RES [--report OUT.json]``. The metric
follows the GT extension (``.json`` -> coco, ``.mat`` -> pckh) unless ``--metric`` is given.

Model mode (COCO-format data only): ``fusepose eval --model NAME --weights W --data ANN.json
--images DIR [--flip] [--scales ...] [--det-file DET | --gt-boxes]`` (or ``--weights W`` alone,
or ``--onnx FILE``) runs the model on every image of ``ANN.json`` through
:func:`fusepose.inference.dataset.evaluate_dataset`, the loop training validation uses, with
the model file's own geometry and test settings: a checkpoint's recorded ``val_AP`` is
reproduced with no other flag. Top-down models get HRNet's rescoring and OKS-NMS (in the
pipeline). ``fusepose.evaluation`` itself never imports models; only this verb's model mode does.

Under ``torchrun --nproc-per-node N -m fusepose.cli.main eval ...`` every rank predicts its
share of the images (rank r: images r, r + N, ...), rank 0 gathers them in the one-process
order, scores them once and writes ``--report`` / ``--save-results``; the report's
``world_size`` and ``images_per_rank`` say how the images were split, ``predict_s`` how long
the prediction took. ``--workers N`` threads read and prepare images ahead of the network.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from fusepose.errors import ConfigError
from fusepose.files import write_json_atomic

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", help="ground truth: COCO-format .json or MPII gt .mat")
    parser.add_argument(
        "--results",
        help="results file: COCO keypoint results .json, or MPII predictions .mat/.h5/.npy",
    )
    parser.add_argument(
        "--metric", choices=("coco", "pckh"), help="default: from the --gt extension"
    )
    parser.add_argument(
        "--backend",
        choices=("pycocotools", "faster"),
        help="COCO evaluator (default: pycocotools; faster for --crowd)",
    )
    parser.add_argument(
        "--crowd",
        action="store_true",
        help="CrowdPose protocol: faster-coco-eval keypoints_crowd (easy/medium/hard), "
        "object scale 0.53 x box area",
    )
    parser.add_argument(
        "--no-area",
        action="store_true",
        help="COCO: OKS scale from 0.53 x GT box area instead of 'area' (faster backend)",
    )
    parser.add_argument(
        "--no-per-keypoint", action="store_true", help="COCO: skip the per-keypoint summary"
    )
    parser.add_argument(
        "--zero-based",
        action="store_true",
        help="PCKh: predictions are 0-based (1 is added before scoring); default 1-based",
    )
    parser.add_argument("--report", type=Path, help="write the metrics as JSON here")
    from fusepose.inference.backends import BACKENDS, INT8_SCOPE_CHOICES, PRECISIONS

    g = parser.add_argument_group("model mode (run a model, then score it)")
    g.add_argument("--model", help="registered model name, or a checkpoint / .onnx file")
    g.add_argument("--weights", help="checkpoint of that model (may stand alone)")
    g.add_argument("--onnx", help="exported .onnx file (the model name is read from it)")
    g.add_argument("--data", help="COCO-format annotation file: images to run and the GT")
    g.add_argument("--images", type=Path, help="folder holding the --data images")
    g.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test (default: as the model was validated)")  # fmt: skip
    g.add_argument("--scales", type=float, nargs="+", default=None, help="bottom-up test scales")
    g.add_argument("--input-size", type=int, nargs="+", default=None,
                   help="override the stored input size (one int or H W)")  # fmt: skip
    g.add_argument("--det-file", help="top-down: COCO person detections (bbox, score)")
    g.add_argument(
        "--gt-boxes", action="store_true", help="top-down: use the GT person boxes of --data"
    )
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    g.add_argument("--threads", type=int, default=None, help="CPU threads")
    # --backend names the COCO evaluator here; the inference backend is --runtime
    g.add_argument("--runtime", choices=(*BACKENDS, "auto"), default=None,
                   help="inference backend (as `fusepose predict --backend`)")  # fmt: skip
    g.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="fp32, bf16 or int8 (as `fusepose predict --precision`)")  # fmt: skip
    g.add_argument("--int8-scope", choices=INT8_SCOPE_CHOICES, default="auto")
    g.add_argument("--calibration", nargs="+", metavar="IMAGE", default=None,
                   help="INT8 calibration / auto guard images")  # fmt: skip
    g.add_argument("--save-results", type=Path, help="also write the model's COCO results")
    g.add_argument("--workers", type=int, default=0, metavar="N",
                   help="threads that read and prepare images ahead of the network (default 0)")  # fmt: skip


def _metric(args: argparse.Namespace) -> str:
    if args.metric:
        return args.metric
    suffix = Path(args.gt).suffix.lower()
    if suffix == ".json":
        return "coco"
    if suffix == ".mat":
        return "pckh"
    raise ConfigError(
        f"--gt {args.gt}: cannot tell the metric from extension {suffix!r} "
        "(.json -> coco, .mat -> pckh); pass --metric"
    )


def _run_coco(args: argparse.Namespace) -> dict[str, Any]:
    from fusepose.evaluation.coco import COCO_KEYS, CROWD_KEYS, evaluate_coco, format_per_keypoint

    backend = args.backend or ("faster" if args.crowd or args.no_area else "pycocotools")
    res = evaluate_coco(
        args.gt,
        args.results,
        backend=backend,
        iou_type="keypoints_crowd" if args.crowd else "keypoints",
        use_area=not (args.crowd or args.no_area),
        per_keypoint=not args.no_per_keypoint,
        sigmas=getattr(args, "sigmas", None),
    )
    keys = CROWD_KEYS if args.crowd else COCO_KEYS
    print(res["summary"].rstrip("\n"))
    print()
    print("  ".join(f"{k:>9}" for k in keys))
    print("  ".join(f"{res[k]:>9.4f}" for k in keys))
    if res["per_keypoint"] is not None:
        print()
        print(format_per_keypoint(res["per_keypoint"]))
    report = {k: res[k] for k in keys}
    report.update(
        metric="coco",
        backend=res["backend"],
        iou_type=res["iou_type"],
        n_results=res["n_results"],
        per_keypoint=res["per_keypoint"],
        gt=str(args.gt),
        results=str(args.results) if not isinstance(args.results, list) else "<model>",
    )
    if getattr(args, "model_report", None):
        report.update(args.model_report)
    return report


def _run_pckh(args: argparse.Namespace) -> dict[str, Any]:
    from fusepose.evaluation.pckh import (
        PCKH_KEYS,
        evaluate_pckh,
        format_pckh,
        load_mpii_gt,
        load_pckh_predictions,
    )

    gt = load_mpii_gt(args.gt)
    preds = load_pckh_predictions(args.results, gt)
    res = evaluate_pckh(preds, gt, one_based=not args.zero_based)
    print(f"PCKh@0.5 (percent) on {res['n_people']} people; Mean@0.1 = PCKh@0.1 count-weighted")
    print(format_pckh(res))
    report = {k: res[k] for k in PCKH_KEYS}
    report.update(
        metric="pckh",
        n_results=res["n_people"],
        per_joint=dict(zip(res["joint_names"], res["per_joint"], strict=True)),
        **{"per_joint@0.1": dict(zip(res["joint_names"], res["per_joint@0.1"], strict=True))},
        joint_counts=dict(zip(res["joint_names"], res["joint_counts"], strict=True)),
        gt=str(args.gt),
        results=str(args.results),
    )
    return report


def _check_model_args(args: argparse.Namespace) -> None:
    """Model mode's flags and files, checked on every rank before any work."""
    from fusepose.evaluation.results import load_gt
    from fusepose.inference.network import resolve_device

    if not args.data or not args.images:
        raise ConfigError("model mode needs --data ANN.json and --images DIR")
    if Path(args.data).suffix.lower() != ".json":
        raise ConfigError(f"--data {args.data}: model mode takes a COCO-format .json")
    if args.det_file and args.gt_boxes:
        raise ConfigError("--det-file and --gt-boxes: pick one source of person boxes")
    if args.workers < 0:
        raise ConfigError(f"--workers {args.workers}: give 0 (no reader threads) or more")
    load_gt(args.data)
    if not Path(args.images).is_dir():
        raise ConfigError(f"--images {args.images}: not a folder")
    resolve_device(args.device)


def _run_model(args: argparse.Namespace) -> list[dict]:
    """Run the model on every image of --data (sharded over the ranks under torchrun); COCO
    results in original-image pixels, in the one-process order, on every rank."""
    from fusepose.cli.common import build_predictor
    from fusepose.distributed import agree, env_rank
    from fusepose.inference.dataset import run_dataset, scoring_sigmas
    from fusepose.progress import Progress

    args.random_weights = False
    predictor, error = None, None
    try:
        predictor = build_predictor(argparse.Namespace(**{**vars(args), "backend": args.runtime}))
        if predictor.family.needs_boxes and not (args.det_file or args.gt_boxes):
            raise ConfigError(
                f"{predictor.model_name} is top-down: give --det-file DET or --gt-boxes"
            )
    except Exception as e:  # noqa: BLE001 - every rank raises it (agree)
        error = e
    agree(error)
    assert predictor is not None
    start = time.perf_counter()
    with Progress(unit="img", desc="eval", enabled=env_rank() == 0) as bar:

        def progress(done: int, total: int) -> None:
            bar.set_total(total)
            bar.update(done - bar.n)

        run = run_dataset(predictor, args.data, args.images, boxes="gt" if args.gt_boxes else "auto",
                          progress=progress, workers=args.workers)  # fmt: skip
    seconds = time.perf_counter() - start  # every rank's share predicted and gathered
    logger.info("%d images in %.1f s (%.2f images/s)", sum(run.images_per_rank), seconds,
                sum(run.images_per_rank) / max(seconds, 1e-9))  # fmt: skip
    desc = predictor.description
    args.sigmas = scoring_sigmas(desc.skeleton)
    args.model_report = {
        "model": desc.model,
        "weights": str(args.weights or args.onnx or args.model),
        "backend": predictor.backend,
        "flip": desc.test.flip,
        "input_size": list(desc.geometry.size),
        "resize": desc.geometry.mode,
        "boxes": ("gt" if args.gt_boxes else "det") if desc.family.needs_boxes else None,
        "val_AP": desc.val_metric,
        "world_size": run.world_size,
        "images_per_rank": run.images_per_rank,
        "predict_s": seconds,
    }
    return run.results


def _run_model_mode(args: argparse.Namespace) -> dict[str, Any] | None:
    """Model mode: run the model (every rank under torchrun), then score once on rank 0;
    the report (None on the other ranks)."""
    from fusepose.distributed import agree, env_rank, process_group
    from fusepose.evaluation.results import write_results

    if args.results or args.gt:
        raise ConfigError("model mode: the GT is --data; use --save-results, not --results")
    if args.metric == "pckh":
        raise ConfigError("model mode scores COCO-format data only (--metric coco)")
    _check_model_args(args)
    with process_group(args.device) as device:
        if device is not None:  # this rank's device (cuda:LOCAL_RANK on GPUs)
            args.device = str(device)
        args.results = _run_model(args)
        args.results_name = "<model>"
        args.gt = args.data
        args.metric = "coco"
        report, error = None, None
        if env_rank() == 0:
            try:
                if args.save_results:
                    write_results(args.save_results, args.results)
                report = _run_coco(args)
            except Exception as e:  # noqa: BLE001 - every rank raises it (agree)
                error = e
        agree(error)
    return report


def run(args: argparse.Namespace) -> int:
    model_mode = args.model or args.onnx or (args.weights and args.data)
    if model_mode:
        report = _run_model_mode(args)
        if report is None:  # a rank > 0 under torchrun: rank 0 scores and writes
            return 0
    else:
        report = _run_results_mode(args)
    if args.report:
        write_json_atomic(args.report, report, indent=2)
        logger.info("wrote report %s", args.report)
    return 0


def _run_results_mode(args: argparse.Namespace) -> dict[str, Any]:
    stray = [
        f
        for f in ("weights", "data", "images", "det_file", "save_results", "gt_boxes")
        if getattr(args, f, None)
    ]
    if stray:
        flags = ", ".join("--" + f.replace("_", "-") for f in stray)
        raise ConfigError(f"{flags}: model-mode options need --model")
    if not args.gt:
        raise ConfigError("--gt: a ground-truth file is required")
    metric = _metric(args)
    if args.results is None or (isinstance(args.results, str) and not args.results):
        raise ConfigError("--results: a results file is required")
    if metric == "coco":
        return _run_coco(args)
    for flag in ("crowd", "no_area", "backend"):
        if getattr(args, flag):
            raise ConfigError(f"--{flag.replace('_', '-')} applies to --metric coco only")
    return _run_pckh(args)
