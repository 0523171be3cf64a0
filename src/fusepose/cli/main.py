"""``fusepose <verb>``: a thin command line over the Python API.

Each verb lives in ``fusepose/cli/<module>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their verb runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from fusepose.cli.flags import check_flags
from fusepose.cli.outputs import check_outputs
from fusepose.errors import FusePoseError
from fusepose.signals import Terminated, sigterm_as_interrupt

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "models": ("models", "list the model zoo (--table: params/GMACs beside the papers')"),
    "flops": ("flops", "params and multiply-accumulates of one model"),
    "synth": ("synth", "generate the synthetic multi-person COCO-format dataset"),
    "eval": ("evaluate", "COCO OKS AP / MPII PCKh of a results file, or of a model on a dataset"),
    "train": ("train", "train a model from a YAML config (a path or a bundled config's name)"),
    "configs": ("configs", "list the configs that ship with fusepose"),
    "pretrain": ("pretrain", "ImageNet-style classification pretraining of a backbone"),
    "demo": ("demo", "synthetic data -> train a small L-MFNet on CPU -> evaluate -> draw"),
    "predict": ("predict", "run a model on images, a folder, a video or a webcam"),
    "visualize": ("visualize", "draw heatmaps, tag maps and attention maps"),
    "export": ("export", "export a model to ONNX and check it against PyTorch"),
    "inspect": ("inspect", "what a checkpoint or ONNX file is: model, input, settings, val AP"),
    "bench": ("bench", "latency split into preprocess / network / decode"),
    "bench-data": ("bench_data", "data-loader throughput and decode time"),
    "perf": ("perf", "the performance table: params, GMACs, latency split, speed-up"),
    "serve": ("serve", "a local web page and REST API around one model"),
    "ablate": ("ablate", "train a paper's ablation (table3, sfm-attention) with one recipe"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit 2."""

    def error(self, message: str):  # type: ignore[override]
        _say(f"{self.prog}: error: {message} (see {self.prog} --help)")
        raise SystemExit(2)


def _say(line: str) -> None:
    """Print an error line on stderr; under torchrun only rank 0 does, so N processes that
    fail alike print it once (every rank still exits with the code)."""
    if os.environ.get("RANK", "0") in ("", "0"):  # the launcher's rank: no torch import here
        print(line, file=sys.stderr)


def _debug_wanted(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("FUSEPOSE_DEBUG", "") not in ("", "0")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fusepose", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of errors (or set FUSEPOSE_DEBUG=1)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_module, help_text) in VERBS.items():
        sub.add_parser(verb, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``fusepose VERB ...``; user errors end as one line on stderr with exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in {"-h", "--help"}:
        top.print_help()
        return 0
    debug = _debug_wanted(argv)
    argv = [a for a in argv if a != "--debug"]
    verbose = False
    while argv and argv[0] in {"-v", "--verbose"}:
        verbose = True
        argv.pop(0)
    if not argv:
        top.print_help()
        return 0
    verb = argv[0]
    if verb not in VERBS:
        top.error(f"unknown verb {verb!r}; choose from {', '.join(VERBS)}")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    module_name, help_text = VERBS[verb]
    module = importlib.import_module(f"fusepose.cli.{module_name}")
    parser = _Parser(prog=f"fusepose {verb}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        check_flags(args)  # every number in its range, before any work
        check_outputs(args)  # every output path exists or can be made, and is no input
        with sigterm_as_interrupt():
            return int(module.run(args) or 0)
    except Terminated:
        print("terminated (SIGTERM): finished results were kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except FusePoseError as e:
        if debug:
            raise
        _say(f"fusepose {verb}: error: {_one_line(e)}")
        return 2
    except OSError as e:  # a file the user named: unwritable, full disk, missing folder
        if debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _say(f"fusepose {verb}: error: {where}{e.strerror or e}")
        return 2
    except Exception as e:  # noqa: BLE001 - a bug: one line here, the traceback with --debug
        if debug:
            raise
        _say(f"fusepose {verb}: internal error: {type(e).__name__}: {_one_line(e)} "
             "(please report it; --debug shows the traceback)")  # fmt: skip
        return 1


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
