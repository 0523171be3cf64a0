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

import cv2

from fusepose.cli.common import add_inference_arguments, add_model_arguments, build_predictor
from fusepose.errors import ConfigError
from fusepose.files import write_json_atomic
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
from fusepose.visualization.skeleton import draw_poses

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
    json_out = Path(args.save_json) if args.save_json else None  # checked by cli.main
    vis_dir = Path(args.save_vis) if args.save_vis else None
    ids = ImageIds(args.ann)
    if kind in ("image", "folder"):
        ids.check(list_images(source) if kind == "folder" else [Path(source)])
    predictor = build_predictor(args)
    skipped: list[dict] = []
    frames = VideoSource(source) if kind in ("video", "webcam") else iter_frames(source, skipped)
    kpt_thr = predictor.description.test.kpt_thr
    tracker = None
    if args.track or args.smooth:
        tracker = PoseTracker(
            predictor, patience=args.track_patience, det_frequency=args.det_frequency,
            smooth=args.smooth, min_cutoff=args.smooth_min_cutoff, beta=args.smooth_beta,
            fps=frames.fps if isinstance(frames, VideoSource) else 30.0,
        )  # fmt: skip
    start = time.monotonic()
    writer = None
    results: list[dict] = []
    total = count_frames(source) if kind != "webcam" else None
    show_bar = kind in ("folder", "video", "webcam") and not args.no_progress
    people = done = 0
    try:
        for i, frame in enumerate(track(frames, total=total, enabled=show_bar, unit="img")):
            done = i
            image_id = i if kind in ("video", "webcam") else ids(frame)
            if tracker is None:
                res = predictor.predict_frame(frame, image_id=image_id)
            else:  # a webcam's frames are timed by the clock, files by their rate
                stamp = time.monotonic() - start if kind == "webcam" else None
                res = tracker.predict_frame(frame, image_id, timestamp=stamp)
            people += len(res)
            name = frame.path.name if frame.path is not None else None
            results.extend({**r, "file_name": name} if name else r for r in res.to_coco())
            if vis_dir is None:
                continue
            drawn = draw_poses(frame.image, res, predictor.skeleton, kpt_thr=kpt_thr,
                               by_track=tracker is not None)  # fmt: skip
            if kind in ("video", "webcam"):
                if writer is None:
                    stem = Path(str(source)).stem if kind == "video" else f"webcam{source}"
                    out = vis_dir / f"{stem}_pose.mp4"
                    h, w = drawn.shape[:2]
                    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                    writer = cv2.VideoWriter(str(out), fourcc, frames.fps, (w, h))  # type: ignore[union-attr]
                    if not writer.isOpened():
                        raise ConfigError(f"{out}: OpenCV cannot write an mp4v video here")
                    logger.info("writing %s", out)
                writer.write(drawn)
            else:
                cv2.imwrite(str(vis_dir / (name or f"{i:06d}.jpg")), drawn)
    except BaseException:  # interrupted or failed: keep the frames that were finished
        if done:
            logger.warning("stopped at frame %d: saving the %d finished frames", done, done)
            _save(json_out, results, skipped)
        raise
    finally:
        if writer is not None:
            writer.release()
    _save(json_out, results, skipped)
    logger.info("%d people found", people)
    if tracker is not None:
        logger.info("%d tracks", tracker.next_id - 1)
    return 0


def _save(json_out: Path | None, results: list[dict], skipped: list[dict]) -> None:
    """Write the results (atomically) and the list of skipped unreadable images beside them."""
    if json_out is None:
        return
    write_json_atomic(json_out, results)
    logger.info("wrote %d results to %s", len(results), json_out)
    if skipped:
        side = json_out.with_suffix(".skipped.json")
        write_json_atomic(side, skipped, indent=2)
        logger.warning("%d unreadable images skipped: listed in %s", len(skipped), side)
