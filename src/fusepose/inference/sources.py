"""Inference sources: one image (array or path), a folder of images, a video file or a webcam.

Every source yields ``Frame`` objects one at a time, so a long video or a webcam runs in
constant memory. Opening a source that does not exist or cannot be decoded raises
:class:`fusepose.errors.SourceError` naming the source.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from fusepose.data.io import read_image
from fusepose.errors import FusePoseError, SourceError
from fusepose.limits import MAX_IMAGE_SIDE  # larger images are refused, as by the server

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass
class Frame:
    """One decoded image.

    image: (H, W, 3) uint8 BGR.
    name: file path for images, ``"<video path>:frame:N"`` / ``"webcam:I:frame:N"`` for streams.
    index: position in the source (0-based).
    path: the image file, or None for video / webcam frames and in-memory arrays.
    """

    image: np.ndarray
    name: str
    index: int
    path: Path | None = None


def check_image_array(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Validate an in-memory image: (H, W, 3) uint8 BGR (a (H, W) grey image is expanded);
    SourceError for anything else (other dtypes, channel counts, empty or huge sizes)."""
    if not isinstance(image, np.ndarray):
        raise SourceError(f"{name}: expected a numpy image, got {type(image).__name__}")
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise SourceError(f"{name}: expected an (H, W, 3) BGR image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise SourceError(f"{name}: expected uint8 pixels, got {image.dtype}")
    if max(image.shape[:2]) > MAX_IMAGE_SIDE:
        raise SourceError(
            f"{name}: image is {image.shape[1]}x{image.shape[0]}, over the {MAX_IMAGE_SIDE} px "
            "side fusepose accepts"
        )
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] != 3:
        raise SourceError(f"{name}: expected an (H, W, 3) BGR image, got shape {image.shape}")
    return image


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def folder_images(folder: str | Path) -> list[Path]:
    """:func:`list_images`, or SourceError when the folder holds none."""
    files = list_images(folder)
    if not files:
        raise SourceError(f"{folder}: folder contains no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def source_kind(source: object) -> str:
    """One of ``array``, ``image``, ``folder``, ``video``, ``webcam``; SourceError otherwise."""
    if isinstance(source, np.ndarray):
        return "array"
    if isinstance(source, bool):
        raise SourceError(f"{source!r}: not a source")
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "webcam"
    path = Path(source)  # type: ignore[arg-type]
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise SourceError(
        f"{path}: unknown file type {suffix!r} (images: {', '.join(IMAGE_SUFFIXES)}; "
        f"videos: {', '.join(VIDEO_SUFFIXES)})"
    )


class VideoSource:
    """Frames of a video file or webcam, read lazily with ``cv2.VideoCapture``.

    Opening happens in the constructor, so a bad source fails before any work starts.
    ``fps`` and ``frame_count`` come from the container (frame_count may be 0 if unknown).
    """

    def __init__(self, source: str | Path | int) -> None:
        self.is_webcam = isinstance(source, int) or (isinstance(source, str) and source.isdigit())
        self._first: np.ndarray | None = None
        if self.is_webcam:
            self.label = f"webcam:{int(source)}"
            self.cap = cv2.VideoCapture(int(source))
            if not self.cap.isOpened():
                raise SourceError(
                    f"{self.label}: cannot open webcam {int(source)} (no such device?)"
                )
        else:
            path = Path(source)
            self.label = str(path)
            if not path.is_file():
                raise SourceError(f"{path}: video file not found")
            self.cap = cv2.VideoCapture(str(path))
            ok = self.cap.isOpened()
            first = None
            if ok:
                ok, first = self.cap.read()
            if not ok or first is None:
                self.cap.release()
                raise SourceError(f"{path}: not a readable video (OpenCV could not decode a frame)")
            # kept and yielded first, not re-read: seeking back to frame 0 fails on some
            # containers (a one-frame video then gave no frame at all)
            self._first = first
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps > 0 else 25.0
        self.frame_count = max(int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        try:
            while True:
                first, self._first = self._first, None
                ok, img = (True, first) if first is not None else self.cap.read()
                if not ok or img is None:
                    break
                yield Frame(img, f"{self.label}:frame:{index}", index, None)
                index += 1
        finally:
            self.cap.release()

    def close(self) -> None:
        self.cap.release()


def iter_frames(source: object, skipped: list[dict] | None = None) -> Iterator[Frame]:
    """Frames from any supported source.

    Not a generator itself: the source is checked (and a video / webcam opened) at call time,
    so a bad source raises SourceError here rather than on the first ``next()``.
    ``skipped``: for a folder, unreadable images are skipped with a warning and recorded here
    as ``{"file", "error"}`` (without it, the first one raises).
    """
    kind = source_kind(source)
    if kind == "array":
        return iter([Frame(check_image_array(source), "<array>", 0, None)])  # type: ignore[arg-type]
    if kind == "image":
        img = read_image(source, apply_exif=True)  # type: ignore[arg-type]
        return iter([Frame(img, str(source), 0, Path(source))])  # type: ignore[arg-type]
    if kind == "folder":
        return _folder_frames(folder_images(source), skipped)  # type: ignore[arg-type]
    return iter(VideoSource(source))  # type: ignore[arg-type]


def _folder_frames(files: list[Path], skipped: list[dict] | None) -> Iterator[Frame]:
    for i, f in enumerate(files):
        try:
            img = read_image(f, apply_exif=True)
        except FusePoseError as e:
            if skipped is None:
                raise
            logger.warning("skipping %s", e)
            skipped.append({"file": f.name, "error": str(e)})
            continue
        yield Frame(img, str(f), i, f)


def count_frames(source: object) -> int | None:
    """Number of frames a source will yield if known cheaply (None for webcams)."""
    kind = source_kind(source)
    if kind in ("array", "image"):
        return 1
    if kind == "folder":
        return len(list_images(source))  # type: ignore[arg-type]
    if kind == "video":
        cap = cv2.VideoCapture(str(source))
        try:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            cap.release()
        return n or None
    return None


def prefetch(items: Iterable[T], load: Callable[[T], R], workers: int = 0) -> Iterator[tuple[T, R]]:
    """``(item, load(item))`` for each item, in the items' order.

    ``workers`` > 0: ``load`` runs in that many threads, up to ``2 * workers`` items ahead of
    the consumer, so image decoding (OpenCV releases the GIL) and preprocessing overlap the
    network on the consuming thread. An exception ``load`` raises comes out at its item, as
    without workers. ``workers`` 0: plain, one item at a time on the calling thread.
    """
    if workers <= 0:
        for item in items:
            yield item, load(item)
        return
    source = iter(items)
    pending: deque[tuple[T, Future[R]]] = deque()
    pool = ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="fusepose-read")
    try:
        for item in source:
            pending.append((item, pool.submit(load, item)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            item, future = pending.popleft()
            nxt = next(source, _END)
            if nxt is not _END:
                pending.append((nxt, pool.submit(load, nxt)))  # type: ignore[arg-type]
            yield item, future.result()
    finally:  # the consumer stopped (done, an error, Ctrl-C): drop what was read ahead
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
