"""One place that writes what a run over images, a video or a webcam produced, for every
caller (``fusepose predict``, ``fusepose serve``, the demo, notebooks):

- :func:`coco_records`: a result as COCO keypoint results (``file_name`` added when known);
- :func:`people_json`: a result as the REST API returns it;
- :func:`write_image`: a drawn image to a file (one-line error when OpenCV cannot);
- :func:`side_by_side`: drawn panels joined left to right, enlarged and labelled;
- :class:`ResultWriter`: the results JSON (atomic, kept when a run is interrupted), drawn
  images or an mp4 of the drawn frames, and the list of skipped unreadable images beside
  the JSON (``RESULTS.skipped.json``).

Importing this module lets results draw and save themselves
(:meth:`fusepose.structures.PoseResult.plot` / :meth:`~fusepose.structures.PoseResult.save`),
through :func:`~fusepose.visualization.skeleton.draw_poses` and :func:`write_image`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from fusepose.errors import ConfigError
from fusepose.files import write_bytes_atomic, write_json_atomic
from fusepose.skeletons import Skeleton
from fusepose.structures import PoseResult, register_drawing
from fusepose.visualization.skeleton import draw_poses

logger = logging.getLogger(__name__)

__all__ = ["ResultWriter", "coco_records", "people_json", "side_by_side", "write_image"]

VIDEO_FOURCC = "mp4v"


def coco_records(result: PoseResult, file_name: str | None = None) -> list[dict[str, Any]]:
    """The people of ``result`` in the COCO keypoint results format (its ``image_id``;
    ``keypoints`` ``[x, y, score] * K`` in original-image pixels, 3 decimals), each with
    ``file_name`` when one is given."""
    records = result.to_coco()
    return [{**r, "file_name": file_name} for r in records] if file_name else records


def people_json(result: PoseResult) -> list[dict[str, Any]]:
    """The people of a result as the REST API returns them, best first: COCO-format
    ``keypoints`` ``[x, y, score] * K`` (original-image pixels, 3 decimals), ``score``,
    ``bbox`` ``[x, y, w, h]`` (and ``track_id`` when tracked)."""
    out = []
    for item, inst in zip(result.to_coco(image_id=0), result.instances, strict=True):
        person = {"keypoints": item["keypoints"], "score": round(float(inst.score), 5),
                  "bbox": [round(float(v), 2) for v in inst.box]}  # fmt: skip
        if "track_id" in item:
            person["track_id"] = item["track_id"]
        out.append(person)
    return out


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a BGR uint8 image (format from the suffix), atomically; ConfigError when OpenCV
    cannot encode it. OpenCV only encodes: Python writes the file, so any file name the OS
    allows works (OpenCV's own file functions fail, or crash, on names that are not UTF-8)."""
    path = Path(path)
    try:
        ok, data = cv2.imencode(path.suffix or ".jpg", image)
    except cv2.error:
        ok = False
    if not ok:
        raise ConfigError(f"{path}: OpenCV cannot write this image (suffix {path.suffix!r}?)")
    # no sweep for killed writers' temporaries: a folder of N frames would be listed N times
    return write_bytes_atomic(path, data.tobytes(), sweep=False)


