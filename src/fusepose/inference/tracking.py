"""``PoseTracker``: the same person keeps the same id from frame to frame, optionally smoothed.

Per frame (all coordinates in original-image pixels):

1. *Predict*: every live track moves its last measured joints by its velocity (a constant-
   velocity model: pixels per frame, the running mean of its measured displacements with gain
   ``motion_gain``) times the frames since it was last seen.
2. *Associate*: similarity of track t and person d = ``oks_weight x OKS + (1 - oks_weight) x
   IoU``: the OKS of the predicted joints (:func:`fusepose.evaluation.nms.oks_iou` over the
   joints scored above ``kpt_thr`` in both, the tight joint boxes' areas as scale) and the IoU
   of those boxes. The Hungarian assignment (``scipy.optimize.linear_sum_assignment``) picks
   the pairs of highest total similarity; a pair below ``match_thr`` is no match.
3. *Birth and death*: an unmatched person starts a new track at once (ids count up from 1); a
   track unseen for more than ``patience`` frames is dropped. Until then it keeps predicting,
   so a person hidden for a few frames comes back with the old id.
4. *Smoothing* (``smooth=True``): each track's joints go through its own
   :class:`~fusepose.inference.smoothing.OneEuroFilter` (joints below ``kpt_thr`` pass raw
   and restart their filter). Association always uses the raw joints.

With a :class:`~fusepose.inference.predictor.Predictor`, :meth:`PoseTracker.predict_frame`
runs it too. A top-down model then gets its person boxes from the tracks seen in the
previous frame (their predicted joints -> :func:`~fusepose.inference.boxes.boxes_from_people`),
and from its detector or detection file every ``det_frequency`` frames (rtmlib's
``det_frequency``) and whenever no track was seen in the previous frame. A box made from a
track carries the score of the detection that started or last refreshed it, so the top-down
rescoring (box score x joint scores) does not decay frame after frame.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from fusepose.errors import ConfigError
from fusepose.evaluation.nms import oks_iou
from fusepose.inference.boxes import ImageIds, boxes_from_people
from fusepose.inference.predictor import Predictor
from fusepose.inference.smoothing import OneEuroFilter
from fusepose.inference.sources import (
    Frame,
    VideoSource,
    check_image_array,
    iter_frames,
    source_kind,
)
from fusepose.structures import PoseInstance, PoseResult, box_from_keypoints

logger = logging.getLogger(__name__)

__all__ = ["PoseTracker", "Track", "box_iou"]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[x, y, w, h]`` box (4,) with M others (M, 4), pixels. Returns (M,)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(box[0], b[:, 0])
    y0 = np.maximum(box[1], b[:, 1])
    x1 = np.minimum(box[0] + box[2], b[:, 0] + b[:, 2])
    y1 = np.minimum(box[1] + box[3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box[2] * box[3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@dataclass
class Track:
    """One tracked person.

    keypoints: (K, 2) last measured joints (raw, original-image pixels); scores: (K,).
    velocity: (2,) pixels per frame. last_frame: frame index of the last match.
    box_score: score of the detection box that last refreshed it (top-down boxes).
    """

    track_id: int
    keypoints: np.ndarray
    scores: np.ndarray
    velocity: np.ndarray
    last_frame: int
    first_frame: int
    box_score: float = 1.0
    hits: int = 1
    smoother: OneEuroFilter | None = field(default=None, repr=False)

    def predicted(self, frame: int, motion: bool = True) -> np.ndarray:
        """(K, 2) joints expected at ``frame`` (original-image pixels)."""
        if not motion:
            return self.keypoints
        return self.keypoints + self.velocity[None, :] * (frame - self.last_frame)


class PoseTracker:
    """Give each person a ``track_id`` that stays with them across frames.

    Args:
        predictor: optional; needed by :meth:`predict_frame` / :meth:`stream`. Its skeleton
            gives the OKS sigmas and its ``kpt_thr`` the joints trusted for matching.
        patience: frames a track is kept without a match (occlusion tolerance) before it dies.
        match_thr: lowest similarity (0..1) of a match.
        oks_weight: weight of OKS against box IoU in the similarity.
        kpt_thr: joints scored below are ignored by the OKS and the motion model (default:
            the predictor's, else 0.3).
        sigmas: (K,) OKS sigmas (default: the predictor's skeleton, else COCO-17).
        motion: predict with the constant-velocity model (False: a track waits where it was).
        motion_gain: weight of a new velocity measurement in the running mean (0..1].
        det_frequency: top-down with a predictor: run the detector / detection file every this
            many frames, and take boxes from the previous frame's tracks in between (1: always
            detect).
        smooth: One-Euro filter the joints of each track; ``min_cutoff`` (Hz), ``beta``
            (1 / pixel) and ``d_cutoff`` (Hz) are its parameters.
        fps: frame rate for the filter's time step when :meth:`update` gets no timestamp.
    """

    def __init__(
        self,
        predictor: Predictor | None = None,
        *,
        patience: int = 30,
        match_thr: float = 0.3,
        oks_weight: float = 0.5,
        kpt_thr: float | None = None,
        sigmas: Sequence[float] | None = None,
        motion: bool = True,
        motion_gain: float = 0.5,
        det_frequency: int = 10,
        smooth: bool = False,
        min_cutoff: float = 1.0,
        beta: float = 0.05,
        d_cutoff: float = 1.0,
        fps: float = 30.0,
    ) -> None:
        if int(patience) < 0:
            raise ConfigError(f"track patience {patience}: must be >= 0 frames")
        if not 0 <= match_thr <= 1:
            raise ConfigError(f"track match threshold {match_thr}: must be in [0, 1]")
        if not 0 <= oks_weight <= 1:
            raise ConfigError(f"track OKS weight {oks_weight}: must be in [0, 1]")
        if not 0 < motion_gain <= 1:
            raise ConfigError(f"track motion gain {motion_gain}: must be in (0, 1]")
        if int(det_frequency) < 1:
            raise ConfigError(f"det frequency {det_frequency}: must be >= 1 frame")
        if not fps > 0:
            raise ConfigError(f"fps {fps}: must be > 0")
        self.predictor = predictor
        self.patience = int(patience)
        self.match_thr = float(match_thr)
        self.oks_weight = float(oks_weight)
        if kpt_thr is None:
            kpt_thr = predictor.description.test.kpt_thr if predictor is not None else 0.3
        self.kpt_thr = float(kpt_thr)
        if sigmas is None and predictor is not None:
            sigmas = predictor.skeleton.sigmas
        self.sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.motion = bool(motion)
        self.motion_gain = float(motion_gain)
        self.det_frequency = int(det_frequency)
        self.smooth = bool(smooth)
        self.filter_args = {"min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff}
        if self.smooth:
            OneEuroFilter(**self.filter_args)  # check the parameters now
        self.fps = float(fps)
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self.tracks: list[Track] = []
        self.frame = -1  # index of the last frame updated
        self.next_id = 1
        self.image_size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ association

    def update(
        self,
        people: PoseResult | Sequence[PoseInstance],
        timestamp: float | None = None,
        box_scores: Sequence[float] | None = None,
    ) -> PoseResult:
        """Associate one frame's people with the tracks; returns them (same order) with
        ``track_id`` set, joints smoothed when ``smooth``.

        ``timestamp``: seconds (default frame index / fps), for the smoothing filter.
        ``box_scores``: per person, the detection box score to carry on its track (top-down).
        """
        result = people if isinstance(people, PoseResult) else PoseResult(list(people))
        self.frame += 1
        if result.image_size is not None:
            self.image_size = result.image_size
        t = self.frame / self.fps if timestamp is None else float(timestamp)
        dets = list(result.instances)
        self.tracks = [tr for tr in self.tracks if self.frame - tr.last_frame <= self.patience]
        matches = self._match(dets)
        out: list[PoseInstance] = []
        for d, inst in enumerate(dets):
            bs = None if box_scores is None else float(box_scores[d])
            if d in matches:
                track = self.tracks[matches[d]]
                self._refresh(track, inst, bs)
            else:
                track = self._birth(inst, bs)
            kpts = inst.keypoints
            if track.smoother is not None:
                valid = (inst.keypoint_scores >= self.kpt_thr)[:, None]
                kpts = track.smoother(inst.keypoints, t, valid)
            out.append(dataclasses.replace(inst, keypoints=kpts, track_id=track.track_id))
        return PoseResult(out, result.image_size, result.image_id, result.source)

    def _similarity(self, dets: Sequence[PoseInstance]) -> np.ndarray:
        """(T, D) similarity of the live tracks' predictions and this frame's people."""
        sim = np.zeros((len(self.tracks), len(dets)))
        if not self.tracks or not dets:
            return sim
        det_kpts = np.stack([np.c_[p.keypoints, p.keypoint_scores] for p in dets])
        det_boxes = np.stack([self._box(p.keypoints, p.keypoint_scores) for p in dets])
        det_areas = det_boxes[:, 2] * det_boxes[:, 3]
        if det_kpts.shape[1] != self.tracks[0].keypoints.shape[0]:
            raise ConfigError(f"tracking: {det_kpts.shape[1]} keypoints per person, the "
                              f"tracks have {self.tracks[0].keypoints.shape[0]}")  # fmt: skip
        for i, tr in enumerate(self.tracks):
            pred = tr.predicted(self.frame, self.motion)
            box = self._box(pred, tr.scores)
            ref = np.c_[pred, tr.scores]
            oks = oks_iou(ref, det_kpts, box[2] * box[3], det_areas, self.sigmas, self.kpt_thr)
            sim[i] = self.oks_weight * oks + (1 - self.oks_weight) * box_iou(box, det_boxes)
        return sim

    def _match(self, dets: Sequence[PoseInstance]) -> dict[int, int]:
        """person index -> track index, by the Hungarian assignment on the similarity."""
        sim = self._similarity(dets)
        if sim.size == 0:
            return {}
        rows, cols = linear_sum_assignment(-sim)
        return {int(c): int(r) for r, c in zip(rows, cols, strict=True)
                if sim[r, c] >= self.match_thr}  # fmt: skip

    def _box(self, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Tight ``[x, y, w, h]`` around the trusted joints (at least 1 px each way)."""
        box = box_from_keypoints(keypoints, scores, thr=self.kpt_thr)
        box[2:] = np.maximum(box[2:], 1.0)
        return box

    def _birth(self, inst: PoseInstance, box_score: float | None) -> Track:
        track = Track(
            track_id=self.next_id,
            keypoints=inst.keypoints.copy(),
            scores=inst.keypoint_scores.copy(),
            velocity=np.zeros(2),
            last_frame=self.frame,
            first_frame=self.frame,
            box_score=1.0 if box_score is None else box_score,
            smoother=OneEuroFilter(**self.filter_args) if self.smooth else None,
        )
        self.next_id += 1
        self.tracks.append(track)
        return track

    def _refresh(self, track: Track, inst: PoseInstance, box_score: float | None) -> None:
        """A match: update the velocity from the measured displacement, then the joints."""
        gap = self.frame - track.last_frame
        both = (track.scores >= self.kpt_thr) & (inst.keypoint_scores >= self.kpt_thr)
        if both.any():
            shift = np.median(inst.keypoints[both] - track.keypoints[both], axis=0)
        else:  # no joint seen twice: the centres of the joint boxes
            a = self._box(track.keypoints, track.scores)
            b = self._box(inst.keypoints, inst.keypoint_scores)
            shift = (b[:2] + b[2:] / 2) - (a[:2] + a[2:] / 2)
        measured = shift / max(gap, 1)
        gain = 1.0 if track.hits == 1 else self.motion_gain
        track.velocity = track.velocity + gain * (measured - track.velocity)
        track.keypoints = inst.keypoints.copy()
        track.scores = inst.keypoint_scores.copy()
        track.last_frame = self.frame
        track.hits += 1
        if box_score is not None:
            track.box_score = box_score

    # ------------------------------------------------------------------ with a predictor

    def track_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """Top-down boxes for the next frame: ``(N, 4)`` ``[x, y, w, h]`` around the predicted
        joints of the tracks seen in the last frame (padded as detector boxes from people),
        and ``(N,)`` the box scores they carry."""
        seen = [tr for tr in self.tracks if tr.last_frame == self.frame]
        people = [PoseInstance(tr.predicted(self.frame + 1, self.motion), tr.scores, tr.box_score)
                  for tr in seen]  # fmt: skip
        return boxes_from_people(PoseResult(people, self.image_size), kpt_thr=self.kpt_thr)

    def predict_frame(
        self, frame: Frame | np.ndarray, image_id: int | None = None, timestamp: float | None = None
    ) -> PoseResult:
        """Run the predictor on one frame and track its people (see the module docstring for
        where a top-down model's boxes come from)."""
        p = self._need_predictor()
        if not p.pipeline.needs_boxes:
            return self.update(p.predict_frame(frame, image_id=image_id), timestamp)
        if isinstance(frame, np.ndarray):
            frame = Frame(check_image_array(frame), "<array>", 0, None)
        next_frame = self.frame + 1
        boxes, scores = self.track_boxes()
        if next_frame % self.det_frequency == 0 or len(boxes) == 0:
            boxes, scores = p.find_boxes(frame, image_id)
        result = p.predict_frame(frame, boxes, scores, image_id)
        return self.update(result, timestamp, _box_scores(result.instances, boxes, scores))

    def stream(
        self, source: Any, image_ids: Callable[[Frame], int | None] | None = None
    ) -> Iterator[PoseResult]:
        """Track a video, webcam or image folder (in name order) from its first frame: one
        PoseResult per frame, read lazily. Video frames' image ids are their indices."""
        p = self._need_predictor()
        kind = source_kind(source)
        frames = VideoSource(source) if kind in ("video", "webcam") else iter_frames(source)
        fps = frames.fps if isinstance(frames, VideoSource) else self.fps
        ids = image_ids or ImageIds()
        self.reset()

        def gen() -> Iterator[PoseResult]:
            for i, frame in enumerate(frames):
                iid = i if kind in ("video", "webcam") else ids(frame)
                yield self.predict_frame(frame, iid, timestamp=i / fps)

        logger.debug("tracking %s with %s", source, p.model_name)
        return gen()

    def _need_predictor(self) -> Predictor:
        if self.predictor is None:
            raise ConfigError("PoseTracker: predict_frame / stream need a predictor "
                              "(PoseTracker(predictor)); update() takes poses")  # fmt: skip
        return self.predictor


def _box_scores(people: Sequence[PoseInstance], boxes: np.ndarray, scores: np.ndarray) -> list:
    """The input box score of each top-down person (its ``box`` is the crop box it came
    from), 1.0 where no input box matches."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = []
    for p in people:
        same = np.flatnonzero(np.all(np.abs(boxes - p.box[None]) < 1e-6, axis=1))
        out.append(float(scores[same[0]]) if len(same) else 1.0)
    return out
