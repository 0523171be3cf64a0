"""``fusepose predict [MODEL] --weights W --source SRC``: images, folders, videos, webcams.

The model file describes how it runs (``fusepose inspect``), so a checkpoint or an exported
``.onnx`` file needs no size flags: ``fusepose predict runs/o/best.pth --source img/``.

Results JSON (``--save-json``) is the COCO keypoint results format (a list of
``{image_id, file_name, category_id, keypoints [x, y, score] * K, score}``), people best first,
those below ``--score-thr`` left out. Image ids come from the COCO JSON given with ``--ann``
(matched by file name; a file it does not list is an error), else from numeric file names
(``000000196141.jpg`` -> 196141), else they are sequential from 0 (video frames: frame index).
Unreadable images of a folder are skipped with a warning and listed in
``<save-json stem>.skipped.json``. The JSON is written atomically, also when the run is
interrupted (what was finished is kept).

``--track`` follows people across the frames of a video, a webcam or an image folder (in name
order) with :class:`fusepose.PoseTracker`: every result gets a ``track_id``, drawings show
``id N`` and one colour per track. Top-down models take their boxes from the previous frame's
people and run the detector (``--detector`` / ``--det-file``) every ``--det-frequency`` frames.
``--smooth`` (implies ``--track``) One-Euro filters each track's joints.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from fusepose.cli.common import add_inference_arguments, add_model_arguments, build_predictor
from fusepose.inference.boxes import ImageIds
from fusepose.inference.sources import (
    VideoSource,
    count_frames,
    iter_frames,
    list_images,
    source_kind,
)
from fusepose.inference.tracking import PoseTracker
from fusepose.progress import track
from fusepose.visualization.writer import ResultWriter

logger = logging.getLogger(__name__)

# Kept for the verbs that imported it from here.
__all__ = ["add_arguments", "add_model_arguments", "build_predictor", "run"]


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
    add_inference_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tracking_arguments(parser)


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    """``--track`` and ``--smooth`` with their parameters (defaults: PoseTracker's)."""
    g = parser.add_argument_group("tracking (videos, webcams, image folders as sequences)")
    g.add_argument(
        "--track",
        action="store_true",
        help="give each person a track_id that stays with them across frames",
    )
    g.add_argument(
        "--track-patience",
        type=int,
        default=30,
        metavar="N",
        help="frames a lost person's id is kept for their return (default 30)",
    )
    g.add_argument(
        "--det-frequency",
        type=int,
        default=10,
        metavar="N",
        help="top-down with --track: run the detector every N frames, boxes from "
        "the previous frame's people in between (default 10; 1 = every frame)",
    )
    g.add_argument(
        "--smooth",
        action="store_true",
        help="One-Euro filter each track's joints (implies --track)",
    )
    g.add_argument(
        "--smooth-min-cutoff",
        type=float,
        default=1.0,
        metavar="HZ",
        help="One-Euro cutoff at rest in Hz: lower = less jitter (default 1.0)",
    )
    g.add_argument(
        "--smooth-beta",
        type=float,
        default=0.05,
        metavar="BETA",
        help="One-Euro speed coefficient per pixel: higher = less lag (default 0.05)",
    )


def run(args: argparse.Namespace) -> int:
    source = args.source
    kind = source_kind(source)  # SourceError for a missing path
    ids = ImageIds(args.ann)
    if kind in ("image", "folder"):
        ids.check(list_images(source) if kind == "folder" else [Path(source)])
    predictor = build_predictor(args)
    stream = kind in ("video", "webcam")
    writer = ResultWriter(
        save_json=args.save_json, save_vis=args.save_vis, skeleton=predictor.skeleton,
        kpt_thr=predictor.description.test.kpt_thr, by_track=bool(args.track or args.smooth),
        video=_video_name(source, kind) if stream else None,
    )  # fmt: skip
    frames = VideoSource(source) if stream else iter_frames(source, writer.skipped)
    if isinstance(frames, VideoSource):
        writer.fps = frames.fps
    tracker = None
    if args.track or args.smooth:
        tracker = PoseTracker(
            predictor, patience=args.track_patience, det_frequency=args.det_frequency,
            smooth=args.smooth, min_cutoff=args.smooth_min_cutoff, beta=args.smooth_beta,
            fps=writer.fps,
        )  # fmt: skip
    start = time.monotonic()
    total = count_frames(source) if kind != "webcam" else None
    show_bar = kind in ("folder", "video", "webcam") and not args.no_progress
    with writer:  # saves the finished frames also when interrupted
        for i, frame in enumerate(track(frames, total=total, enabled=show_bar, unit="img")):
            image_id = i if stream else ids(frame)
            if tracker is None:
                res = predictor.predict_frame(frame, image_id=image_id)
            else:  # a webcam's frames are timed by the clock, files by their rate
                stamp = time.monotonic() - start if kind == "webcam" else None
                res = tracker.predict_frame(frame, image_id, timestamp=stamp)
            writer.add(res, frame.image, frame.path.name if frame.path is not None else None)
    logger.info("%d people found", writer.people)
    if tracker is not None:
        logger.info("%d tracks", tracker.next_id - 1)
    return 0


def _video_name(source: str, kind: str) -> str:
    """The drawn video's file name: ``<video stem>_pose.mp4`` or ``webcam<N>_pose.mp4``."""
    stem = Path(str(source)).stem if kind == "video" else f"webcam{source}"
    return f"{stem}_pose.mp4"