def side_by_side(
    panels: list[np.ndarray], labels: list[str] | None = None, *, gap: int = 4, zoom: int = 3
) -> np.ndarray:
    """Images of one height ((H, W, 3) uint8 BGR) joined left to right with ``gap`` white
    columns between, enlarged ``zoom`` times (nearest neighbour: pixels stay sharp), each
    labelled at its top left in black on white."""
    h = panels[0].shape[0]
    parts: list[np.ndarray] = []
    for i, panel in enumerate(panels):
        if i:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        parts.append(panel)
    canvas = np.concatenate(parts, 1)
    canvas = cv2.resize(canvas, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    x = 0
    for panel, text in zip(panels, labels or [], strict=False):
        for color, weight in (((255, 255, 255), 2), ((0, 0, 0), 1)):
            cv2.putText(canvas, text, (zoom * x + 6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, color,
                        weight)  # fmt: skip
        x += panel.shape[1] + gap
    return canvas


class ResultWriter:
    """Writes the results of a run, frame by frame; use it as a context manager.

    Args:
        save_json: COCO keypoint results file (written atomically when the writer closes,
            also when the run stops on an error or Ctrl-C: the finished frames are kept);
            unreadable images listed in :attr:`skipped` go beside it in
            ``<stem>.skipped.json``. None: no JSON.
        save_vis: folder for the drawn images (named as the source image, else
            ``NNNNNN.jpg`` by frame index), or for the video. None: nothing drawn.
        skeleton: the keypoint set drawn (needed with ``save_vis``).
        kpt_thr: joints scored below are not drawn, nor the limbs touching them.
        by_track: tracked people drawn in their track's colour with ``id N``.
        video: file name of an mp4 in ``save_vis`` that gets every drawn frame instead of
            image files (e.g. ``clip_pose.mp4``); fps: its frame rate.

    ``skipped``: a list the frame reader appends ``{"file", "error"}`` to
    (:func:`fusepose.inference.sources.iter_frames`).
    """

    def __init__(
        self,
        *,
        save_json: str | Path | None = None,
        save_vis: str | Path | None = None,
        skeleton: Skeleton | None = None,
        kpt_thr: float = 0.3,
        by_track: bool = False,
        video: str | None = None,
        fps: float = 30.0,
    ) -> None:
        if save_vis is not None and skeleton is None:
            raise ConfigError(f"{save_vis}: drawing needs the skeleton (skeleton=)")
        self.save_json = Path(save_json) if save_json is not None else None
        self.save_vis = Path(save_vis) if save_vis is not None else None
        self.skeleton = skeleton
        self.kpt_thr = float(kpt_thr)
        self.by_track = bool(by_track)
        self.video_name = video
        self.fps = float(fps)
        self.results: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.frames = 0  # frames finished
        self.people = 0
        self._video: cv2.VideoWriter | None = None

    # -------------------------------------------------------------- per frame
    def add(self, result: PoseResult, image: np.ndarray | None = None, name: str | None = None):
        """Record one frame's result (its ``image_id`` set) and, with ``save_vis``, draw its
        people on ``image`` (original pixels, BGR) into the image file ``name`` or the video."""
        self.results.extend(coco_records(result, name))
        self.people += len(result)
        if self.save_vis is not None:
            if image is None:
                raise ValueError("ResultWriter.add: save_vis needs the frame's image")
            drawn = self.draw(image, result)
            if self.video_name is not None:
                self._write_frame(drawn)
            else:
                self.write_image(name or f"{self.frames:06d}.jpg", drawn)
        self.frames += 1

    def draw(self, image: np.ndarray, result: PoseResult) -> np.ndarray:
        """A copy of ``image`` with the people of ``result`` drawn (the writer's settings)."""
        if self.skeleton is None:
            raise ConfigError("ResultWriter.draw: no skeleton given (skeleton=)")
        return result.plot(image, self.skeleton, kpt_thr=self.kpt_thr, by_track=self.by_track)

    def write_image(self, name: str, image: np.ndarray) -> Path:
        """Write an image into ``save_vis`` (created when missing) as ``name``."""
        if self.save_vis is None:
            raise ConfigError(f"{name}: no folder to write drawn images to (save_vis=)")
        self.save_vis.mkdir(parents=True, exist_ok=True)
        return write_image(self.save_vis / name, image)

    def _write_frame(self, drawn: np.ndarray) -> None:
        """Append a drawn frame to the video, opened at the first frame's size. OpenCV
        writes a temporary file of a plain ASCII name, renamed to the video's name when it is
        closed (so the final name never holds half a video, whatever the name's encoding)."""
        if self._video is None:
            assert self.save_vis is not None and self.video_name is not None
            self.save_vis.mkdir(parents=True, exist_ok=True)
            self._video_tmp = self.save_vis / f".fusepose-video-{os.getpid()}-{id(self)}.mp4"
            h, w = drawn.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC)
            video = cv2.VideoWriter(str(self._video_tmp), fourcc, self.fps, (w, h))
            if not video.isOpened():
                out = self.save_vis / self.video_name
                raise ConfigError(f"{out}: OpenCV cannot write an mp4v video here")
            logger.info("writing %s", self.save_vis / self.video_name)
            self._video = video
        self._video.write(drawn)

    # -------------------------------------------------------------- at the end
    def save(self) -> None:
        """Write the results JSON (atomically) and, when images were skipped, the list of
        them beside it (``<stem>.skipped.json``)."""
        if self.save_json is None:
            return
        write_json_atomic(self.save_json, self.results)
        logger.info("wrote %d results to %s", len(self.results), self.save_json)
        side = self.save_json.with_suffix(".skipped.json")
        if self.skipped:
            write_json_atomic(side, self.skipped, indent=2)
            logger.warning("%d unreadable images skipped: listed in %s", len(self.skipped), side)
        elif side.is_file():  # this run owns the name: an earlier run's list must not stay
            side.unlink()
            logger.info("removed %s of an earlier run (nothing skipped this time)", side)

    def close(self) -> None:
        """Finish the video: released, then renamed to its name (the JSON is written by
        :meth:`save`)."""
        if self._video is not None:
            self._video.release()
            self._video = None
            assert self.save_vis is not None and self.video_name is not None
            os.replace(self._video_tmp, self.save_vis / self.video_name)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Save and close; when the run stopped (an error, Ctrl-C), the finished frames are
        saved first and the exception goes on."""
        try:
            if exc_type is None:
                self.save()
            elif self.frames:
                logger.warning("stopped at frame %d: saving the %d finished frames",
                               self.frames, self.frames)  # fmt: skip
                self.save()
        finally:
            self.close()


# results draw and save themselves through these (fusepose.structures stays below OpenCV)
register_drawing(draw_poses, write_image)
