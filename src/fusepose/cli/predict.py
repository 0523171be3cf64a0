"""``fusepose predict MODEL --weights W --source SRC``: images, folders, videos, webcams.

Results JSON (``--save-json``) is the COCO keypoint results format (a list of
``{image_id, category_id, keypoints [x, y, score] * K, score}``). Image ids come from the COCO
JSON given with ``--ann`` (matched by file name), else from numeric file names
(``000000196141.jpg`` -> 196141), else they are sequential from 0 (video frames: frame index).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from fusepose.errors import ConfigError

logger = logging.getLogger(__name__)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, weights and backend flags shared by predict / visualize / export / bench."""
    parser.add_argument("model", nargs="?", help="registered model name (see `fusepose models`)")
    w = parser.add_mutually_exclusive_group()
    w.add_argument("--weights", help="checkpoint file (fusepose, state dict or official)")
    w.add_argument(
        "--random-weights",
        action="store_true",
        help="run with random weights (smoke tests only: output is meaningless)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "--source",
        required=True,
        help="image, folder of images, video file, or webcam index (0, 1, ...)",
    )
    parser.add_argument("--save-vis", metavar="DIR", help="write drawn images (and videos) here")
    parser.add_argument("--save-json", metavar="FILE", help="write COCO-format results here")
    parser.add_argument("--ann", metavar="FILE", help="COCO JSON giving the image ids by file name")
    parser.add_argument(
        "--kpt-thr", type=float, default=0.3, help="draw keypoints above this score"
    )
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--onnx", metavar="FILE", help="exported model for --backend onnx")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--flip", action="store_true", help="flip test")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch backend: torch.compile the network (first frame of each size compiles, "
        "minutes on CPU; pays off for video, webcam and fixed --input-size)",
    )
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="bottom-up test scales, e.g. 0.5 1 2"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        default=None,
        help="bottom-up: short side (one int) or H W; top-down: H W",
    )
    parser.add_argument("--det-file", help="COCO detection JSON with person boxes (top-down)")
    parser.add_argument("--detector", help="bottom-up model giving person boxes (top-down)")
    parser.add_argument("--detector-weights", help="weights of --detector")
    parser.add_argument(
        "--oks-nms",
        type=float,
        default=None,
        metavar="THR",
        help="top-down: OKS-NMS over each image's people (HRNet: 0.9)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_predictor(args: argparse.Namespace):
    from fusepose.inference.predictor import Predictor

    if args.backend == "onnx" and not args.onnx:
        raise ConfigError("--backend onnx needs --onnx FILE")
    if args.backend == "torch" and not args.model:
        raise ConfigError("MODEL is required (or use --backend onnx --onnx FILE)")
    if args.backend == "torch" and not (args.weights or args.random_weights):
        raise ConfigError("give --weights FILE, or --random-weights for a smoke test")
    size = getattr(args, "input_size", None)
    if size is not None:
        size = size[0] if len(size) == 1 else tuple(size)
    return Predictor(
        args.model,
        weights=args.weights,
        device=args.device,
        backend=args.backend,
        onnx_path=args.onnx,
        flip=args.flip,
        scales=tuple(args.scales),
        input_size=size,
        num_threads=args.threads,
        allow_random_weights=args.random_weights,
        detector=getattr(args, "detector", None),
        detector_weights=getattr(args, "detector_weights", None),
        det_file=getattr(args, "det_file", None),
        nms_thr=getattr(args, "oks_nms", None),
        compile=bool(getattr(args, "compile", False)),
    )


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from fusepose.inference.predictor import ImageIds
    from fusepose.inference.sources import VideoSource, count_frames, iter_frames, source_kind
    from fusepose.visualization.skeleton import draw_poses

    source = args.source
    kind = source_kind(source)  # SourceError for a missing path
    frames = VideoSource(source) if kind in ("video", "webcam") else iter_frames(source)
    predictor = build_predictor(args)
    ids = ImageIds(args.ann)
    vis_dir = Path(args.save_vis) if args.save_vis else None
    if vis_dir:
        vis_dir.mkdir(parents=True, exist_ok=True)
    writer = None
    results: list[dict] = []
    total = count_frames(source) if kind != "webcam" else None
    show_bar = kind in ("folder", "video", "webcam") and not args.no_progress
    people = 0
    try:
        for i, frame in enumerate(tqdm(frames, total=total, disable=not show_bar, unit="img")):
            image_id = i if kind in ("video", "webcam") else ids(frame)
            res = predictor.predict_frame(frame, image_id=image_id)
            people += len(res)
            results.extend(res.to_coco())
            if vis_dir is None:
                continue
            drawn = draw_poses(frame.image, res, predictor.skeleton, kpt_thr=args.kpt_thr)
            if kind in ("video", "webcam"):
                if writer is None:
                    stem = Path(str(source)).stem if kind == "video" else f"webcam{source}"
                    out = vis_dir / f"{stem}_pose.mp4"
                    fps = frames.fps  # type: ignore[union-attr]
                    h, w = drawn.shape[:2]
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if not writer.isOpened():
                        raise ConfigError(f"{out}: OpenCV cannot write an mp4v video here")
                    logger.info("writing %s", out)
                writer.write(drawn)
            else:
                name = frame.path.name if frame.path is not None else f"{i:06d}.jpg"
                cv2.imwrite(str(vis_dir / name), drawn)
    finally:
        if writer is not None:
            writer.release()
    if args.save_json:
        out = Path(args.save_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results))
        logger.info("wrote %d results to %s", len(results), out)
    logger.info("%d people found", people)
    return 0
