"""The synthetic person: an articulated 3-D body with human proportions, seen from any yaw.

Torso length ``T`` (neck to pelvis) sets the scale: upper arm 0.55 T, forearm 0.5 T, thigh
0.75 T, shin 0.7 T, head radius 0.21 T, shoulder joints about 0.68 T and hip joints 0.4 T apart,
chest 0.42 T deep, limbs 0.11-0.3 T thick; the widths and the limb thickness (``build``) vary per
person. Body-frame coordinates are ``(a, b, c)``: ``a`` towards the person's own left, ``b``
down, ``c`` forwards. A person turned by ``yaw`` (0 = facing the camera, 180 = back to it, +90 =
facing image right) is projected orthographically::

    x = a cos(yaw) + c sin(yaw)        depth z = a sin(yaw) - c cos(yaw)   (z > 0: farther)

then leaned in the image plane. So a front view puts the person's left on the image right, a
back view on the image left, and a side view hides the far side behind the torso.
:mod:`fusepose.data.synth_draw` draws it; :mod:`fusepose.data.synth` composes images.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Colour", "Person", "mirror_person", "person_keypoints", "random_person"]

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
