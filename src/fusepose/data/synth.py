"""Procedurally rendered multi-person images with COCO-17 keypoints, in COCO format.

A person (:mod:`fusepose.data.synth_body`) is an articulated 3-D body with human proportions,
seen from any direction and drawn with the painter's algorithm
(:mod:`fusepose.data.synth_draw`); this module composes images of them and writes datasets.

What tells left from right is only what tells it on a real person: which way the body faces
(face, eyes and nose in front, hair at the back, a button placket on the shirt front, feet
pointing forwards, near limbs in front of far ones). Nothing is drawn differently on the left
and the right side, so the mirror image of a rendered person is the rendering of the mirrored
person (:func:`mirror_person`) with the labels swapped by the skeleton's flip pairs: horizontal
flip is a valid augmentation.

Keypoint labels follow COCO: a face point (nose, eyes, ears) on the far side of the head is
unlabelled (``[0, 0, 0]``); any other joint inside the image is labelled, ``v = 1`` where a
nearer person or another part of the same body covers its pixel, else ``v = 2``; a joint
outside the image is dropped. A person
with no visible pixel is not annotated. People are drawn far to near: by size, or, in
crowd-like images, standing on a ground plane (higher in the image = farther and smaller).
Some images carry a dense cluster of tiny figures marked as one ``iscrowd`` region (its exact
pixels as RLE), as COCO marks crowds. Backgrounds mix smooth noise, a floor, tiles or stripes,
rectangles and blobs.

Everything is deterministic for a seed: image ``i`` uses ``np.random.default_rng([seed, i])``.
Keypoints are image pixels, 0-based, pixel centres at integers (the COCO annotation frame).
The drawn-shapes classification set lives in :mod:`fusepose.data.shapes` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from fusepose.data.shapes import SHAPES, generate_shapes, render_shape
from fusepose.data.synth_body import Person, mirror_person, person_keypoints, random_person
from fusepose.data.synth_draw import _CROWD_ID, _OWN_PARTS, _PARTS, _draw_person
from fusepose.errors import DataError
from fusepose.files import write_json_atomic
from fusepose.skeletons import COCO17

logger = logging.getLogger(__name__)

__all__ = [
    "PRESETS",
    "Person",
    "SHAPES",
    "SynthConfig",
    "coco_categories",
    "generate_shapes",
    "generate_synthetic",
    "mirror_person",
    "person_keypoints",
    "random_person",
    "render_image",
    "render_people",
    "render_shape",
    "synthetic_image",
]


@dataclass(frozen=True)
class SynthConfig:
    """Rendering parameters. ``size``: image side in pixels (square images).

    ``views``: relative frequency of front / back / side views (yaw within 35 degrees of
    0 / 180, or 55 to 125 degrees either way). ``crowd_prob``: chance that an image is a
    crowd-like scene of ``crowd_people`` people on a ground plane; ``iscrowd_prob``: chance
    of an ``iscrowd`` cluster of tiny figures; ``build``: limb-thickness factor range.
    """

    size: int = 512
    min_people: int = 1
    max_people: int = 6
    min_torso: float = 0.06  # torso length as a fraction of the image side
    max_torso: float = 0.28
    jpeg_quality: int = 90
    # person centres are drawn in [-edge, 1 + edge] * size (negative: kept away from the border)
    edge: float = 0.05
    max_blobs: int = 7  # distractor ellipses in the background (0..max_blobs)
    views: tuple[float, float, float] = (0.4, 0.3, 0.3)
    crowd_prob: float = 0.1
    crowd_people: tuple[int, int] = (6, 14)
    iscrowd_prob: float = 0.1
    build: tuple[float, float] = (0.8, 1.25)

    def __post_init__(self) -> None:
        if not 1 <= self.min_people <= self.max_people:
            raise DataError(f"people: need 1 <= min_people <= max_people, got "
                            f"{self.min_people}, {self.max_people}")  # fmt: skip
        if not 0 < self.min_torso <= self.max_torso:
            raise DataError(f"torso: need 0 < min_torso <= max_torso, got "
                            f"{self.min_torso}, {self.max_torso}")  # fmt: skip
        if len(self.views) != 3 or min(self.views) < 0 or sum(self.views) <= 0:
            raise DataError(f"views: three non-negative weights (front, back, side), got "
                            f"{self.views}")  # fmt: skip


# named settings: ``fusepose synth --preset NAME``
PRESETS: dict[str, SynthConfig] = {
    "default": SynthConfig(),
    # the demo's and the CPU ablations' set: one to three people large enough for a 128-px
    # input, every view (front the most frequent, as in photos), flip on, people cut by the
    # border, iscrowd clusters in 10 % of the images; no crowd scenes
    "demo": SynthConfig(min_people=1, max_people=3, min_torso=0.18, max_torso=0.26, edge=-0.05,
                        max_blobs=2, views=(0.6, 0.2, 0.2), crowd_prob=0.0,
                        iscrowd_prob=0.1),
}  # fmt: skip


def coco_categories() -> list[dict[str, Any]]:
    """The COCO ``categories`` entry for people with the 17 keypoints (1-based skeleton)."""
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO17.keypoints),
            "skeleton": [[a + 1, b + 1] for a, b in COCO17.limbs],
        }
    ]


# ---------------------------------------------------------------------------- background
def _background(rng: np.random.Generator, size: int, max_blobs: int = 7) -> np.ndarray:
    """Textured BGR background: smooth noise, then a floor, tiles or stripes, rectangles and
    blobs, then pixel noise (no loop over pixels)."""
    g = int(rng.integers(3, 12))
    low = (
        rng.uniform(40, 215, (1, 1, 3))
        + rng.uniform(-60, 60, (g, g, 1))
        + rng.uniform(-20, 20, (g, g, 3))
    )
    low = cv2.resize(low.astype(np.float32), (32, 32), interpolation=cv2.INTER_CUBIC)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    t = np.arange(size, dtype=np.float32)
    kind = rng.random()
    if kind < 0.35:  # stripes: sin(u + v) = sin u cos v + cos u sin v, two outer products
        ang = rng.uniform(0, np.pi)
        freq = rng.uniform(2, 25) * 2 * np.pi / size
        u = t * np.float32(np.cos(ang) * freq) + np.float32(rng.uniform(0, 6.3))
        v = t * np.float32(np.sin(ang) * freq)
        wave = np.outer(np.cos(v), np.sin(u)) + np.outer(np.sin(v), np.cos(u))
        img += wave[..., None] * rng.uniform(8, 35, 3).astype(np.float32)
    elif kind < 0.65:  # a floor below a horizon, tiled in perspective
        horizon = int(rng.uniform(0.2, 0.6) * size)
        floor = rng.uniform(30, 220, 3).astype(np.float32)
        rows = t[horizon:] - horizon + 8.0
        depth = (size / rows)[:, None]  # farther rows: finer tiles
        xs = (t[None, :] - size / 2) / rows[:, None] * 8.0
        check = (np.floor(xs * rng.uniform(0.5, 2)) + np.floor(depth * rng.uniform(4, 12))) % 2
        amp = np.float32(rng.uniform(5, 30))
        img[horizon:] = floor + (check[..., None] - 0.5) * amp + (img[horizon:] - img.mean()) * 0.3
    elif kind < 0.8:  # square tiles
        cell = int(rng.integers(8, max(9, size // 6)))
        check = ((t[:, None] // cell + t[None, :] // cell) % 2).astype(np.float32)
        img += (check[..., None] - 0.5) * rng.uniform(10, 40, 3).astype(np.float32)
    for _ in range(int(rng.integers(0, 4))):  # rectangles: doors, windows, furniture
        x, y = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(size // 16, size // 3, 2))
        cv2.rectangle(img, (x, y), (x + w, y + h), rng.uniform(0, 255, 3).tolist(), -1)
    for _ in range(int(rng.integers(0, max_blobs + 1))):  # blobs
        c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        ax = (int(rng.integers(4, max(5, size // 5))), int(rng.integers(4, max(5, size // 5))))
        cv2.ellipse(
            img, c, ax, float(rng.uniform(0, 180)), 0, 360, rng.uniform(0, 255, 3).tolist(), -1
        )
    # pixel noise: uniform integers are several times cheaper to draw than normals
    amp = int(rng.integers(3, 16))
    img += rng.integers(-amp, amp + 1, (size, size, 1), dtype=np.int16)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


# ---------------------------------------------------------------------------- one image
def render_people(
    people: Sequence[Person],
    background: np.ndarray,
    crowd: Sequence[Person] = (),
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Draw ``people`` in the given order (first = farthest) over ``background`` (BGR uint8,
    copied), after the tiny figures of an optional ``crowd`` region.

    Returns ``(image, annotations)``: one annotation per person with a visible pixel, in the
    drawing order, then the crowd region if it has one. Each has ``keypoints`` ``(17, 3)``
    float ``[x, y, v]`` (image px; v 2 visible, 1 covered, 0 unlabelled or outside), ``mask``
    ``(H, W)`` bool of its visible pixels, ``torso`` (px) and ``iscrowd`` (bool).
    """
    img = np.ascontiguousarray(background).copy()
    h, w = img.shape[:2]
    ids = np.zeros((h, w), np.uint16)
    for q in crowd:
        _draw_person(img, ids, _CROWD_ID, q)
    keypoints = [_draw_person(img, ids, i + 1, p) for i, p in enumerate(people)]
    owner = ids // _PARTS
    anns = []
    for i, p in enumerate(people):
        mask = owner == i + 1
        if not mask.any():
            continue
        xy, _depth, labelled = keypoints[i]
        xi = np.round(xy[:, 0]).astype(int)
        yi = np.round(xy[:, 1]).astype(int)
        inside = (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h) & labelled
        vis = np.zeros(17)
        for k in np.nonzero(inside)[0]:
            here = int(ids[yi[k], xi[k]])
            who = here // _PARTS
            if who == i + 1:  # its own part, or another part of the same body in front
                vis[k] = 2 if here % _PARTS in _OWN_PARTS[k] else 1
            else:  # a nearer person covers it, or it lies just off its silhouette (edge px)
                vis[k] = 1 if i + 1 < who != _CROWD_ID else 2
        out = np.concatenate([np.where(inside[:, None], xy, 0.0), vis[:, None]], 1)
        anns.append({"keypoints": out, "mask": mask, "torso": float(p.torso), "iscrowd": False})
    if crowd:
        mask = owner == _CROWD_ID
        if mask.any():
            anns.append({"keypoints": np.zeros((17, 3)), "mask": mask,
                         "torso": float(np.mean([q.torso for q in crowd])), "iscrowd": True})  # fmt: skip
    return img, anns


