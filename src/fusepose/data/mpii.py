"""MPII Human Pose (16 joints): annotation loaders and a top-down dataset.

Three annotation layouts load into one :class:`MpiiAnnotations`:

* HRNet / MMPose JSON (``mpii_val.json``): a list of ``{image, joints (16x2), joints_vis,
  center, scale}``;
* the evaluation ``.mat`` (``gt_valid.mat`` / ``detections_our_format.mat``): ``pos_gt_src``
  ``(16, 2, N)``, ``jnt_missing`` ``(16, N)``, ``headboxes_src`` ``(2, 2, N)``;
* the official release structure (``annolist(i).annorect`` with ``x1, y1, x2, y2`` head box,
  ``annopoints.point(id, x, y, is_visible)``, ``scale``, ``objpos``), at top level or under
  ``RELEASE``.

**Coordinates.** MPII files are MATLAB 1-based. The loader subtracts 1 exactly once, from
joints, head boxes and centres; everything in memory is 0-based original-image pixels (the
PCKh evaluator adds 1 back before scoring; docs/design.md). As HRNet does, the person centre is
moved down by ``15 * scale`` and the scale grown by 1.25 *before* that shift to 0-based:
``center = (objpos_x, objpos_y + 15 * s) - 1``, ``scale_px = 200 * 1.25 * s`` where ``s`` is
MPII's ``scale`` (person height / 200). ``center[0] == -1`` in a JSON entry means "unknown"
and is left unadjusted, as in HRNet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusepose.data import transforms as T
from fusepose.data.io import read_image, read_json
from fusepose.data.samples import SkipBadMixin
from fusepose.data.top_down import crop_geometry, top_down_sample
from fusepose.errors import DataError
from fusepose.geometry import InputGeometry
from fusepose.skeletons import MPII16

logger = logging.getLogger(__name__)

__all__ = ["MpiiAnnotations", "MpiiDataset", "load_mpii", "mpii_train_transforms"]

NUM_JOINTS = 16
_MAT_VARIABLES = ["pos_gt_src", "jnt_missing", "headboxes_src", "annolist", "RELEASE"]


@dataclass
class MpiiAnnotations:
    """MPII people, 0-based original-image pixels.

    joints ``(N, 16, 2)``; visible ``(N, 16)`` 1 = annotated (``joints_vis`` /
    ``1 - jnt_missing``); headboxes ``(N, 2, 2)`` ``[[x1, y1], [x2, y2]]`` or None; center
    ``(N, 2)`` and scale ``(N,)`` (crop size in pixels, HRNet-adjusted) or None; raw_scale
    ``(N,)`` MPII ``scale``; images ``list[str]`` or None; is_visible ``(N, 16)`` the MPII
    *is_visible* flag (native .mat only, -1 where not given) or None.
    """

    path: Path
    joints: np.ndarray
    visible: np.ndarray
    headboxes: np.ndarray | None = None
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    raw_scale: np.ndarray | None = None
    images: list[str] | None = None
    is_visible: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.joints)

    @property
    def num_annotated(self) -> int:
        return int(self.visible.sum())

    def head_sizes(self) -> np.ndarray:
        """PCKh normaliser ``0.6 * ||corner2 - corner1||`` ``(N,)`` (needs head boxes)."""
        if self.headboxes is None:
            raise DataError(f"{self.path}: no head boxes in this annotation file")
        return 0.6 * np.linalg.norm(self.headboxes[:, 1] - self.headboxes[:, 0], axis=1)


def _adjust_center_scale(center: np.ndarray, raw_scale: np.ndarray) -> tuple[np.ndarray, ...]:
    """HRNet: y + 15 * s and s * 1.25 for known centres, then 1-based -> 0-based."""
    center = np.asarray(center, dtype=np.float64).copy()
    raw_scale = np.asarray(raw_scale, dtype=np.float64)
    s = raw_scale.copy()
    known = center[:, 0] != -1
    center[known, 1] += 15.0 * raw_scale[known]
    s[known] *= 1.25
    return center - 1.0, s * 200.0


def _load_json(path: Path) -> MpiiAnnotations:
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(
            f"{path}: expected a JSON list of MPII people "
            f"({{image, joints, joints_vis, center, scale}}), got {type(data).__name__}"
        )
    if not data:
        raise DataError(f"{path}: no people in the MPII annotation file")
    joints, vis, centers, scales, images = [], [], [], [], []
    for i, e in enumerate(data):
        if not isinstance(e, dict):
            raise DataError(f"{path}: entry [{i}] is not an object")
        for key in ("image", "joints", "center", "scale"):
            if key not in e:
                raise DataError(f"{path}: entry [{i}] is missing required key '{key}'")
        try:
            j = np.asarray(e["joints"], dtype=np.float64)
            v = np.asarray(e.get("joints_vis", np.ones(NUM_JOINTS)), dtype=np.float64)
            c = np.asarray(e["center"], dtype=np.float64)
            s = float(e["scale"])
        except (TypeError, ValueError) as err:
            raise DataError(
                f"{path}: entry [{i}]: non-numeric joints/center/scale ({err})"
            ) from None
        if j.shape != (NUM_JOINTS, 2):
            raise DataError(
                f"{path}: entry [{i}]: joints has shape {j.shape}, expected "
                f"({NUM_JOINTS}, 2); keypoint count mismatch"
            )
        if v.shape != (NUM_JOINTS,):
            raise DataError(
                f"{path}: entry [{i}]: joints_vis has {v.size} values, expected {NUM_JOINTS}"
            )
        if c.shape != (2,) or not np.all(np.isfinite(c)) or not np.all(np.isfinite(j)):
            raise DataError(f"{path}: entry [{i}]: center must be 2 finite numbers")
        if not s > 0:
            raise DataError(f"{path}: entry [{i}]: scale must be positive, got {s}")
        joints.append(j)
        vis.append(v)
        centers.append(c)
        scales.append(s)
        images.append(str(e["image"]))
    raw_scale = np.asarray(scales)
    center, scale = _adjust_center_scale(np.stack(centers), raw_scale)
    return MpiiAnnotations(
        path=path,
        joints=np.stack(joints) - 1.0,
        visible=(np.stack(vis) > 0).astype(np.float64),
        center=center,
        scale=scale,
        raw_scale=raw_scale,
        images=images,
    )


def _field(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default) if hasattr(obj, "_fieldnames") else default


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        return list(x.ravel()) if x.dtype == object else ([] if x.size == 0 else [x])
    return [x]


def _num(x: Any) -> float | None:
    """A MATLAB scalar (int, float, '1' string, or empty array) -> float or None."""
    if isinstance(x, np.ndarray):
        if x.size == 0:
            return None
        x = x.ravel()[0]
    if isinstance(x, str):
        x = x.strip()
        return float(x) if x else None
    return float(x)


def _load_native(path: Path, annolist: Any) -> MpiiAnnotations:
    joints, vis, isvis, heads, centers, scales, images = [], [], [], [], [], [], []
    have_images = True
    for i, a in enumerate(_as_list(annolist)):
        name = _field(_field(a, "image"), "name")
        if name is None:
            have_images = False
        for r in _as_list(_field(a, "annorect")):
            pts = _as_list(_field(_field(r, "annopoints"), "point"))
            if not pts:
                continue  # people without joint annotations are not in the pose split
            j = np.zeros((NUM_JOINTS, 2))
            v = np.zeros(NUM_JOINTS)
            iv = np.full(NUM_JOINTS, -1.0)
            for p in pts:
                jid = _num(_field(p, "id"))
                if jid is None or not 0 <= jid < NUM_JOINTS:
                    raise DataError(
                        f"{path}: annolist({i + 1}): joint id {jid} out of range "
                        f"0..{NUM_JOINTS - 1}"
                    )
                jid = int(jid)
                j[jid] = (_num(_field(p, "x")), _num(_field(p, "y")))
                v[jid] = 1.0
                flag = _num(_field(p, "is_visible"))
                iv[jid] = -1.0 if flag is None else flag
            try:
                head = [
                    [_num(_field(r, "x1")), _num(_field(r, "y1"))],
                    [_num(_field(r, "x2")), _num(_field(r, "y2"))],
                ]
                obj = _field(r, "objpos")
                center = [_num(_field(obj, "x")), _num(_field(obj, "y"))]
                scale = _num(_field(r, "scale"))
            except (TypeError, ValueError) as err:
                raise DataError(f"{path}: annolist({i + 1}): malformed annorect ({err})") from None
            if any(c is None for row in head for c in row) or None in center or scale is None:
                raise DataError(
                    f"{path}: annolist({i + 1}): annorect lacks head box, objpos or scale"
                )
            joints.append(j)
            vis.append(v)
            isvis.append(iv)
            heads.append(head)
            centers.append(center)
            scales.append(scale)
            images.append(str(name))
    if not joints:
        raise DataError(f"{path}: no annotated people in annolist")
    raw_scale = np.asarray(scales, dtype=np.float64)
    center, scale = _adjust_center_scale(np.asarray(centers, dtype=np.float64), raw_scale)
    return MpiiAnnotations(
        path=path,
        joints=np.stack(joints) - 1.0,
        visible=np.stack(vis),
        headboxes=np.asarray(heads, dtype=np.float64) - 1.0,
        center=center,
        scale=scale,
        raw_scale=raw_scale,
        images=images if have_images else None,
        is_visible=np.stack(isvis),
    )


def _load_eval_mat(path: Path, mat: dict[str, Any]) -> MpiiAnnotations:
    pos = np.asarray(mat["pos_gt_src"], dtype=np.float64)
    if pos.ndim != 3 or pos.shape[:2] != (NUM_JOINTS, 2):
        raise DataError(f"{path}: pos_gt_src has shape {pos.shape}, expected (16, 2, N)")
    n = pos.shape[2]
    if "jnt_missing" not in mat:
        raise DataError(f"{path}: missing required variable 'jnt_missing'")
    missing = np.asarray(mat["jnt_missing"])
    if missing.shape != (NUM_JOINTS, n):
        raise DataError(f"{path}: jnt_missing has shape {missing.shape}, expected (16, {n})")
    heads = None
    if "headboxes_src" in mat:
        hb = np.asarray(mat["headboxes_src"], dtype=np.float64)
        if hb.shape != (2, 2, n):
            raise DataError(f"{path}: headboxes_src has shape {hb.shape}, expected (2, 2, {n})")
        heads = hb.transpose(2, 0, 1) - 1.0
    return MpiiAnnotations(
        path=path,
        joints=pos.transpose(2, 0, 1) - 1.0,
        visible=(1 - missing.T).astype(np.float64),
        headboxes=heads,
    )


def load_mpii(ann_file: str | Path, image_list: str | Path | None = None) -> MpiiAnnotations:
    """Load MPII annotations (``.json`` HRNet format or ``.mat``; see the module docstring).

    ``image_list``: optional text file with one image name per person (e.g. the stacked
    hourglass ``valid_images.txt``) for ``.mat`` files that carry no image names.
    """
    path = Path(ann_file)
    if path.suffix.lower() == ".json":
        ann = _load_json(path)
    elif path.suffix.lower() == ".mat":
        import scipy.io

        if not path.is_file():
            raise DataError(f"{path}: annotation file not found")
        try:
            mat = scipy.io.loadmat(
                str(path),
                squeeze_me=True,
                struct_as_record=False,
                variable_names=_MAT_VARIABLES,  # skip predictions stored beside the GT
            )
        except Exception as e:  # noqa: BLE001 - scipy raises several types for bad files
            raise DataError(f"{path}: not a readable MATLAB .mat file ({e})") from None
        if "pos_gt_src" in mat:
            ann = _load_eval_mat(path, mat)
        else:
            annolist = mat.get("annolist")
            if annolist is None and "RELEASE" in mat:
                annolist = _field(mat["RELEASE"], "annolist")
            if annolist is None:
                raise DataError(
                    f"{path}: neither 'pos_gt_src' nor 'annolist' found; not an "
                    "MPII annotation file"
                )
            ann = _load_native(path, annolist)
    else:
        raise DataError(f"{path}: MPII annotations must be .json or .mat")
    if image_list is not None:
        lp = Path(image_list)
        try:
            names = [ln.strip() for ln in lp.read_text().splitlines() if ln.strip()]
        except OSError as e:
            raise DataError(f"{lp}: cannot read image list ({e.strerror or e})") from None
        if len(names) != len(ann):
            raise DataError(f"{lp}: {len(names)} image names for {len(ann)} people in {path}")
        ann.images = names
    logger.info("%s: %d people, %d annotated joints", path, len(ann), ann.num_annotated)
    return ann


def mpii_train_transforms(
    input_size: Sequence[int] = (256, 256),
    rng: np.random.Generator | None = None,
    *,
    flip_prob: float = 0.5,
    rotation: float = 30.0,
    scale_range: Sequence[float] = (0.75, 1.25),
) -> T.Compose:
    """MPII top-down augmentation (docs/reconstruction.md#sfm-recipe): flip p = 0.5, scale
    U[0.75, 1.25], rotation U[-30, 30] deg with p = 0.6 (HRNet), crop to ``input_size (H, W)``;
    no half body (HRNet MPII)."""
    return T.Compose(
        [
            T.RandomFlip(MPII16.flip_index, prob=flip_prob, rng=rng),
            T.RandomAffine(
                tuple(input_size),
                max_rotation=rotation,
                scale_range=scale_range,
                max_shift=0.0,
                rot_prob=0.6,
                rng=rng,
            ),
        ]
    )


class MpiiDataset(SkipBadMixin, torch.utils.data.Dataset):
    """Top-down MPII samples (one person each), like :class:`CocoTopDownDataset`.

    Sample: ``image`` ``(3, H, W)``; ``keypoints`` ``(16, 3)`` input pixels ``[x, y, visible]``;
    codec ``heatmaps``/``target_weight`` when ``codec`` is given; ``meta`` with ``index``,
    ``image_id`` (image name), ``path``, ``matrix``, ``center``, ``scale`` (0-based original
    pixels), ``headbox`` ``(2, 2)`` 0-based (or None) and ``flipped``.

    ``geometry``: the ``crop`` :class:`~fusepose.geometry.InputGeometry` a model description
    holds; it replaces ``input_size (H, W)`` when given.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        codec: Any = None,
        input_size: Sequence[int] = (256, 256),
        train: bool = True,
        transforms: Callable[[dict], dict] | None = None,
        skip_bad: bool = False,
        image_list: str | Path | None = None,
        rng: np.random.Generator | None = None,
        *,
        flip_prob: float = 0.5,
        rotation: float = 30.0,
        scale_range: Sequence[float] = (0.75, 1.25),
        max_images: int = 0,
        geometry: InputGeometry | None = None,
    ):
        self.ann = load_mpii(ann_file, image_list)
        if self.ann.images is None or self.ann.center is None:
            raise DataError(
                f"{ann_file}: has no image names or person centres (an evaluation-only file); "
                "pass image_list=... or use the JSON / native annotations"
            )
        self.image_dir = Path(image_dir)
        self.codec = codec
        self.geometry = crop_geometry(ann_file, input_size, geometry)
        self.input_size = self.geometry.size
        self.train = bool(train)
        self.skip_bad = bool(skip_bad)
        self.num_skipped = 0
        self._bad: set[int] = set()
        self.num_people = min(len(self.ann), max_images) if max_images else len(self.ann)
        if transforms is None and self.train:
            transforms = mpii_train_transforms(
                self.input_size,
                rng,
                flip_prob=flip_prob,
                rotation=rotation,
                scale_range=scale_range,
            )
        self.transforms = transforms

    def __len__(self) -> int:
        return self.num_people

    def _load(self, i: int) -> dict[str, Any]:
        a = self.ann
        path = self.image_dir / a.images[i]
        img = read_image(path)
        H, W = self.input_size
        side = float(a.scale[i])
        # square MPII region grown to the input aspect ratio (HRNet scales by width only)
        _, scale = T.box_to_center_scale((0.0, 0.0, side, side), W / H, padding=1.0)
        center = a.center[i].copy()
        kp = np.concatenate([a.joints[i], a.visible[i][:, None]], axis=1)
        s, out = top_down_sample(
            img, kp, center, scale, self.input_size, self.transforms, self.train, self.codec
        )
        out["meta"] = {
            "index": i,
            "image_id": a.images[i],
            "path": str(path),
            "matrix": np.asarray(s["matrix"], dtype=np.float64),
            "center": center,
            "scale": scale,
            "headbox": None if a.headboxes is None else a.headboxes[i].copy(),
            "flipped": bool(s.get("flipped", False)),
        }
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._load_or_skip(i, self._load)
