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

``--source`` takes several sources (files, folders, videos), run in turn into one results
file; a video frame's record then names its video (``file_name`` ``<video>:frame:N``).
``--workers N`` threads read and prepare images ahead of the network (the same results).
Under ``torchrun --nproc-per-node N -m fusepose.cli.main predict ...`` the images (and
whole videos) are split over the ranks; each draws its own, rank 0 writes the one merged,
sorted results file (:mod:`fusepose.inference.multi`). A webcam, and ``--track`` over images,
run in one process.
"""

from __future__ import annotations

import argparse
import logging

from fusepose.cli.common import add_inference_arguments, add_model_arguments, build_predictor
from fusepose.errors import ConfigError
from fusepose.inference.boxes import ImageIds
from fusepose.inference.multi import plan_sources, predict_sources
from fusepose.progress import Progress

logger = logging.getLogger(__name__)

# Kept for the verbs that imported it from here.
__all__ = ["add_arguments", "add_model_arguments", "build_predictor", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "--source",
        required=True,
        nargs="+",
        help="image, folder of images, video file, or webcam index (0, 1, ...); several are "
        "run in turn into one results file",
    )
    parser.add_argument("--save-vis", metavar="DIR", help="write drawn images (and videos) here")
    parser.add_argument("--save-json", metavar="FILE", help="write COCO-format results here")
    parser.add_argument("--ann", metavar="FILE", help="COCO JSON giving the image ids by file name")
    add_inference_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="threads that read and prepare images ahead of the network "
                        "(default 0)")  # fmt: skip
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
    from fusepose.distributed import agree, env_rank, process_group
    from fusepose.inference.network import resolve_device

    sources = args.source if isinstance(args.source, list) else [args.source]
    plan = plan_sources(sources)  # SourceError for a missing path
    ids = ImageIds(args.ann)
    ids.check(plan.image_paths)
    if args.workers < 0:
        raise ConfigError(f"--workers {args.workers}: give 0 (no reader threads) or more")
    resolve_device(args.device)
    track = None
    if args.track or args.smooth:
        track = dict(patience=args.track_patience, det_frequency=args.det_frequency,
                     smooth=args.smooth, min_cutoff=args.smooth_min_cutoff,
                     beta=args.smooth_beta)  # fmt: skip
    with process_group(args.device) as device:
        if device is not None:  # this rank's device (cuda:LOCAL_RANK on GPUs)
            args.device = str(device)
        predictor, error = None, None
        try:
            predictor = build_predictor(args)
        except Exception as e:  # noqa: BLE001 - every rank raises it (agree)
            error = e
        agree(error)
        assert predictor is not None
        show_bar = not args.no_progress and env_rank() == 0 and any(
            i.in_folder or i.kind != "image" for i in plan.items)  # fmt: skip
        with Progress(unit="img", enabled=show_bar) as bar:

            def progress(done: int, total: int | None) -> None:
                bar.set_total(total)
                bar.update(done - bar.n)

            summary = predict_sources(predictor, plan, ids=ids, save_json=args.save_json,
                                      save_vis=args.save_vis, track=track, workers=args.workers,
                                      progress=progress)  # fmt: skip
    logger.info("%d people found", summary["people"])
    if track is not None:
        logger.info("%d tracks", summary["tracks"])
    return 0
