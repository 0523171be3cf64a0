"""Procedurally rendered multi-person images with COCO-17 keypoints, in COCO format.

A person is an articulated 3-D body with human proportions, seen from any direction and drawn
with the painter's algorithm. Torso length ``T`` (neck to pelvis) sets the scale: upper arm
0.55 T, forearm 0.5 T, thigh 0.75 T, shin 0.7 T, head radius 0.21 T, shoulder joints about
0.68 T and hip joints 0.4 T apart, chest 0.42 T deep, limbs 0.11-0.3 T thick; the widths and
the limb thickness (``build``) vary per person. Body-frame coordinates are
``(a, b, c)``: ``a`` towards the person's own left, ``b`` down, ``c`` forwards. A person
turned by ``yaw`` (0 = facing the camera, 180 = back to it, +90 = facing image right) is
projected orthographically::

    x = a cos(yaw) + c sin(yaw)        depth z = a sin(yaw) - c cos(yaw)   (z > 0: farther)

then leaned in the image plane. So a front view puts the person's left on the image right, a
back view on the image left, and a side view hides the far side behind the torso.

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
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterator, Sequence
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

_SHIFT = 4  # cv2 sub-pixel drawing: coordinates * 16
_ONE = 1 << _SHIFT
_PARTS = 32  # id canvas: person p (1-based), part q -> p * _PARTS + q

# part ids; per side: upper arm, forearm (+ hand), thigh, shin, foot (left +0, right +5)
_TORSO, _HEAD, _NECK = 1, 2, 3
_UPPER, _FORE, _THIGH, _SHIN, _FOOT = 4, 5, 6, 7, 8
# the parts each keypoint belongs to (v = 2 when one of them is visible at its pixel)
_OWN_PARTS: tuple[tuple[int, ...], ...] = (
    (_HEAD,), (_HEAD,), (_HEAD,), (_HEAD,), (_HEAD,),
    (_TORSO, _UPPER), (_TORSO, _UPPER + 5),
    (_UPPER, _FORE), (_UPPER + 5, _FORE + 5),
    (_FORE,), (_FORE + 5,),
    (_TORSO, _THIGH), (_TORSO, _THIGH + 5),
    (_THIGH, _SHIN), (_THIGH + 5, _SHIN + 5),
    (_SHIN, _FOOT), (_SHIN + 5, _FOOT + 5),
)  # fmt: skip
_CROWD_ID = 2047  # owner index of the figures of an iscrowd region (ids fit in uint16)

_HEAD_R = 0.21  # head radius / T
# face points on the unit head sphere, head frame (a left, b down, c forward)
_FACE = np.array(
    [
        [0.0, 0.18, 0.98],  # nose
        [0.36, -0.16, 0.92],  # left eye
        [-0.36, -0.16, 0.92],  # right eye
        [0.99, -0.02, -0.08],  # left ear
        [-0.99, -0.02, -0.08],  # right ear
    ]
)
_FACE /= np.linalg.norm(_FACE, axis=1, keepdims=True)
_FACE_LABELLED = 0.3  # a face point is labelled when its depth on the head sphere is < this


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


# ---------------------------------------------------------------------------- the person
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Person:
    """One figure: where it stands, which way it faces, its pose, build and clothes.

    ``center``: torso centre (image px); ``torso``: neck-to-pelvis length ``T`` (px);
    ``yaw``: body direction (degrees, see the module docstring); ``lean``: image-plane tilt
    (degrees, clockwise on screen); ``head_yaw`` / ``head_tilt``: head turn and nod relative
    to the body. ``arms``: (left, right) of (abduction, flexion, elbow flexion, elbow twist)
    degrees; ``legs``: (left, right) of (abduction, flexion, knee flexion). Widths are
    fractions of ``T``. Colours are BGR.
    """

    center: tuple[float, float]
    torso: float
    yaw: float = 0.0
    lean: float = 0.0
    head_yaw: float = 0.0
    head_tilt: float = 0.0
    shoulder: float = 0.68
    hip: float = 0.4
    chest: float = 0.42
    build: float = 1.0
    arms: tuple[tuple[float, float, float, float], ...] = ((10.0, 0.0, 10.0, 0.0),) * 2
    legs: tuple[tuple[float, float, float], ...] = ((5.0, 0.0, 5.0),) * 2
    shirt: Colour = (160, 90, 40)
    pants: Colour = (60, 50, 40)
    skin: Colour = (120, 150, 200)
    hair: Colour = (30, 30, 40)
    shoes: Colour = (20, 20, 20)
    long_sleeves: bool = False
    stripes: int = 0  # horizontal bands on the shirt (0 = plain)


def _colour(rng: np.random.Generator, lo: float, hi: float) -> Colour:
    c = rng.uniform(lo, hi, 3)
    return (int(c[0]), int(c[1]), int(c[2]))


def random_person(
    rng: np.random.Generator,
    center: Sequence[float],
    torso: float,
    *,
    views: Sequence[float] = (0.4, 0.3, 0.3),
    build: Sequence[float] = (0.8, 1.25),
) -> Person:
    """A random plausible person at ``center`` (image px) with torso length ``torso`` (px)."""
    w = np.asarray(views, np.float64)
    view = int(rng.choice(3, p=w / w.sum()))
    if view == 0:
        yaw = rng.uniform(-35, 35)
    elif view == 1:
        yaw = 180 + rng.uniform(-35, 35)
    else:
        yaw = rng.uniform(55, 125) * (1 if rng.random() < 0.5 else -1)
    lean = rng.normal(0, 8) if rng.random() < 0.85 else rng.uniform(-55, 55)

    def arm() -> tuple[float, float, float, float]:
        if rng.random() < 0.6:  # relaxed: close to the body
            return (rng.uniform(-5, 40), rng.uniform(-30, 60), rng.uniform(0, 120),
                    rng.uniform(0, 60))  # fmt: skip
        return (rng.uniform(-10, 170), rng.uniform(-40, 150), rng.uniform(0, 150),
                rng.uniform(0, 90))  # fmt: skip

    def leg() -> tuple[float, float, float]:
        if rng.random() < 0.75:  # standing / walking
            return (rng.uniform(-5, 20), rng.uniform(-25, 35), rng.uniform(0, 40))
        return (rng.uniform(-10, 40), rng.uniform(-20, 100), rng.uniform(0, 130))

    skin_tone = rng.uniform(60, 230)
    return Person(
        center=(float(center[0]), float(center[1])),
        torso=float(torso),
        yaw=float(yaw),
        lean=float(lean),
        head_yaw=float(rng.uniform(-40, 40)),
        head_tilt=float(rng.uniform(-15, 15)),
        shoulder=float(rng.uniform(0.6, 0.76)),
        hip=float(rng.uniform(0.34, 0.46)),
        chest=float(rng.uniform(0.36, 0.5)),
        build=float(rng.uniform(*build)),
        arms=(arm(), arm()),
        legs=(leg(), leg()),
        shirt=_colour(rng, 30, 230),
        pants=_colour(rng, 20, 160),
        skin=(int(skin_tone * 0.7), int(skin_tone * 0.82), int(min(255, skin_tone * 1.05))),
        hair=_colour(rng, 10, 90) if rng.random() < 0.8 else _colour(rng, 90, 200),
        shoes=_colour(rng, 10, 80),
        long_sleeves=bool(rng.random() < 0.5),
        stripes=int(rng.integers(2, 5)) if rng.random() < 0.3 else 0,
    )


def mirror_person(p: Person, width: int) -> Person:
    """The person seen in a mirror: ``x -> width - 1 - x`` (what ``cv2.flip(img, 1)`` does).

    Its yaw, lean and head turn change sign and its left and right limbs swap: the body part
    that was the left arm is the mirrored person's right arm. Rendering it gives the flipped
    image, and its keypoints are the flipped keypoints permuted by the COCO flip pairs."""
    return dataclasses.replace(
        p,
        center=(width - 1.0 - p.center[0], p.center[1]),
        yaw=-p.yaw,
        lean=-p.lean,
        head_yaw=-p.head_yaw,
        arms=(p.arms[1], p.arms[0]),
        legs=(p.legs[1], p.legs[0]),
    )


# ---------------------------------------------------------------------------- geometry
def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _bend(d: np.ndarray, towards: np.ndarray, deg: float) -> np.ndarray:
    """``d`` (unit) turned by ``deg`` towards ``towards`` (orthogonalised against ``d``)."""
    e = towards - np.dot(towards, d) * d
    if np.linalg.norm(e) < 1e-6:  # towards is parallel to d: bend up instead
        e = np.array([0.0, -1.0, 0.0]) - d[1] * d
        if np.linalg.norm(e) < 1e-6:
            e = np.array([0.0, 0.0, 1.0])
    e = _unit(e)
    a = math.radians(deg)
    return math.cos(a) * d + math.sin(a) * e


def _swing(side: float, abd: float, flex: float) -> np.ndarray:
    """Unit direction of a limb hanging down, raised ``abd`` degrees outwards and ``flex``
    degrees forwards (body frame)."""
    a, f = math.radians(abd), math.radians(flex)
    return np.array([side * math.sin(a), math.cos(a) * math.cos(f), math.cos(a) * math.sin(f)])


def _body_points(p: Person) -> dict[str, np.ndarray]:
    """Body-frame 3-D points (units of T, origin at the torso centre)."""
    pts: dict[str, np.ndarray] = {
        "neck": np.array([0.0, -0.5, 0.0]),
        "pelvis": np.array([0.0, 0.5, 0.0]),
    }
    for side, name, (abd, flex, elbow, twist) in ((1.0, "l", p.arms[0]), (-1.0, "r", p.arms[1])):
        sh = np.array([side * p.shoulder / 2, -0.47, 0.0])
        up = _swing(side, abd, flex)
        t = math.radians(twist)
        fore = _bend(up, np.array([-side * 0.3, -math.sin(t), math.cos(t)]), elbow)
        pts[f"{name}_sh"] = sh
        pts[f"{name}_el"] = sh + up * 0.55
        pts[f"{name}_wr"] = pts[f"{name}_el"] + fore * 0.5
        pts[f"{name}_hand"] = pts[f"{name}_wr"] + fore * 0.09
    for side, name, (abd, flex, knee) in ((1.0, "l", p.legs[0]), (-1.0, "r", p.legs[1])):
        hp = np.array([side * p.hip / 2, 0.5, 0.0])
        th = _swing(side, abd, flex)
        shin = _bend(th, np.array([0.0, 0.0, -1.0]), knee)
        pts[f"{name}_hp"] = hp
        pts[f"{name}_kn"] = hp + th * 0.75
        pts[f"{name}_an"] = pts[f"{name}_kn"] + shin * 0.7
        pts[f"{name}_toe"] = pts[f"{name}_an"] + _unit(np.array([0.0, 0.35, 1.0])) * 0.2
    r = _HEAD_R
    pts["head"] = np.array([0.0, -0.5 - 0.1 - r, 0.0])
    return pts


class _Projector:
    """Body frame (units of T) -> image px ``(x, y)`` and depth ``z`` (px, larger = farther)."""

    def __init__(self, p: Person) -> None:
        y = math.radians(p.yaw)
        self.cy, self.sy = math.cos(y), math.sin(y)
        lean = math.radians(p.lean)
        self.rot = np.array([[math.cos(lean), -math.sin(lean)], [math.sin(lean), math.cos(lean)]])
        self.c = np.asarray(p.center, np.float64)
        self.T = p.torso

    def __call__(self, pt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cy, sy = self.cy, self.sy
        pt = np.asarray(pt, np.float64)
        x = pt[..., 0] * cy + pt[..., 2] * sy
        z = pt[..., 0] * sy - pt[..., 2] * cy
        xy = np.stack([x, pt[..., 1]], -1) @ self.rot.T
        return self.c + xy * self.T, z * self.T


def _head_frame(p: Person) -> tuple[float, float, float]:
    """cos / sin of the head's total yaw and the nod angle (radians)."""
    hy = math.radians(p.yaw + p.head_yaw)
    return math.cos(hy), math.sin(hy), math.radians(p.head_tilt)


