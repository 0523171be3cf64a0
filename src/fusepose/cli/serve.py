"""``fusepose serve [MODEL] --weights W [--host 127.0.0.1] [--port 8000]``: the web page and
the REST API (``GET /``, ``POST /api/predict``, ``GET /api/health``) around one model, loaded
once. Needs the ``serve`` extra (``pip install 'fusepose[serve]'``)."""

from __future__ import annotations

import argparse

from fusepose.cli.common import add_inference_arguments, add_model_arguments, build_predictor
from fusepose.errors import ConfigError
from fusepose.serve import serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_inference_arguments(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=20.0,
        metavar="MB",
        help="largest upload in MiB (default 20)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=40.0,
        metavar="MP",
        help="largest image in megapixels (default 40)",
    )


def run(args: argparse.Namespace) -> int:
    if args.det_file:
        raise ConfigError("--det-file: uploads have no image ids; top-down models need --detector")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be in 0..65535")
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise ConfigError("--max-upload-mb and --max-megapixels must be > 0")
    predictor = build_predictor(args)
    if predictor.family.needs_boxes and predictor.detector is None:
        raise ConfigError(f"top-down model {predictor.model_name!r} needs person boxes: give "
                          "--detector (a bottom-up model) to serve it")  # fmt: skip
    serve(predictor, host=args.host, port=args.port,
          max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
          max_pixels=int(args.max_megapixels * 1e6))  # fmt: skip
    return 0
