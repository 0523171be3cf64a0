"""Procedurally rendered multi-person images with COCO-17 keypoints, in COCO format.

Each person is an articulated figure with human proportions (torso length ``T`` sets the
scale: upper arm 0.55 T, forearm 0.5 T, thigh 0.75 T, shin 0.7 T, head radius 0.22 T) in a
random plausible pose (torso lean, shoulder / elbow / hip / knee angles drawn from
joint-limited ranges). Body parts are filled tapered limbs and ellipses; the head carries
face marks (two eye dots, a nose dot) and ear marks of different colours, and the person's
left side is drawn lighter than the right, so left and right are learnable. People are drawn
back to front (smaller = farther); a joint covered by a nearer person gets ``v = 1``, a joint
outside the image is dropped (``[0, 0, 0]``), and a person with no visible pixel is not
annotated. Backgrounds mix smooth noise, stripes and blobs.

Everything is deterministic for a seed: image ``i`` uses ``np.random.default_rng([seed, i])``.
Keypoints are image pixels, 0-based, pixel centres at integers (the COCO annotation frame).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from fusepose.errors import DataError
from fusepose.skeletons import COCO17

logger = logging.getLogger(__name__)

__all__ = [
    "SHAPES",
    "SynthConfig",
    "coco_categories",
    "generate_shapes",
    "generate_synthetic",
    "render_image",
    "render_shape",
]

_SHIFT = 4  # cv2 sub-pixel drawing: coordinates * 16
_ONE = 1 << _SHIFT

# limbs drawn as tapered quads: (from joint, to joint, width at start / T, width at end / T)
_LIMBS = (
    (5, 7, 0.16, 0.12), (7, 9, 0.12, 0.09),  # left arm
    (6, 8, 0.16, 0.12), (8, 10, 0.12, 0.09),  # right arm
    (11, 13, 0.22, 0.15), (13, 15, 0.15, 0.10),  # left leg
    (12, 14, 0.22, 0.15), (14, 16, 0.15, 0.10),  # right leg
)  # fmt: skip
_LEFT = {5, 7, 9, 11, 13, 15}


@dataclass(frozen=True)
class SynthConfig:
    """Rendering parameters. ``size``: image side in pixels (square images)."""

    size: int = 512
    min_people: int = 1
    max_people: int = 6
    min_torso: float = 0.06  # torso length as a fraction of the image side
    max_torso: float = 0.28
    jpeg_quality: int = 90
    # person centres are drawn in [-edge, 1 + edge] * size (negative: kept away from the border)
    edge: float = 0.05
    max_blobs: int = 7  # distractor ellipses in the background (0..max_blobs)


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


# ---------------------------------------------------------------------------- geometry
def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _pose(rng: np.random.Generator, center: np.ndarray, T: float) -> tuple[np.ndarray, dict]:
    """Random plausible pose. Returns keypoints ``(17, 2)`` image px and drawing extras.

    Front-facing figure: the person's left is the image right (before any lean).
    """
    kp = np.zeros((17, 2))
    lean = rng.normal(0, 10) if rng.random() < 0.85 else rng.uniform(-60, 60)
    down = _rot(np.array([0.0, 1.0]), lean)  # torso axis, neck -> pelvis
    right = _rot(np.array([1.0, 0.0]), lean)  # towards the person's left
    shoulder_w = T * rng.uniform(0.38, 0.48)
    hip_w = T * rng.uniform(0.26, 0.34)
    neck = center - down * T * 0.5
    pelvis = center + down * T * 0.5
    kp[5] = neck + right * shoulder_w / 2
    kp[6] = neck - right * shoulder_w / 2
    kp[11] = pelvis + right * hip_w / 2
    kp[12] = pelvis - right * hip_w / 2
    # arms: abduction from hanging down (+ = outward), elbow flexion folds the forearm inward/up
    for sh, el, wr, side in ((5, 7, 9, 1.0), (6, 8, 10, -1.0)):
        abd = rng.uniform(-20, 160) if rng.random() < 0.7 else rng.uniform(-40, 40)
        flex = rng.uniform(0, 140)
        up = _rot(down, -side * abd) * T * 0.55
        kp[el] = kp[sh] + up
        fore = _rot(up / np.linalg.norm(up), side * flex * (1 if rng.random() < 0.7 else -1))
        kp[wr] = kp[el] + fore * T * 0.5
    # legs: abduction (small) and knee flexion (knee bends forward = image plane, so rotate)
    for hp, kn, an, side in ((11, 13, 15, 1.0), (12, 14, 16, -1.0)):
        abd = rng.uniform(-15, 45)
        flex = rng.uniform(0, 110) * (1 if rng.random() < 0.5 else -0.3)
        th = _rot(down, -side * abd) * T * 0.75
        kp[kn] = kp[hp] + th
        sh_dir = _rot(th / np.linalg.norm(th), side * flex)
        kp[an] = kp[kn] + sh_dir * T * 0.7
    # head: radius, yaw (left/right turn moves the face marks sideways)
    r = T * rng.uniform(0.19, 0.24)
    head = neck - down * (T * 0.12 + r)
    yaw = rng.uniform(-0.35, 0.35)  # fraction of r
    face = head + right * yaw * r
    kp[0] = face + down * r * 0.25
    kp[1] = face + right * r * 0.38 - down * r * 0.12
    kp[2] = face - right * r * 0.38 - down * r * 0.12
    kp[3] = head + right * r * (0.95 - 0.25 * max(yaw, 0)) - down * r * 0.05
    kp[4] = head - right * r * (0.95 + 0.25 * min(yaw, 0)) - down * r * 0.05
    return kp, {"neck": neck, "pelvis": pelvis, "head": head, "r": r, "down": down, "right": right}


def _pts(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * _ONE).astype(np.int32).reshape(-1, 2)


def _limb(canvases, a: np.ndarray, b: np.ndarray, wa: float, wb: float, colours) -> None:
    """Filled tapered limb from a to b (widths wa, wb) with round ends, on every canvas."""
    d = b - a
    n = np.linalg.norm(d)
    if n < 1e-6:
        return
    perp = np.array([-d[1], d[0]]) / n
    quad = _pts([a + perp * wa / 2, b + perp * wb / 2, b - perp * wb / 2, a - perp * wa / 2])
    for img, col in zip(canvases, colours, strict=True):
        cv2.fillConvexPoly(img, quad, col, cv2.LINE_8, _SHIFT)
        cv2.circle(img, tuple(_pts(a)[0]), int(wa / 2 * _ONE), col, -1, cv2.LINE_8, _SHIFT)
        cv2.circle(img, tuple(_pts(b)[0]), int(wb / 2 * _ONE), col, -1, cv2.LINE_8, _SHIFT)


def _shade(colour: np.ndarray, f: float) -> tuple[int, ...]:
    return tuple(int(v) for v in np.clip(colour * f, 0, 255))


def _draw_person(img, owner, label: int, kp: np.ndarray, extra: dict, T: float, rng) -> None:
    """Draw one person on ``img`` (BGR) and write ``label`` into ``owner`` where it is drawn."""
    base = rng.uniform(40, 220, 3)
    skin = np.array([rng.uniform(60, 200)] * 3) * np.array([0.75, 0.85, 1.0])
    own = (label,)
    # legs, then torso, then arms (arms in front of the torso)
    for a, b, wa, wb in _LIMBS[4:]:
        f = 1.3 if a in _LEFT else 0.7
        _limb((img, owner), kp[a], kp[b], wa * T, wb * T, (_shade(base[::-1], f), own))
    torso = _pts([kp[6], kp[5], kp[11], kp[12]])
    cv2.fillConvexPoly(img, torso, _shade(base, 1.0), cv2.LINE_8, _SHIFT)
    cv2.fillConvexPoly(owner, torso, own, cv2.LINE_8, _SHIFT)
    # a belt-like stripe pattern on the torso, per-person texture
    if rng.random() < 0.6:
        stripe = _shade(base, rng.uniform(0.5, 0.8))
        for t in np.linspace(0.15, 0.85, int(rng.integers(2, 5))):
            p = kp[6] + (kp[12] - kp[6]) * t
            q = kp[5] + (kp[11] - kp[5]) * t
            cv2.line(
                img,
                tuple(_pts(p)[0]),
                tuple(_pts(q)[0]),
                stripe,
                max(1, int(T * 0.03)),
                cv2.LINE_8,
                _SHIFT,
            )
    # neck
    _limb((img, owner), extra["neck"], extra["head"], 0.14 * T, 0.14 * T, (_shade(skin, 0.9), own))
    for a, b, wa, wb in _LIMBS[:4]:
        f = 1.3 if a in _LEFT else 0.7
        _limb((img, owner), kp[a], kp[b], wa * T, wb * T, (_shade(base, f), own))
    # head: ellipse with face marks; left ear light blue-ish, right ear red-ish
    r = extra["r"]
    c = tuple(_pts(extra["head"])[0])
    axes = (int(r * _ONE), int(r * 1.15 * _ONE))
    ang = math.degrees(math.atan2(extra["down"][1], extra["down"][0])) - 90
    for canvas, col in ((img, tuple(int(v) for v in skin)), (owner, own)):
        cv2.ellipse(canvas, c, axes, ang, 0, 360, col, -1, cv2.LINE_8, _SHIFT)
    dot = max(1, int(r * 0.13 * _ONE))
    for k, col in ((1, (30, 30, 30)), (2, (30, 30, 30)), (0, (40, 40, 170))):
        cv2.circle(img, tuple(_pts(kp[k])[0]), dot, col, -1, cv2.LINE_8, _SHIFT)
    cv2.circle(img, tuple(_pts(kp[3])[0]), int(dot * 1.3), (220, 160, 60), -1, cv2.LINE_8, _SHIFT)
    cv2.circle(img, tuple(_pts(kp[4])[0]), int(dot * 1.3), (60, 60, 220), -1, cv2.LINE_8, _SHIFT)


def _background(rng: np.random.Generator, size: int, max_blobs: int = 7) -> np.ndarray:
    """Textured BGR background: smooth noise + stripes + blobs (no loop over pixels)."""
    g = int(rng.integers(3, 12))
    low = (
        rng.uniform(40, 215, (1, 1, 3))
        + rng.uniform(-60, 60, (g, g, 1))
        + rng.uniform(-20, 20, (g, g, 3))
    )
    low = cv2.resize(low.astype(np.float32), (32, 32), interpolation=cv2.INTER_CUBIC)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:  # stripes: sin(u + v) = sin u cos v + cos u sin v, two outer products
        ang = rng.uniform(0, np.pi)
        freq = rng.uniform(2, 25) * 2 * np.pi / size
        t = np.arange(size, dtype=np.float32)
        u = t * np.float32(np.cos(ang) * freq) + np.float32(rng.uniform(0, 6.3))
        v = t * np.float32(np.sin(ang) * freq)
        wave = np.outer(np.cos(v), np.sin(u)) + np.outer(np.sin(v), np.cos(u))
        img += wave[..., None] * rng.uniform(8, 35, 3).astype(np.float32)
    for _ in range(int(rng.integers(0, max_blobs + 1))):  # blobs
        c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        ax = (int(rng.integers(4, size // 5)), int(rng.integers(4, size // 5)))
        cv2.ellipse(
            img, c, ax, float(rng.uniform(0, 180)), 0, 360, rng.uniform(0, 255, 3).tolist(), -1
        )
    # pixel noise: uniform integers are several times cheaper to draw than normals
    amp = int(rng.integers(3, 16))
    img += rng.integers(-amp, amp + 1, (size, size, 1), dtype=np.int16)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


# ---------------------------------------------------------------------------- one image
def render_image(
    rng: np.random.Generator, cfg: SynthConfig = SynthConfig()
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render one image.

    Returns:
        ``(image BGR uint8 (S, S, 3), annotations)``; each annotation has ``keypoints``
        ``(17, 3)`` float ``[x, y, v]`` (image px; v 2 visible, 1 occluded, 0 outside),
        ``mask`` ``(S, S)`` bool of its visible pixels, ``torso`` (px).
    """
    S = cfg.size
    img = _background(rng, S, cfg.max_blobs)
    owner = np.zeros((S, S), np.uint8)  # 0 = background, i + 1 = person i
    n = int(rng.integers(cfg.min_people, cfg.max_people + 1))
    torsos = np.sort(rng.uniform(cfg.min_torso, cfg.max_torso, n) * S)  # far (small) first
    people = []
    for i, T in enumerate(torsos):
        # centre may push limbs out of the frame
        center = rng.uniform(-cfg.edge * S, (1 + cfg.edge) * S, 2)
        kp, extra = _pose(rng, center, T)
        _draw_person(img, owner, i + 1, kp, extra, T, rng)
        people.append((kp, T))
    anns = []
    for i, (kp, T) in enumerate(people):
        mask = owner == i + 1
        if not mask.any():
            continue
        xi = np.round(kp[:, 0]).astype(int)
        yi = np.round(kp[:, 1]).astype(int)
        inside = (xi >= 0) & (yi >= 0) & (xi < S) & (yi < S)
        vis = np.zeros(17)
        seen = np.zeros(17, bool)
        seen[inside] = owner[yi[inside], xi[inside]] == i + 1
        vis[inside] = np.where(seen[inside], 2, 1)
        out = np.concatenate([np.where(inside[:, None], kp, 0.0), vis[:, None]], 1)
        anns.append({"keypoints": out, "mask": mask, "torso": float(T)})
    return img, anns


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
        "iscrowd": 0,
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
    progress=None,
) -> dict[str, Path]:
    """Write ``train.json``, ``val.json`` and ``images/*.jpg`` under ``out_dir``.

    ``size`` (image side, default 512) overrides ``config.size`` when given.

    The last ``round(num_images * val_fraction)`` images form the validation split (at least
    one when ``val_fraction > 0`` and ``num_images > 1``). ``progress``: optional callable
    ``progress(n_done)`` (the CLI passes a tqdm update).

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
            "info": {"description": f"fusepose synthetic people, seed {seed}", "version": "1.0"},
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
        p.write_text(json.dumps(data))
        paths[s] = p
        logger.info("%s: %d images, %d people", p, len(data["images"]), len(data["annotations"]))
    return paths


def synthetic_image(h: int = 427, w: int = 640, seed: int = 0) -> np.ndarray:
    """A textured (H, W, 3) uint8 BGR image for when no real image is available."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)