def _face_points(p: Person) -> np.ndarray:
    """The 5 face points on the unit head sphere after the nod, head frame ``(5, 3)``."""
    tilt = math.radians(p.head_tilt)
    ct, st = math.cos(tilt), math.sin(tilt)
    f = _FACE.copy()
    # nod about the head's lateral axis (+ = chin down)
    b, c = f[:, 1] * ct - f[:, 2] * st, f[:, 1] * st + f[:, 2] * ct
    f[:, 1], f[:, 2] = b, c
    return f


_BODY_KEYPOINTS = ("l_sh", "r_sh", "l_el", "r_el", "l_wr", "r_wr",
                   "l_hp", "r_hp", "l_kn", "r_kn", "l_an", "r_an")  # fmt: skip


def _projected(p: Person, proj: _Projector) -> tuple[dict[str, np.ndarray], dict, tuple]:
    """Body-frame points, their projections ``name -> (xy (2,), z)`` and the keypoints
    ``(xy (17, 2), depth (17,), labelled (17,))`` of :func:`person_keypoints`."""
    pts = _body_points(p)
    names = list(pts)
    xy_all, z_all = proj(np.stack([pts[n] for n in names]))
    P = {n: (xy_all[i], float(z_all[i])) for i, n in enumerate(names)}
    face = _face_points(p)  # head frame, unit sphere
    hc, hs, _ = _head_frame(p)
    head_xy, head_z = P["head"]
    fx = face[:, 0] * hc + face[:, 2] * hs
    fz = face[:, 0] * hs - face[:, 2] * hc  # depth on the unit sphere (< 0: towards camera)
    r = _HEAD_R * p.torso
    xy_f = head_xy + (np.stack([fx, face[:, 1]], -1) @ proj.rot.T) * r
    xy = np.concatenate([xy_f, np.stack([P[n][0] for n in _BODY_KEYPOINTS])])
    depth = np.concatenate([head_z + fz * r, [P[n][1] for n in _BODY_KEYPOINTS]])
    labelled = np.ones(17, bool)
    labelled[:5] = fz < _FACE_LABELLED
    return pts, P, (xy, depth, labelled)


