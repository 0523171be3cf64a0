"""Keypoint set metadata as plain data: names, flip pairs, limbs, OKS sigmas.

Indices are 0-based. A custom set loads from YAML/JSON with :func:`load_skeleton` and is
validated up front by :meth:`Skeleton.validate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusepose.errors import FusePoseError


class SkeletonError(FusePoseError, ValueError):
    """A keypoint-set definition is inconsistent."""


@dataclass(frozen=True)
class Skeleton:
    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    limbs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    # Optional per-keypoint groups used by the per-keypoint evaluation summary.
    upper_body: tuple[int, ...] = field(default_factory=tuple)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def flip_index(self) -> list[int]:
        """Permutation p such that keypoint k of a flipped image is keypoint p[k] of the original."""
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the file format of :func:`load_skeleton`)."""
        return {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "limbs": [list(p) for p in self.limbs],
            "sigmas": [float(s) for s in self.sigmas],
            "upper_body": list(self.upper_body),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<skeleton>") -> Skeleton:
        """Inverse of :meth:`to_dict`, validated; :class:`SkeletonError` naming ``source``."""
        if not isinstance(data, dict):
            raise SkeletonError(f"{source}: expected a mapping of skeleton keys")
        allowed = {"name", "keypoints", "flip_pairs", "limbs", "sigmas", "upper_body"}
        unknown = set(data) - allowed
        if unknown:
            raise SkeletonError(f"{source}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
        for key in ("keypoints", "sigmas"):
            if key not in data:
                raise SkeletonError(f"{source}: missing required key {key!r}")
        try:
            skel = cls(
                name=str(data.get("name", "custom")),
                keypoints=tuple(str(k) for k in data["keypoints"]),
                flip_pairs=tuple((int(a), int(b)) for a, b in data.get("flip_pairs") or []),
                limbs=tuple((int(a), int(b)) for a, b in data.get("limbs") or []),
                sigmas=tuple(float(s) for s in data["sigmas"]),
                upper_body=tuple(int(i) for i in data.get("upper_body") or []),
            )
        except (TypeError, ValueError) as e:
            raise SkeletonError(f"{source}: malformed entry: {e}") from None
        return skel.validate(source)

    def validate(self, source: str = "<skeleton>") -> Skeleton:
        k = self.num_keypoints
        if k == 0:
            raise SkeletonError(f"{source}: no keypoints")
        if len(set(self.keypoints)) != k:
            raise SkeletonError(f"{source}: duplicate keypoint names")
        if len(self.sigmas) != k:
            raise SkeletonError(f"{source}: {len(self.sigmas)} sigmas for {k} keypoints (need one each)")
        if any(not (s > 0) for s in self.sigmas):
            raise SkeletonError(f"{source}: sigmas must be positive")
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            for i in (a, b):
                if not 0 <= i < k:
                    raise SkeletonError(f"{source}: flip pair ({a}, {b}) out of range 0..{k - 1}")
            if a == b:
                raise SkeletonError(f"{source}: flip pair ({a}, {b}) maps a keypoint to itself")
            if a in seen or b in seen:
                raise SkeletonError(f"{source}: keypoint in more than one flip pair: ({a}, {b})")
            seen.update((a, b))
        for a, b in self.limbs:
            if not (0 <= a < k and 0 <= b < k):
                raise SkeletonError(f"{source}: limb ({a}, {b}) out of range 0..{k - 1}")
        return self


COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

COCO17 = Skeleton(
    name="coco",
    keypoints=COCO_KEYPOINTS,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's own `skeleton` field, converted to 0-based.
    limbs=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
           (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
            0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
    upper_body=tuple(range(11)),
)  # fmt: skip

MPII16 = Skeleton(
    name="mpii",
    keypoints=("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
               "pelvis", "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
               "right_shoulder", "left_shoulder", "left_elbow", "left_wrist"),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    limbs=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
           (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15)),
    # MMPose's MPII sigmas (used only for OKS-style scoring of MPII-format sets).
    sigmas=(0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026,
            0.062, 0.072, 0.179, 0.179, 0.072, 0.062),
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
)  # fmt: skip

CROWDPOSE14 = Skeleton(
    name="crowdpose",
    keypoints=("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
               "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
               "left_ankle", "right_ankle", "top_head", "neck"),
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    limbs=((12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (13, 6), (13, 7),
           (6, 7), (6, 8), (8, 10), (7, 9), (9, 11)),
    sigmas=(0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
            0.089, 0.089, 0.079, 0.079),
    upper_body=(0, 1, 2, 3, 4, 5, 12, 13),
)  # fmt: skip

SKELETONS: dict[str, Skeleton] = {s.name: s.validate(s.name) for s in (COCO17, MPII16, CROWDPOSE14)}
# OCHuman uses the COCO-17 keypoint set.
SKELETONS["ochuman"] = COCO17


def get_skeleton(name_or_path: str | Path) -> Skeleton:
    """A built-in skeleton by name (coco, mpii, crowdpose, ochuman) or one loaded from a file."""
    key = str(name_or_path)
    if key in SKELETONS:
        return SKELETONS[key]
    path = Path(key)
    if path.suffix.lower() in {".yaml", ".yml", ".json"}:
        return load_skeleton(path)
    raise SkeletonError(f"unknown skeleton {key!r}: use one of {sorted(SKELETONS)} or a .yaml/.json file")


def load_skeleton(path: str | Path) -> Skeleton:
    """Load and validate a custom keypoint set.

    File keys: ``name`` (optional), ``keypoints`` (list of names), ``flip_pairs`` (list of
    [i, j], 0-based), ``limbs`` (list of [i, j], optional), ``sigmas`` (one per keypoint).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SkeletonError(f"{path}: cannot read skeleton file ({e.strerror})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - parser errors vary by format
        raise SkeletonError(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from None
    if not isinstance(data, dict):
        raise SkeletonError(f"{path}: expected a mapping at top level")
    return Skeleton.from_dict({"name": path.stem, **data}, str(path))
