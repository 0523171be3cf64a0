"""Predicting over many sources, in one process or many: what ``fusepose predict`` runs.

A run is a list of items in the one-process order (:func:`plan_sources`): every image of a
folder (name order), an image file, a video, a webcam, for each source in turn. In a process
group (torchrun) rank r takes items r, r + W, ... (:func:`fusepose.distributed.shard`): images
one by one, a video whole (its frames are one sequence: tracking, the drawn mp4). Each rank
draws its own items into ``save_vis`` (the source image's name, ``<video stem>_pose.mp4``: no
two ranks write one file); the results and the skipped list are gathered to rank 0, merged
in the one-process order (sequential image ids numbered as one process numbers them) and
written once, atomically, by :class:`~fusepose.visualization.writer.ResultWriter`.

An interrupted run keeps what was finished. One process saves its finished frames, as the
ResultWriter always has. With several, each rank appends every finished frame to its own
journal beside the results file (``<stem>.rank<r>.jsonl``, flushed per frame, so even a rank
that is killed leaves its work on disk); when the run stops early rank 0 merges the journals
of this run into the results file, and journals are removed only after a complete run.
SIGTERM (what torchrun sends its workers when one fails or on Ctrl-C) stops a run like Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusepose.data.io import read_image
from fusepose.distributed import (
    agree,
    broadcast,
    gather_checked,
    get_rank,
    get_world_size,
    shard,
)
from fusepose.errors import ConfigError, FusePoseError
from fusepose.inference.boxes import ImageIds
from fusepose.inference.predictor import FrameInput, Predictor
from fusepose.inference.sources import Frame, VideoSource, folder_images, prefetch, source_kind
from fusepose.inference.tracking import PoseTracker
from fusepose.signals import sigterm_as_interrupt
from fusepose.visualization.writer import ResultWriter

logger = logging.getLogger(__name__)

__all__ = ["Item", "SourcePlan", "plan_sources", "predict_sources"]


@dataclass(frozen=True)
class Item:
    """One unit of work. pos: place in the one-process order; kind: ``image``, ``video`` or
    ``webcam``; source: the file (or webcam index); sequence: which source it came from (a
    folder's images are one sequence when tracking); in_folder: an unreadable image is
    skipped (a folder's) rather than an error (an image given alone)."""

    pos: int
    kind: str
    source: str
    sequence: int
    in_folder: bool = False


@dataclass
class SourcePlan:
    """The items of some sources, checked (every path exists, folders hold images)."""

    sources: list[str]
    items: list[Item]

    @property
    def image_paths(self) -> list[Path]:
        return [Path(i.source) for i in self.items if i.kind == "image"]


def plan_sources(sources: Sequence[Any]) -> SourcePlan:
    """The items of ``sources`` (paths, folders, videos, webcam indices) in order;
    SourceError for a missing path, an unknown file type or a folder without images."""
    items: list[Item] = []
    for seq, src in enumerate(sources):
        kind = source_kind(src)
        if kind == "folder":
            for f in folder_images(src):
                items.append(Item(len(items), "image", str(f), seq, in_folder=True))
        elif kind in ("image", "video", "webcam"):
            items.append(Item(len(items), kind, str(src), seq))
        else:
            raise ConfigError(f"{src!r}: predict_sources takes files, folders and webcams")
    return SourcePlan([str(s) for s in sources], items)


def video_name(item: Item) -> str:
    """The drawn video's file name: ``<video stem>_pose.mp4`` or ``webcam<N>_pose.mp4``."""
    stem = Path(item.source).stem if item.kind == "video" else f"webcam{item.source}"
    return f"{stem}_pose.mp4"


@dataclass
class _Done:
    """What one rank finished: per frame ``[pos, frame, needs_id, records]``, per skipped
    image ``[pos, {"file", "error"}]`` (lists: they go through JSON journals as they are)."""

    frames: list[list[Any]] = field(default_factory=list)
    skipped: list[list[Any]] = field(default_factory=list)


def merge_done(parts: Sequence[_Done]) -> tuple[list[dict], list[dict]]:
    """The results and skipped list of every rank's work, in the one-process order; frames
    whose id is sequential get the id one process gives them (their order among such frames)."""
    results: list[dict] = []
    next_id = 0
    for _pos, _frame, needs_id, records in sorted(
        (f for p in parts for f in p.frames), key=lambda f: (f[0], f[1])
    ):
        if needs_id:
            records = [{**r, "image_id": next_id} for r in records]
            next_id += 1
        results.extend(records)
    skipped = [s for _pos, s in sorted((s for p in parts for s in p.skipped), key=lambda s: s[0])]
    return results, skipped


class _RankRun:
    """One rank's share of a run: predicts its items, draws them, records what it finished
    (and journals it, with several ranks)."""

    def __init__(self, predictor: Predictor, plan: SourcePlan, ids: ImageIds, *,
                 save_vis: str | Path | None, track: dict[str, Any] | None, workers: int,
                 journal: Path | None, run_id: str) -> None:  # fmt: skip
        self.predictor, self.ids, self.track, self.workers = predictor, ids, track, workers
        self.save_vis = save_vis
        self.several = len(plan.sources) > 1
        self.world = get_world_size()
        self.done = _Done()
        self.people = 0
        self.tracks = 0
        self.drawer = self._writer()
        self.journal = None
        if journal is not None:
            self.journal = open(journal, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._log({"run": run_id, "rank": get_rank(), "world": self.world})

    def _writer(self, **kw: Any) -> ResultWriter:
        p = self.predictor
        return ResultWriter(save_vis=self.save_vis, skeleton=p.skeleton,
                            kpt_thr=p.description.test.kpt_thr, by_track=self.track is not None,
                            **kw)  # fmt: skip

    def _log(self, line: dict[str, Any]) -> None:
        if self.journal is not None:
            self.journal.write(json.dumps(line) + "\n")
            self.journal.flush()

    def _finish(self, writer: ResultWriter, result: Any, image: Any, name: str | None,
                pos: int, frame: int, needs_id: bool) -> None:  # fmt: skip
        n = len(writer.results)
        writer.add(result, image, name)
        records = writer.results[n:]
        self.people += len(result)
        self.done.frames.append([pos, frame, needs_id, records])
        self._log({"pos": pos, "frame": frame, "needs_id": needs_id, "records": records})

    def run(self, items: list[Item], progress: Callable[[], None]) -> None:
        i = 0
        while i < len(items):
            if items[i].kind == "image":  # a stretch of images of one source
                j = i
                while j < len(items) and items[j].kind == "image" \
                        and items[j].sequence == items[i].sequence:  # fmt: skip
                    j += 1
                self._images(items[i:j], progress)
                i = j
            else:
                self._stream(items[i], progress)
                i += 1

    def _images(self, items: list[Item], progress: Callable[[], None]) -> None:
        p = self.predictor
        tracker = PoseTracker(p, **self.track) if self.track is not None else None
        # bottom-up with reader threads: prepared in them too (without: predict_frame, as ever)
        ahead = self.workers > 0 and tracker is None and not p.pipeline.needs_boxes

        def load(item: Item) -> Frame | FrameInput | FusePoseError:
            try:
                img = read_image(item.source, apply_exif=True)
            except FusePoseError as e:
                if not item.in_folder:
                    raise
                return e
            frame = Frame(img, item.source, item.pos, Path(item.source))
            return p.prepare_frame(frame) if ahead else frame

        for item, got in prefetch(items, load, self.workers):
            if isinstance(got, FusePoseError):
                logger.warning("skipping %s", got)
                entry = {"file": Path(item.source).name, "error": str(got)}
                self.done.skipped.append([item.pos, entry])
                self._log({"pos": item.pos, "skipped": entry})
                continue
            frame = got.frame if isinstance(got, FrameInput) else got
            # one process numbers name-less images in order; several: rank 0 does, at the merge
            iid = self.ids(frame) if self.world == 1 else self.ids.fixed(frame)
            needs_id = iid is None
            iid = -1 if iid is None else iid  # a stand-in until the merge
            if tracker is not None:
                res = tracker.predict_frame(frame, iid)
            elif isinstance(got, FrameInput):
                got.image_id = iid
                res = p.predict_prepared(got)
            else:
                res = p.predict_frame(frame, image_id=iid)
            self._finish(self.drawer, res, frame.image, frame.path.name, item.pos, 0, needs_id)
            progress()
        if tracker is not None:
            self.tracks += tracker.next_id - 1

    def _stream(self, item: Item, progress: Callable[[], None]) -> None:
        """A video or webcam, frame by frame: image id = frame index."""
        p = self.predictor
        video = VideoSource(item.source)
        tracker = None
        if self.track is not None:
            tracker = PoseTracker(p, **self.track, fps=video.fps)
        # with several sources a frame's record names its video (one video: as it always was)
        label = Path(item.source).name if item.kind == "video" else f"webcam{item.source}"
        start = time.monotonic()
        with self._writer(video=video_name(item), fps=video.fps) as writer:
            ahead = self.workers > 0 and tracker is None and not p.pipeline.needs_boxes
            load = p.prepare_frame if ahead else (lambda f: f)
            for frame, got in prefetch(video, load, self.workers if ahead else 0):
                i = frame.index
                if tracker is not None:  # a webcam's frames are timed by the clock
                    stamp = time.monotonic() - start if item.kind == "webcam" else None
                    res = tracker.predict_frame(frame, i, timestamp=stamp)
                elif isinstance(got, FrameInput):
                    got.image_id = i
                    res = p.predict_prepared(got)
                else:
                    res = p.predict_frame(frame, image_id=i)
                name = f"{label}:frame:{i}" if self.several else None
                self._finish(writer, res, frame.image, name, item.pos, i, False)
                progress()
        if tracker is not None:
            self.tracks += tracker.next_id - 1

    def close(self) -> None:
        self.drawer.close()
        if self.journal is not None:
            self.journal.close()


def predict_sources(
    predictor: Predictor,
    sources: SourcePlan | Sequence[Any],
    *,
    ids: ImageIds | None = None,
    save_json: str | Path | None = None,
    save_vis: str | Path | None = None,
    track: dict[str, Any] | None = None,
    workers: int = 0,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Run ``predictor`` on every frame of ``sources`` and write what it found.

    Args:
        ids: image ids of image files (default :class:`ImageIds`: numeric names, else
            sequential).
        save_json: COCO keypoint results (people best first, those below the description's
            ``score_thr`` left out; unreadable folder images listed in ``<stem>.skipped.json``).
        save_vis: folder for drawn images and videos.
        track: :class:`PoseTracker` keyword arguments (``patience``, ``smooth``, ...) to give
            people track ids across each video's, webcam's or folder's frames; None: no
            tracking.
        workers: threads that read and prepare images ahead of the network (same results).
        progress: called with ``(frames done, frames of this rank or None)`` after each frame.

    In a process group every rank calls this with the same arguments (see the module notes).
    Returns, on every rank, ``{"frames", "people", "tracks", "skipped", "images_per_rank"}``
    of the whole run (``images_per_rank``: the items each rank predicted).
    """
    plan = sources if isinstance(sources, SourcePlan) else plan_sources(sources)
    ids = ids if ids is not None else ImageIds()
    rank, world = get_rank(), get_world_size()
    error: Exception | None = None
    try:
        if workers < 0:
            raise ConfigError(f"workers={workers}: give 0 (no reader threads) or more")
        _check_split(plan, world, track is not None)
        ids.check(plan.image_paths)
        for item in plan.items:  # every video opens before any work (SourceError)
            if item.kind == "video":
                VideoSource(item.source).close()
    except Exception as e:  # noqa: BLE001 - every rank raises it (agree)
        error = e
    agree(error)
    mine = [plan.items[p] for p in shard(len(plan.items), rank, world)]
    if rank == 0 and len(plan.items) < world:  # e.g. one video: it is not split by frames
        logger.warning("%d items for %d ranks: %d ranks have nothing to do", len(plan.items),
                       world, world - len(plan.items))  # fmt: skip
    save_json = Path(save_json) if save_json is not None else None
    run_id = broadcast(uuid.uuid4().hex)
    journal = _journal(save_json, rank) if save_json is not None and world > 1 else None
    job = _RankRun(predictor, plan, ids, save_vis=save_vis, track=track, workers=workers,
                   journal=journal, run_id=run_id)  # fmt: skip
    total = _count(mine)
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    try:
        with sigterm_as_interrupt():
            summary = _run_and_merge(job, mine, tick, save_json, rank, world)
    except BaseException:
        _keep_finished(job, save_json, rank, world, run_id)
        raise
    finally:
        job.close()
    if journal is not None:
        journal.unlink(missing_ok=True)
    return summary


def _run_and_merge(job: _RankRun, mine: list[Item], tick: Callable[[], None],
                   save_json: Path | None, rank: int, world: int) -> dict[str, Any]:  # fmt: skip
    """Predict this rank's items; gather every rank's work; rank 0 writes the results."""
    error: Exception | None = None
    try:
        job.run(mine, tick)
    except Exception as e:  # noqa: BLE001 - raised on every rank below
        if world == 1:
            raise
        error = e
    if world > 1:
        logger.info("rank %d/%d: %d items, %d frames predicted", rank, world, len(mine),
                    len(job.done.frames))  # fmt: skip
    parts = gather_checked((job.done, job.people, job.tracks, len(mine)), error)
    summary: dict[str, Any] | None = None
    error = None
    if parts is not None:  # rank 0 (or one process): merge and write
        try:
            results, skipped = merge_done([p[0] for p in parts])
            if save_json is not None:
                _save(save_json, results, skipped)
            summary = {"frames": sum(len(p[0].frames) for p in parts),
                       "people": sum(p[1] for p in parts), "tracks": sum(p[2] for p in parts),
                       "skipped": skipped, "images_per_rank": [p[3] for p in parts]}  # fmt: skip
        except Exception as e:  # noqa: BLE001 - raised on every rank below
            if world == 1:
                raise
            error = e
    agree(error)
    return broadcast(summary)


def _save(save_json: Path, results: list[dict], skipped: list[dict]) -> None:
    """The one results file (and skipped list), atomically, through the ResultWriter."""
    writer = ResultWriter(save_json=save_json)
    writer.results, writer.skipped = results, skipped
    writer.save()


def _keep_finished(job: _RankRun, save_json: Path | None, rank: int, world: int,
                   run_id: str) -> None:  # fmt: skip
    """The run stopped early: save what was finished (one process: its frames; several:
    rank 0 merges this run's journals, which stay on disk)."""
    if save_json is None or rank != 0:
        return
    try:
        if world == 1:
            parts = [job.done]
        else:
            if job.journal is not None:
                job.journal.flush()
            parts = [_read_journal(_journal(save_json, r), run_id) for r in range(world)]
        frames = sum(len(p.frames) for p in parts)
        if not frames:
            return
        logger.warning("stopped early: saving the %d finished frames%s", frames,
                       f" of {world} ranks (journals kept: {_journal(save_json, 0).name} ...)"
                       if world > 1 else "")  # fmt: skip
        _save(save_json, *merge_done(parts))
    except Exception as e:  # noqa: BLE001 - the run's own error is the one to report
        logger.warning("%s: could not save the finished frames (%s)", save_json, e)


def _journal(save_json: Path, rank: int) -> Path:
    """Rank ``rank``'s journal beside the results file: ``<stem>.rank<r>.jsonl``."""
    return save_json.with_name(f"{save_json.stem}.rank{rank}.jsonl")


def _read_journal(path: Path, run_id: str) -> _Done:
    """The finished work a journal of run ``run_id`` records (another run's, a missing one or
    a torn last line: nothing, or the lines before it)."""
    done = _Done()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return done
    for n, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            break  # a line being written when the run stopped
        if n == 0:
            if entry.get("run") != run_id:
                return done
        elif "skipped" in entry:
            done.skipped.append([entry["pos"], entry["skipped"]])
        else:
            done.frames.append([entry["pos"], entry["frame"], entry["needs_id"], entry["records"]])
    return done


def _check_split(plan: SourcePlan, world: int, tracking: bool) -> None:
    """What several processes cannot split: a webcam, tracking over an image sequence."""
    if world == 1:
        return
    if any(i.kind == "webcam" for i in plan.items):
        raise ConfigError(f"a webcam runs in one process, not {world} (run it without torchrun)")
    if tracking and any(i.kind == "image" for i in plan.items):
        raise ConfigError(
            f"--track over images: their frames are one sequence, which {world} processes "
            "cannot split (run it in one process; videos are tracked whole on one rank)"
        )


def _count(items: list[Item]) -> int | None:
    """Frames in ``items`` when known (None with a webcam or a video of unknown length)."""
    total = 0
    for item in items:
        if item.kind == "image":
            total += 1
        elif item.kind == "video":
            n = len(VideoSource(item.source))
            if not n:
                return None
            total += n
        else:
            return None
    return total