def person_keypoints(p: Person) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCO-17 keypoints of ``p`` before visibility: ``xy (17, 2)`` image px, ``depth (17,)``
    px and ``labelled (17,)`` bool (face points on the far side of the head are not)."""
    return _projected(p, _Projector(p))[2]


# ---------------------------------------------------------------------------- drawing
def _pts(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * _ONE).astype(np.int32).reshape(-1, 2)


def _shade(colour: Colour, f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, v * f))) for v in colour)  # type: ignore[return-value]


def _limb(img, ids, pid: int, a, b, wa: float, wb: float, colour, part: int) -> None:
    """Filled tapered limb from a to b (widths wa, wb px) with round ends (plain floats: this
    runs a dozen times per person)."""
    ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    dx, dy = bx - ax, by - ay
    n = math.hypot(dx, dy)
    px, py = (-dy / n, dx / n) if n > 1e-6 else (1.0, 0.0)
    ha, hb = wa / 2, wb / 2
    quad = np.array(
        [[ax + px * ha, ay + py * ha], [bx + px * hb, by + py * hb],
         [bx - px * hb, by - py * hb], [ax - px * ha, ay - py * ha]]
    )  # fmt: skip
    quad = np.round(quad * _ONE).astype(np.int32)
    pa = (round(ax * _ONE), round(ay * _ONE))
    pb = (round(bx * _ONE), round(by * _ONE))
    ra, rb = max(1, int(ha * _ONE)), max(1, int(hb * _ONE))
    for canvas, col in ((img, colour), (ids, (pid * _PARTS + part,))):
        cv2.fillConvexPoly(canvas, quad, col, cv2.LINE_8, _SHIFT)
        cv2.circle(canvas, pa, ra, col, -1, cv2.LINE_8, _SHIFT)
        cv2.circle(canvas, pb, rb, col, -1, cv2.LINE_8, _SHIFT)


def _draw_head(
    img, ids, pid: int, p: Person, proj: _Projector, centre, r: float, kps: tuple, head_z: float
) -> None:
    """The head as a shaded sphere: face skin in front, hair on the back and the crown, eyes
    and nose on the visible face; rasterised on its bounding box."""
    S_h, S_w = img.shape[:2]
    x0, x1 = max(0, int(math.floor(centre[0] - r - 1))), min(S_w, int(math.ceil(centre[0] + r + 2)))
    y0, y1 = max(0, int(math.floor(centre[1] - r - 1))), min(S_h, int(math.ceil(centre[1] + r + 2)))
    if x1 <= x0 or y1 <= y0:
        return
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    # camera-frame unit-sphere coordinates, un-leaned into the body's vertical frame
    dx, dy = (gx - centre[0]) / r, (gy - centre[1]) / r
    inv = proj.rot.T
    u = dx * inv[0, 0] + dy * inv[0, 1]
    v = dx * inv[1, 0] + dy * inv[1, 1]
    rr = u * u + v * v
    inside = rr <= 1.0
    if not inside.any():
        return
    zc = -np.sqrt(np.clip(1.0 - rr, 0.0, 1.0))  # the visible hemisphere faces the camera
    hc, hs, tilt = _head_frame(p)
    # camera -> head frame: the yaw matrix [[c, s], [s, -c]] is its own inverse
    a = u * hc + zc * hs
    c = u * hs - zc * hc
    ct, st = math.cos(tilt), math.sin(tilt)
    b = v * ct + c * st  # un-nod
    c2 = -v * st + c * ct
    hair = (c2 < -0.05) | (b < -0.55 + 0.25 * np.clip(-c2, 0, 1)) | ((b < -0.3) & (np.abs(a) > 0.8))
    light = 0.7 + 0.3 * (-zc)
    skin = np.asarray(p.skin, np.float64)
    hair_c = np.asarray(p.hair, np.float64)
    col = np.where(hair[..., None], hair_c, skin) * light[..., None]
    region = img[y0:y1, x0:x1]
    region[inside] = np.clip(col[inside], 0, 255).astype(np.uint8)
    ids[y0:y1, x0:x1][inside] = pid * _PARTS + _HEAD
    # eyes and nose where they face the camera (front and three-quarter views)
    xy, depth, _ = kps
    dot = max(1, int(r * 0.14 * _ONE))
    for k, colour in ((1, (25, 25, 25)), (2, (25, 25, 25)), (0, _shade(p.skin, 0.6))):
        if (depth[k] - head_z) / r < -0.2:
            cv2.circle(img, tuple(_pts(xy[k])[0]), dot, colour, -1, cv2.LINE_8, _SHIFT)


def _draw_person(img, ids, pid: int, p: Person) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``p`` on ``img`` (BGR uint8) and its part ids (``pid * 32 + part``) into ``ids``;
    returns its :func:`person_keypoints`."""
    T = p.torso
    proj = _Projector(p)
    pts, P, kps = _projected(p, proj)
    bw = p.build * T
    shirt, pants, skin = p.shirt, p.pants, p.skin
    parts: list[tuple[float, Any]] = []  # (depth, draw callable)

    def shade_at(z: float) -> float:  # nearer parts a little lighter (mirror-symmetric)
        return float(np.clip(1.0 - 0.5 * z / T, 0.75, 1.2))

    for name, off in (("l", 0), ("r", 5)):
        limbs = (
            ("sh", "el", 0.21, 0.16, shirt, _UPPER),
            ("el", "wr", 0.16, 0.11, shirt if p.long_sleeves else skin, _FORE),
            ("wr", "hand", 0.13, 0.12, skin, _FORE),
            ("hp", "kn", 0.3, 0.2, pants, _THIGH),
            ("kn", "an", 0.2, 0.13, pants, _SHIN),
            ("an", "toe", 0.13, 0.11, p.shoes, _FOOT),
        )
        for j0, j1, w0, w1, colour, part in limbs:
            (a, za), (b, zb) = P[f"{name}_{j0}"], P[f"{name}_{j1}"]
            z = (za + zb) / 2 - 0.03 * T  # limbs just in front of the torso surface
            parts.append((z, (a, b, w0 * bw, w1 * bw, _shade(colour, shade_at(z)), part + off)))

    # torso: the silhouette of a box (shoulders and hips, chest deep), seen from the yaw
    corners = []
    for n, depth in (("l_sh", p.chest), ("r_sh", p.chest), ("l_hp", 0.8 * p.chest),
                     ("r_hp", 0.8 * p.chest)):  # fmt: skip
        for s in (-0.5, 0.5):
            corners.append(pts[n] + np.array([0.0, 0.0, s * depth]))
    hull = cv2.convexHull(_pts(proj(np.stack(corners))[0]))
    front = proj.cy  # > 0: the chest faces the camera
    neck_xy, head_xy = P["neck"][0], P["head"][0]
    r = _HEAD_R * T

    def draw_torso() -> None:
        col = _shade(shirt, 1.0)
        cv2.fillConvexPoly(img, hull, col, cv2.LINE_8, _SHIFT)
        cv2.fillConvexPoly(ids, hull, (pid * _PARTS + _TORSO,), cv2.LINE_8, _SHIFT)
        lw = max(1, int(T * 0.035))
        for t in np.linspace(0.2, 0.85, p.stripes) if p.stripes else []:
            a_ = proj(np.array([p.shoulder / 2 + 0.05, -0.5 + t, 0.0]))[0]
            b_ = proj(np.array([-p.shoulder / 2 - 0.05, -0.5 + t, 0.0]))[0]
            # a stripe across the visible width, kept on the torso by the hull test below
            _clipped_line(img, ids, pid, a_, b_, _shade(shirt, 0.6), lw)
        if front > 0.25:  # the shirt front: a V collar and a button placket on the centre line
            fr = p.chest / 2
            top, mid = pts["neck"] + [0, 0.04, fr], pts["neck"] + [0, 0.3, fr]
            bottom = pts["pelvis"] + [0, -0.05, 0.8 * fr]
            placket = _shade(shirt, 0.45)
            for side in (1.0, -1.0):
                cv2.line(img, tuple(_pts(proj(top + [side * 0.12, -0.02, 0])[0])[0]),
                         tuple(_pts(proj(mid)[0])[0]), placket, lw, cv2.LINE_8, _SHIFT)  # fmt: skip
            cv2.line(img, tuple(_pts(proj(mid)[0])[0]), tuple(_pts(proj(bottom)[0])[0]),
                     placket, lw, cv2.LINE_8, _SHIFT)  # fmt: skip

    def draw_head() -> None:
        _limb(img, ids, pid, neck_xy, head_xy, 0.2 * bw, 0.2 * bw, _shade(skin, 0.85), _NECK)
        _draw_head(img, ids, pid, p, proj, head_xy, r, kps, P["head"][1])

    parts.append((0.0, draw_torso))
    parts.append((-0.01 * T, draw_head))
    for _z, what in sorted(parts, key=lambda zw: -zw[0]):  # far first
        if callable(what):
            what()
        else:
            _limb(img, ids, pid, *what)
    return kps


def _clipped_line(img, ids, pid: int, a, b, colour, width: int) -> None:
    """A line drawn only over this person's torso pixels (``ids``)."""
    h, w = img.shape[:2]
    lo = np.floor(np.minimum(a, b) - width).astype(int)
    hi = np.ceil(np.maximum(a, b) + width + 1).astype(int)
    x0, y0 = max(0, lo[0]), max(0, lo[1])
    x1, y1 = min(w, hi[0]), min(h, hi[1])
    if x1 <= x0 or y1 <= y0:
        return
    layer = np.zeros((y1 - y0, x1 - x0), np.uint8)
    off = np.array([x0, y0], np.float64)
    cv2.line(layer, tuple(_pts(a - off)[0]), tuple(_pts(b - off)[0]), (1,), width,
             cv2.LINE_8, _SHIFT)  # fmt: skip
    sel = (layer > 0) & (ids[y0:y1, x0:x1] == pid * _PARTS + _TORSO)
    img[y0:y1, x0:x1][sel] = colour


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