# ---------------------------------------------------------------------------- shapes (ImageFolder)

# the classes of the drawn-shapes set; all of them keep their class under a horizontal flip
SHAPES = (
    "circle", "ring", "square", "frame", "triangle_up", "triangle_down", "plus", "cross",
    "bar", "diamond",
)  # fmt: skip


def render_shape(rng: np.random.Generator, shape: str, size: int = 48) -> np.ndarray:
    """One ``(size, size, 3)`` BGR uint8 image of ``shape`` (one of :data:`SHAPES`): random
    extent (60-80 % of the side), position (within 5 % of the centre), line width and tints
    (a dark shape on a light flat background), with pixel noise."""
    if shape not in SHAPES:
        raise DataError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    # a light background and a dark shape, each of a random tint
    img = np.empty((size, size, 3), np.uint8)
    img[:] = rng.integers(150, 256, 3).astype(np.uint8)
    colour = rng.uniform(0, 90, 3)
    col = tuple(float(c) for c in colour)
    r = rng.uniform(0.3, 0.4) * size  # half the shape's extent
    c = size / 2 + rng.uniform(-1, 1, 2) * min(0.05 * size, size / 2 - r - 1)
    t = max(1, int(round(r * rng.uniform(0.25, 0.4))))  # stroke width
    cx, cy = c

    def poly(points: list[tuple[float, float]]) -> None:
        cv2.fillPoly(img, [_pts(np.asarray(points))], col, cv2.LINE_AA, _SHIFT)

    if shape == "circle":
        cv2.circle(img, tuple(_pts(c)[0]), int(r * _ONE), col, -1, cv2.LINE_AA, _SHIFT)
    elif shape == "ring":
        cv2.circle(img, tuple(_pts(c)[0]), int((r - t / 2) * _ONE), col, t, cv2.LINE_AA, _SHIFT)
    elif shape == "square":
        poly([(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)])
    elif shape == "frame":
        a, b = _pts(c - r + t / 2)[0], _pts(c + r - t / 2)[0]
        cv2.rectangle(img, tuple(a), tuple(b), col, t, cv2.LINE_AA, _SHIFT)
    elif shape == "triangle_up":
        poly([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)])
    elif shape == "triangle_down":
        poly([(cx - r, cy - r), (cx + r, cy - r), (cx, cy + r)])
    elif shape in ("plus", "cross"):
        h = t / 2
        for w, hh in ((r, h), (h, r)):
            corners = np.array([(-w, -hh), (w, -hh), (w, hh), (-w, hh)])
            if shape == "cross":  # the plus turned by 45 degrees
                corners = corners @ np.array([[1, 1], [-1, 1]]) / math.sqrt(2)
            poly([tuple(p) for p in corners + c])
    elif shape == "bar":
        poly([(cx - r, cy - t), (cx + r, cy - t), (cx + r, cy + t), (cx - r, cy + t)])
    else:  # diamond
        poly([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)])
    noise = rng.integers(-6, 7, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def generate_shapes(
    out_dir: str | Path,
    *,
    train_per_class: int = 40,
    val_per_class: int = 10,
    size: int = 48,
    seed: int = 0,
    num_classes: int = len(SHAPES),
) -> dict[str, Path]:
    """Write an ImageFolder classification set of drawn shapes: ``out_dir/{train,val}/<shape>/
    NNNNN.png`` for the first ``num_classes`` of :data:`SHAPES` (the ``fusepose pretrain``
    smoke set). Image ``i`` of class ``k`` in split ``s`` uses
    ``np.random.default_rng([seed, s, k, i])``. Returns ``{"train": dir, "val": dir}``."""
    if not 2 <= num_classes <= len(SHAPES):
        raise DataError(f"--classes: between 2 and {len(SHAPES)}, got {num_classes}")
    if size < 16:
        raise DataError(f"--size: shape images must be at least 16 px, got {size}")
    out = Path(out_dir)
    paths = {}
    for s, (split, n) in enumerate((("train", train_per_class), ("val", val_per_class))):
        for k, shape in enumerate(SHAPES[:num_classes]):
            folder = out / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = render_shape(np.random.default_rng([seed, s, k, i]), shape, size)
                if not cv2.imwrite(str(folder / f"{i:05d}.png"), img):
                    raise DataError(f"{folder / f'{i:05d}.png'}: cannot write image")
        paths[split] = out / split
    logger.info("%s: %d classes, %d + %d images per class", out, num_classes,
                train_per_class, val_per_class)  # fmt: skip
    return paths
