"""``fusepose perf``: the performance table (params, GMACs, latency split, fps, speed-up).

One command measures every model and backend in one process, interleaved run by run, on the
shared multi-person COCO image, and writes the markdown table (README / docs/performance.md)
and a JSON with every number (see ``fusepose.experiments.perf_table``)::

    fusepose perf --json perf.json --markdown perf.md

Weights are random unless ``--weights MODEL=FILE`` (He init with BatchNorm statistics calibrated
on the image: ``fusepose.models.init.random_inference_weights``; the JSON rows say which);
bottom-up decode then runs on maps rendered from the image's ground truth so it sees a
realistic number of peaks. Every backend and precision this CPU runs gets a row with its
accuracy guard; ``--peer NAME=FILE.onnx`` times another ONNX model's network beside them.

Accuracy verdicts on random weights decide nothing: ``--checkpoints DIR`` judges every model on
its trained checkpoint ``DIR/MODEL/best.pth`` (the small overfit recipe of
``fusepose.benchmark.checkpoints.GUARD_RECIPES``, trained where missing, reused after a check
where present): each row of the registered architecture at the table's input takes the
verdict its path (backend, precision, INT8 scope) got on the checkpoint. ``--time-checkpoints``
times the checkpoints' own networks instead (a guard recipe may train a reduced variant at its
own input) and adds the OpenVINO INT8 row of NNCF's accuracy control for the ``--int8``
models. Each JSON row says ``guard_weights``: ``checkpoint`` or ``random``, and only the
former decide the fastest path (``best``)::

    fusepose perf --checkpoints runs/guard --json perf.json

Every row shows its MAC-bound time; ``--streams N`` adds images/s of N single-thread streams;
``--verdict R1.json R2.json R3.json`` measures nothing and combines separate runs' JSON files
into issue 22's speed verdict (``fusepose.benchmark.verdict``)::

    fusepose perf --verdict run1.json run2.json run3.json --markdown verdict.md
"""

from __future__ import annotations

import argparse
import logging

from fusepose.errors import ConfigError

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fusepose.experiments.perf_table import BACKENDS, DEFAULT_MODELS
    from fusepose.inference.backends import PRECISIONS

    parser.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        help=f"registered models (default: {' '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument("--baseline", default="higherhrnet_w32", help="speed-up reference")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["onnx", "torch", "openvino"],
        choices=BACKENDS,
        help="torch-compile: torch.compile rows (compiled in the warmup, minutes per model); "
        "openvino needs fusepose[openvino]",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=list(PRECISIONS),
        choices=PRECISIONS,
        help="precisions tried on each backend; those this CPU cannot run are listed as "
        "skipped (default: all)",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=FILE.onnx",
        help="another ONNX pose model whose network is timed beside ours, interleaved "
        "(no fusepose metadata needed; repeatable)",
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (ORT and torch)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--image", help="benchmark image (default: COCO 000000196141.jpg)")
    parser.add_argument(
        "--input",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=(512, 512),
        help="bottom-up input size (fixed export, letterboxed)",
    )
    parser.add_argument(
        "--int8",
        nargs="*",
        default=["lmfnet"],
        metavar="MODEL",
        help="models that also get an INT8 row (none: --int8 with no name)",
    )
    _add_weight_arguments(parser)
    parser.add_argument(
        "--raw-torch", action="store_true", help="add eager rows of the unmodified modules"
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the flip, threads and peak sections"
    )
    parser.add_argument(
        "--workdir", default=None, help="ONNX export cache (default ~/.cache/fusepose/perf)"
    )
    parser.add_argument(
        "--streams",
        type=int,
        default=0,
        metavar="N",
        help="throughput section: images/s of N single-thread streams (processes) beside one "
        "process at --threads, per model's fastest accurate exported path (default 0: off)",
    )
    parser.add_argument(
        "--no-mac-bound",
        action="store_true",
        help="skip the dense-rate probes behind every row's MAC-bound column",
    )
    parser.add_argument(
        "--verdict",
        nargs="+",
        metavar="RUN.json",
        help="measure nothing: issue 22's speed verdict over the --json files of separate perf "
        "runs (each candidate's best accurate path against the baseline's, the range of "
        "the ratios); --json / --markdown write it",
    )
    parser.add_argument("--json", metavar="FILE", help="write the full result here")
    parser.add_argument("--markdown", metavar="FILE", help="write the markdown tables here")


def _add_weight_arguments(parser: argparse.ArgumentParser) -> None:
    """What the rows run with and are judged on: checkpoints per model, the guard's data."""
    parser.add_argument(
        "--weights",
        nargs="*",
        default=[],
        metavar="MODEL=FILE",
        help="checkpoints per model (default random weights)",
    )
    parser.add_argument(
        "--int8-checkpoint",
        metavar="FILE",
        help="trained bottom-up checkpoint: COCO AP of every path (fp32, INT8, OpenVINO, bf16) "
        "on the shared COCO samples; its verdict is the guard of that model's rows",
    )
    parser.add_argument(
        "--checkpoints",
        metavar="DIR",
        help="trained guard checkpoints DIR/MODEL/best.pth (each model's small overfit recipe "
        "on the COCO samples, trained where missing, reused where present): every model's "
        "verdicts on trained weights, and an OpenVINO INT8 row by NNCF's accuracy control for "
        "the --int8 models; without it, verdicts on random weights decide no fastest path",
    )
    parser.add_argument(
        "--time-checkpoints",
        action="store_true",
        help="with --checkpoints: time the checkpoints' own networks (their architecture "
        "overrides and weights) and add the NNCF INT8 row, instead of timing the registered "
        "architectures at --input with the checkpoints' verdicts",
    )


def _pairs(items: list[str], flag: str, form: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"{flag} {item!r}: expected {form}")
        out[name] = path
    return out


def run(args: argparse.Namespace) -> int:
    from fusepose.experiments.perf_table import PerfConfig, run_perf, to_markdown, write_outputs

    if args.verdict:
        return _verdict(args)
    weights = _pairs(args.weights, "--weights", "MODEL=FILE")
    peers = _pairs(args.peer, "--peer", "NAME=FILE.onnx")
    cfg = PerfConfig(
        models=tuple(args.models),
        baseline=args.baseline,
        backends=tuple(args.backends),
        precisions=tuple(args.precisions),
        peers=peers,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        image=args.image,
        input_size=(int(args.input[0]), int(args.input[1])),
        int8=tuple(args.int8),
        flip_section=not args.quick,
        threads_section=not args.quick,
        peak_section=not args.quick,
        raw_torch=args.raw_torch,
        **({"workdir": args.workdir} if args.workdir else {}),
        weights=weights,
        int8_checkpoint=args.int8_checkpoint,
        checkpoints=args.checkpoints,
        time_checkpoints=args.time_checkpoints,
        mac_bound=not args.no_mac_bound,
        streams=args.streams,
    )
    res = run_perf(cfg, progress=lambda msg: logger.info("%s", msg))
    print(to_markdown(res), end="")
    write_outputs(res, args.json, args.markdown)
    return 0


def _verdict(args: argparse.Namespace) -> int:
    from fusepose.benchmark.verdict import run_verdict, verdict_markdown, write_verdict

    v = run_verdict(args.verdict)
    print(verdict_markdown(v), end="")
    write_verdict(v, args.json, args.markdown)
    return 0
