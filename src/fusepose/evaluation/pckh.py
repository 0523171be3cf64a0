"""MPII PCKh (the official protocol, as in HRNet / MMPose / bearpaw pytorch-pose).

Ground truth: the ``gt_valid.mat`` / ``mpii_gt_val.mat`` / ``detections_our_format.mat`` layout
(``dataset_joints`` 1x16 names, ``jnt_missing`` 16xN, ``pos_gt_src`` 16x2xN,
``headboxes_src`` 2x2xN), MATLAB 1-based pixel coordinates.

Scoring: a joint is correct when ``||pred - gt|| <= thr * head_size`` with
``head_size = 0.6 x ||headbox corner 2 - corner 1||``; only annotated joints
(``jnt_missing == 0``) count. Group scores average the left and right joint (unweighted,
as HRNet/MMPose print them); ``Head`` is the head-top joint. Means leave out pelvis and thorax:

- ``Mean``: count-weighted over the other 14 joints (correct / annotated), HRNet/MMPose ``Mean``;
- ``Mean_unweighted``: the plain mean of the 14 per-joint PCKh values (bearpaw pytorch-pose);
- ``Mean@0.1``: count-weighted at threshold exactly 0.1 (MMPose ``PCK@0.1``). HRNet's own
  ``Mean@0.1`` is ``pckAll[11]`` of ``np.arange(0, 0.51, 0.01)``, i.e. threshold **0.11**, so it
  reads higher than this true PCKh@0.1.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.errors import DataError, ResultsError

logger = logging.getLogger(__name__)

NUM_JOINTS = 16
HEAD_SIZE_FACTOR = 0.6  # official SC_BIAS
MPII_JOINT_NAMES = (
    "rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri",
)  # fmt: skip
# Printed groups -> (right, left) joint indices (MPII order); Head is the head top alone.
GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (9,),
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}
EXCLUDED_FROM_MEAN = (6, 7)  # pelvis, thorax
PCKH_KEYS = (*GROUPS, "Mean", "Mean_unweighted", "Mean@0.1")


@dataclass(frozen=True)
class MpiiGT:
    """MPII validation ground truth, MATLAB 1-based pixels.

    joints: (N, 16, 2); annotated: (N, 16) bool; head_size: (N,) pixels (0.6 x head-box
    diagonal); joint_names: the file's 16 names.
    """

    joints: np.ndarray
    annotated: np.ndarray
    head_size: np.ndarray
    joint_names: tuple[str, ...]
    source: str = "<gt>"

    def __len__(self) -> int:
        return len(self.joints)


def _loadmat(path: Path, what: str, err: type[Exception]) -> dict[str, Any]:
    from scipy.io import loadmat

    if not path.is_file():
        raise err(f"{path}: {what} file not found")
    try:
        return loadmat(str(path))
    except NotImplementedError:
        # MATLAB v7.3 files are HDF5.
        import h5py

        try:
            with h5py.File(path, "r") as f:
                # h5py reads MATLAB arrays transposed (column-major on disk).
                return {k: np.asarray(f[k]).T for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        except OSError as e:
            raise err(f"{path}: not a readable .mat file ({e})") from None
    except Exception as e:  # noqa: BLE001 - scipy's reader raises many kinds on a bad file
        raise err(f"{path}: not a readable .mat file ({type(e).__name__}: {e})") from None


def _joint_names(raw: Any) -> tuple[str, ...]:
    try:
        flat = np.asarray(raw, dtype=object).reshape(-1)
        names = tuple(str(np.asarray(n).reshape(-1)[0]) for n in flat)
    except (IndexError, ValueError, TypeError):
        return MPII_JOINT_NAMES
    return names if len(names) == NUM_JOINTS else MPII_JOINT_NAMES


def load_mpii_gt(path: str | os.PathLike) -> MpiiGT:
    """Read ``gt_valid.mat``-style MPII validation GT (see module docstring) into :class:`MpiiGT`."""
    path = Path(path)
    m = _loadmat(path, "MPII ground-truth", DataError)
    for key in ("jnt_missing", "pos_gt_src", "headboxes_src"):
        if key not in m:
            raise DataError(
                f"{path}: missing field {key!r} (expected the gt_valid.mat layout: dataset_joints, "
                "jnt_missing, pos_gt_src, headboxes_src)"
            )
    pos = np.asarray(m["pos_gt_src"], dtype=np.float64)
    missing = np.asarray(m["jnt_missing"])
    boxes = np.asarray(m["headboxes_src"], dtype=np.float64)
    if pos.ndim != 3 or pos.shape[:2] != (NUM_JOINTS, 2):
        raise DataError(f"{path}: pos_gt_src has shape {pos.shape}, expected (16, 2, N)")
    n = pos.shape[2]
    if missing.shape != (NUM_JOINTS, n):
        raise DataError(f"{path}: jnt_missing has shape {missing.shape}, expected (16, {n})")
    if boxes.shape != (2, 2, n):
        raise DataError(f"{path}: headboxes_src has shape {boxes.shape}, expected (2, 2, {n})")
    head_size = np.linalg.norm(boxes[1] - boxes[0], axis=0) * HEAD_SIZE_FACTOR
    annotated = missing.T == 0
    bad = annotated.any(axis=1) & ~(head_size > 0)
    if bad.any():
        raise DataError(
            f"{path}: person {int(np.flatnonzero(bad)[0])} has annotated joints but an empty head box"
        )
    return MpiiGT(
        joints=np.ascontiguousarray(pos.transpose(2, 0, 1)),
        annotated=annotated,
        head_size=head_size,
        joint_names=_joint_names(m.get("dataset_joints")),
        source=str(path),
    )


def _as_gt(gt: MpiiGT | str | os.PathLike) -> MpiiGT:
    return gt if isinstance(gt, MpiiGT) else load_mpii_gt(gt)


def _check_preds(preds: Any, n_gt: int | None, source: str) -> np.ndarray:
    arr = np.asarray(preds, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[1:] == (NUM_JOINTS, 3):
        arr = arr[..., :2]  # [x, y, score] rows: the score is not used by PCKh
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 2):
        raise ResultsError(f"{source}: predictions have shape {arr.shape}, expected (N, 16, 2)")
    if n_gt is not None and len(arr) != n_gt:
        raise ResultsError(f"{source}: {len(arr)} predicted people but the ground truth has {n_gt}")
    if not np.all(np.isfinite(arr)):
        i, j = np.argwhere(~np.isfinite(arr))[0][:2]
        raise ResultsError(f"{source}: person {i}, joint {j} is not a finite number (NaN/inf)")
    return arr


def load_pckh_predictions(
    path: str | os.PathLike, gt: MpiiGT | str | os.PathLike | None = None
) -> np.ndarray:
    """Read MPII predictions: ``.mat`` (key ``preds`` (N,16,2) or ``pos_pred_src`` (16,2,N)),
    ``.h5`` (dataset ``preds``) or ``.npy``. Returns (N, 16, 2) float64, coordinates as stored
    (this library's convention: 1-based, the GT frame). When ``gt`` is given, N must match it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        m = _loadmat(path, "predictions", ResultsError)
        if "preds" in m:
            arr = np.asarray(m["preds"])
        elif "pos_pred_src" in m:
            src = np.asarray(m["pos_pred_src"])
            if src.ndim != 3 or src.shape[:2] != (NUM_JOINTS, 2):
                raise ResultsError(
                    f"{path}: pos_pred_src has shape {src.shape}, expected (16, 2, N)"
                )
            arr = src.transpose(2, 0, 1)
        else:
            keys = sorted(k for k in m if not k.startswith("__"))
            raise ResultsError(f"{path}: no 'preds' or 'pos_pred_src' variable (found {keys})")
    elif suffix in (".h5", ".hdf5"):
        import h5py

        if not path.is_file():
            raise ResultsError(f"{path}: predictions file not found")
        try:
            with h5py.File(path, "r") as f:
                if "preds" not in f:
                    raise ResultsError(f"{path}: no 'preds' dataset (found {sorted(f.keys())})")
                arr = np.asarray(f["preds"])
        except OSError as e:
            raise ResultsError(f"{path}: not a readable HDF5 file ({e})") from None
    elif suffix == ".npy":
        if not path.is_file():
            raise ResultsError(f"{path}: predictions file not found")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ResultsError(f"{path}: not a readable .npy file ({e})") from None
    else:
        raise ResultsError(f"{path}: unknown predictions format {suffix!r} (use .mat, .h5 or .npy)")
    n_gt = len(_as_gt(gt)) if gt is not None else None
    return _check_preds(arr, n_gt, str(path))


def pckh_per_joint(preds: np.ndarray, gt: MpiiGT, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """(correct (16,), annotated (16,)) counts at ``thr`` x head size; preds (N, 16, 2) 1-based."""
    err = np.linalg.norm(preds - gt.joints, axis=2) / gt.head_size[:, None]  # (N, 16)
    with np.errstate(invalid="ignore"):
        hit = (err <= thr) & gt.annotated
    return hit.sum(axis=0), gt.annotated.sum(axis=0)


def evaluate_pckh(
    preds: Any,
    gt: MpiiGT | str | os.PathLike,
    *,
    one_based: bool = True,
) -> dict[str, Any]:
    """PCKh@0.5 / @0.1 in percent.

    preds: (N, 16, 2) joints in MPII order, pixels of the GT frame, 1-based (pass
    ``one_based=False`` for 0-based predictions: 1 is added once here). gt: path or
    :class:`MpiiGT`. Returns ``Head Shoulder Elbow Wrist Hip Knee Ankle Mean Mean_unweighted
    Mean@0.1`` plus ``per_joint`` / ``per_joint@0.1`` (16 values, NaN where nothing is
    annotated), ``joint_names``, ``joint_counts`` and ``n_people``.
    """
    gt = _as_gt(gt)
    arr = _check_preds(preds, len(gt), "predictions")
    if not one_based:
        arr = arr + 1.0
    keep = np.array([j not in EXCLUDED_FROM_MEAN for j in range(NUM_JOINTS)])
    out: dict[str, Any] = {}
    per: dict[float, np.ndarray] = {}
    for thr in (0.5, 0.1):
        hits, counts = pckh_per_joint(arr, gt, thr)
        with np.errstate(invalid="ignore", divide="ignore"):
            per[thr] = 100.0 * hits / counts
        weighted = (
            100.0 * hits[keep].sum() / counts[keep].sum() if counts[keep].sum() else float("nan")
        )
        if thr == 0.5:
            for name, idx in GROUPS.items():
                out[name] = float(np.mean(per[thr][list(idx)]))
            out["Mean"] = float(weighted)
            out["Mean_unweighted"] = float(np.mean(per[thr][keep]))
            counts_05 = counts
        else:
            out["Mean@0.1"] = float(weighted)
    out["per_joint"] = per[0.5].tolist()
    out["per_joint@0.1"] = per[0.1].tolist()
    out["joint_names"] = list(gt.joint_names)
    out["joint_counts"] = counts_05.astype(int).tolist()
    out["n_people"] = len(gt)
    return out


def format_pckh(result: dict[str, Any]) -> str:
    """One header line and one value line, HRNet-style, in percent."""
    keys = [k for k in PCKH_KEYS if k in result]
    widths = [max(len(k), 6) for k in keys]
    head = " | ".join(f"{k:>{w}}" for k, w in zip(keys, widths, strict=True))
    vals = " | ".join(f"{result[k]:>{w}.2f}" for k, w in zip(keys, widths, strict=True))
    return f"{head}\n{vals}"