def _crowd_region(rng: np.random.Generator, cfg: SynthConfig) -> list[Person]:
    """A dense cluster of tiny standing figures (too small to label: one iscrowd region)."""
    S = cfg.size
    cx, cy = rng.uniform(0.1, 0.9) * S, rng.uniform(0.15, 0.6) * S
    wide, tall = rng.uniform(0.15, 0.45) * S, rng.uniform(0.05, 0.15) * S
    n = int(rng.integers(10, 31))
    T = max(2.0, rng.uniform(0.015, 0.035) * S)
    centres = np.stack([rng.uniform(cx - wide / 2, cx + wide / 2, n),
                        np.sort(rng.uniform(cy - tall / 2, cy + tall / 2, n))], 1)  # fmt: skip
    return [random_person(rng, c, T * rng.uniform(0.85, 1.15), views=cfg.views, build=cfg.build)
            for c in centres]  # fmt: skip


def render_image(
    rng: np.random.Generator, cfg: SynthConfig = SynthConfig()
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render one image.

    Returns:
        ``(image BGR uint8 (S, S, 3), annotations)`` as :func:`render_people`: each
        annotation has ``keypoints`` ``(17, 3)`` float ``[x, y, v]`` (image px; v 2 visible,
        1 covered, 0 unlabelled or outside), ``mask`` ``(S, S)`` bool of its visible pixels,
        ``torso`` (px) and ``iscrowd``.
    """
    S = cfg.size
    img = _background(rng, S, cfg.max_blobs)
    crowd = _crowd_region(rng, cfg) if rng.random() < cfg.iscrowd_prob else []
    people: list[Person] = []
    if rng.random() < cfg.crowd_prob:
        # a crowd-like scene on a ground plane: farther = higher in the image and smaller
        n = int(rng.integers(cfg.crowd_people[0], cfg.crowd_people[1] + 1))
        feet = np.sort(rng.uniform(0.45, 1.05, n)) * S
        for fy in feet:
            T = (cfg.min_torso + (cfg.max_torso - cfg.min_torso) * (fy / S - 0.45) / 0.6) * S
            T = max(T, cfg.min_torso * S) * rng.uniform(0.9, 1.1)
            cx = rng.uniform(-cfg.edge * S, (1 + cfg.edge) * S)
            people.append(random_person(rng, (cx, fy - 1.6 * T), T, views=cfg.views,
                                        build=cfg.build))  # fmt: skip
    else:
        n = int(rng.integers(cfg.min_people, cfg.max_people + 1))
        torsos = np.sort(rng.uniform(cfg.min_torso, cfg.max_torso, n) * S)  # far (small) first
        for T in torsos:
            center = rng.uniform(-cfg.edge * S, (1 + cfg.edge) * S, 2)
            people.append(random_person(rng, center, T, views=cfg.views, build=cfg.build))
    return render_people(people, img, crowd)


def _coco_annotation(ann: dict[str, Any], ann_id: int, image_id: int) -> dict[str, Any] | None:
    mask = ann["mask"].astype(np.uint8)
    if not mask.any():
        return None
    # exact visible-pixel mask as compressed RLE (polygons of thin limbs lose their edges)
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    x, y, w, h = cv2.boundingRect(mask)
    kp = ann["keypoints"]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": int(bool(ann.get("iscrowd", False))),
        "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
        "num_keypoints": int((kp[:, 2] > 0).sum()),
        "bbox": [float(x), float(y), float(w), float(h)],
        "area": float(mask.sum()),
        "segmentation": rle,
    }


def _iter_images(
    num_images: int, seed: int, cfg: SynthConfig
) -> Iterator[tuple[int, np.ndarray, list]]:
    for i in range(num_images):
        img, anns = render_image(np.random.default_rng([seed, i]), cfg)
        yield i + 1, img, anns


def generate_synthetic(
    out_dir: str | Path,
    num_images: int,
    *,
    seed: int = 0,
    size: int | None = None,
    val_fraction: float = 0.1,
    config: SynthConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Path]:
    """Write ``train.json``, ``val.json`` and ``images/*.jpg`` under ``out_dir``.

    ``size`` (image side, default 512) overrides ``config.size`` when given.

    The last ``round(num_images * val_fraction)`` images form the validation split (at least
    one when ``val_fraction > 0`` and ``num_images > 1``). ``progress``: optional callable
    ``progress(n)`` after every ``n`` images written (the CLI passes a
    :class:`fusepose.progress.Progress` update).

    Returns: ``{"train": path, "val": path, "images": dir}``.
    """
    if num_images < 1:
        raise DataError(f"--images: need at least 1 image, got {num_images}")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"--val-fraction: must be in [0, 1), got {val_fraction}")
    cfg = config or SynthConfig()
    if size is not None:
        cfg = dataclasses.replace(cfg, size=int(size))
    if cfg.size < 64:
        raise DataError(f"--size: images must be at least 64 px, got {cfg.size}")
    out = Path(out_dir)
    img_dir = out / "images"
    try:
        img_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out}: cannot create output folder ({e.strerror})") from None
    n_val = int(round(num_images * val_fraction))
    if val_fraction > 0 and num_images > 1:
        n_val = max(1, n_val)
    n_val = min(n_val, num_images - 1)
    splits: dict[str, dict[str, Any]] = {
        s: {
            "info": {"description": f"fusepose synthetic people, seed {seed}", "version": "2.0"},
            "licenses": [],
            "images": [],
            "annotations": [],
            "categories": coco_categories(),
        }
        for s in ("train", "val")
    }
    ann_id = 1
    params = [int(cv2.IMWRITE_JPEG_QUALITY), cfg.jpeg_quality]
    for image_id, img, anns in _iter_images(num_images, seed, cfg):
        split = "val" if image_id > num_images - n_val else "train"
        name = f"{image_id:012d}.jpg"
        if not cv2.imwrite(str(img_dir / name), img, params):
            raise DataError(f"{img_dir / name}: cannot write image")
        splits[split]["images"].append(
            {"id": image_id, "file_name": name, "width": cfg.size, "height": cfg.size}
        )
        for ann in anns:
            coco_ann = _coco_annotation(ann, ann_id, image_id)
            if coco_ann is not None:
                splits[split]["annotations"].append(coco_ann)
                ann_id += 1
        if progress is not None:
            progress(1)
    paths = {"images": img_dir}
    for s, data in splits.items():
        p = out / f"{s}.json"
        write_json_atomic(p, data)
        paths[s] = p
        logger.info("%s: %d images, %d people", p, len(data["images"]), len(data["annotations"]))
    return paths


def synthetic_image(h: int = 427, w: int = 640, seed: int = 0) -> np.ndarray:
    """A textured (H, W, 3) uint8 BGR image for when no real image is available."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
