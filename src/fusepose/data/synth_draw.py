"""Drawing a synthetic person (:mod:`fusepose.data.synth_body`) with the painter's algorithm:
far parts first, every pixel also written to an id canvas (``person * 32 + part``) from which
:func:`fusepose.data.synth.render_people` reads each keypoint's visibility.

Nothing is drawn differently on the left and the right side: what tells left from right is only
what tells it on a real person (face, eyes and nose in front, hair at the back, a button placket
on the shirt front, feet pointing forwards, near limbs in front of far ones).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from fusepose.data.synth_body import (
    _HEAD_R,
    Colour,
    Person,
    _head_frame,
    _projected,
    _Projector,
)

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
