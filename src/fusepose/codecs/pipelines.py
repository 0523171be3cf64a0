"""One object per model family: image -> network inputs, network outputs -> people.

A pipeline owns everything around the network that differs between the families: the input
warp (:class:`~fusepose.geometry.InputGeometry`), flip and multi-scale inputs, the layout of
the outputs, merging flipped / scaled outputs, decoding (the target codec), rescoring, NMS and
mapping back to original-image pixels. The :class:`~fusepose.inference.Predictor` composes a
network (PyTorch, ONNX Runtime, ...) with one of these; nothing else re-implements them.

Protocol (:class:`PosePipeline`)::

    prepared = pipeline.prepare(image, boxes=None, box_scores=None)
    outputs = [network(batch) for batch in prepared.batches]   # each a list of arrays
    people = pipeline.decode(prepared, outputs)                # list[PoseInstance], best first

Network outputs are the exported layout (``fusepose.models.InferenceWrapper``): bottom-up
``[out_q (B, 2K, H/4, W/4), out_h (B, K, H/2, W/2)]``, top-down ``[heatmaps (B, K, H/4, W/4)]``.
Within a batch, flipped inputs follow the unflipped ones (``batch[n:]`` mirrors ``batch[:n]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fusepose.codecs.associative_embedding import AssociativeEmbeddingCodec, aggregate_outputs
from fusepose.codecs.base import KeypointCodec
from fusepose.codecs.heatmap import TopDownHeatmapCodec
from fusepose.errors import ConfigError, DataError
from fusepose.evaluation.nms import oks_nms, rescore_topdown
from fusepose.family import BOTTOM_UP, TOP_DOWN, Family
from fusepose.geometry import InputGeometry, box_to_center_scale, invert_points, warp_image
from fusepose.limits import MAX_INPUT_FACTOR, MAX_INPUT_SIDE
from fusepose.structures import PoseInstance

__all__ = [
    "CODECS",
    "PIPELINES",
    "BottomUpPipeline",
    "PosePipeline",
    "Prepared",
    "TopDownPipeline",
    "build_codec",
    "build_pipeline",
]

# codec type name (a description's codec["type"]) -> class
CODECS: dict[str, type[KeypointCodec]] = {
    c.__name__: c for c in (AssociativeEmbeddingCodec, TopDownHeatmapCodec)
}
# HRNet's IN_VIS_THRE: keypoints above it enter a top-down person's score.
RESCORE_KPT_THR = 0.2


@dataclass
class Prepared:
    """The network inputs of one image and what decoding needs.

    batches: ``(B, 3, H, W)`` float32 network inputs, run one at a time.
    matrices: per batch, the original -> input affines of its unflipped elements.
    image_hw: original image size.
    boxes, box_scores: top-down person boxes ``(N, 4)`` ``[x, y, w, h]`` and their scores.
    """

    batches: list[np.ndarray]
    matrices: list[list[np.ndarray]]
    image_hw: tuple[int, int]
    boxes: np.ndarray | None = None
    box_scores: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PosePipeline(Protocol):
    family: Family
    kind: str  # family.name
    needs_boxes: bool  # family.needs_boxes: one crop per person box; else boxes are ignored
    geometry: InputGeometry
    codec: KeypointCodec
    flip: bool
    flip_index: list[int]

    def prepare(
        self, image: np.ndarray, boxes: np.ndarray | None = None, box_scores: np.ndarray | None = None
    ) -> Prepared: ...

    def decode(self, prepared: Prepared, outputs: list[list[np.ndarray]]) -> list[PoseInstance]: ...


# ------------------------------------------------------------------------------ codecs


def build_codec(
    spec: dict[str, Any],
    *,
    num_keypoints: int,
    flip_index: Sequence[int],
    input_size: Sequence[int],
    **overrides: Any,
) -> KeypointCodec:
    """The target codec of ``spec`` for a model with ``num_keypoints`` at ``input_size (H, W)``.

    The one place a codec is built (training targets, decoding, ONNX metadata): the class
    from :data:`CODECS`, its arguments completed by the class (``spec_kwargs``). ``overrides``
    replace stored parameters (e.g. ``detection_threshold``)."""
    cls = CODECS.get(str(spec.get("type")))
    if cls is None:
        raise ConfigError(f"unknown codec {spec.get('type')!r} (known: {sorted(CODECS)})")
    h, w = int(input_size[0]), int(input_size[1])
    kwargs = cls.spec_kwargs(
        {**dict(spec.get("kwargs") or {}), **overrides},
        num_keypoints=int(num_keypoints), flip_index=list(flip_index), input_size=(h, w),
    )  # fmt: skip
    for key in ("strides", "heatmap_size", "joint_order"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"codec {cls.__name__}({kwargs}): {e}") from None


def build_pipeline(desc: Any, *, batch_size: int = 16, **codec_overrides: Any) -> PosePipeline:
    """The pipeline of a :class:`~fusepose.description.ModelDescription`: its family's
    (:data:`PIPELINES`) with its codec."""
    cls = PIPELINES[desc.family]
    codec = build_codec(
        desc.codec,
        num_keypoints=desc.num_keypoints,
        flip_index=desc.flip_index,
        input_size=desc.geometry.size,
        **codec_overrides,
    )
    return cls.from_description(desc, codec, batch_size=batch_size)


def _flipped(batch: np.ndarray) -> np.ndarray:
    return np.concatenate([batch, batch[:, :, :, ::-1]], axis=0)


def _sorted(instances: list[PoseInstance]) -> list[PoseInstance]:
    order = np.argsort([-i.score for i in instances], kind="stable")
    return [instances[i] for i in order]


# ------------------------------------------------------------------------------ bottom-up


class BottomUpPipeline:
    """HigherHRNet inference: whole-image warp, heatmaps + AE tags, grouping.

    Multi-scale (official): every scale's heatmaps are projected to the 1x scale's input size
    and averaged; the 1x scale's tags group them (the smallest scale when 1.0 is absent).
    """

    family = BOTTOM_UP
    kind = family.name
    needs_boxes = family.needs_boxes

    def __init__(
        self,
        codec: AssociativeEmbeddingCodec,
        geometry: InputGeometry,
        flip: bool = False,
        scales: Sequence[float] = (1.0,),
    ) -> None:
        if geometry.mode not in self.family.geometry_modes:
            raise ConfigError("a bottom-up model needs a 'short_side' or 'letterbox' geometry")
        self.codec = codec
        self.geometry = geometry
        self.flip = bool(flip)
        self.scales = tuple(float(s) for s in scales) or (1.0,)
        if len(self.scales) > 1 and geometry.mode != "short_side":
            raise ConfigError(
                f"multi-scale test {list(self.scales)} needs the short_side geometry, not "
                f"{geometry.describe()}"
            )
        self.flip_index = list(codec.flip_index or range(codec.num_keypoints))
        self.num_keypoints = codec.num_keypoints

    @classmethod
    def from_description(cls, desc: Any, codec: Any, **_: Any) -> BottomUpPipeline:
        return cls(codec, desc.geometry, flip=desc.test.flip, scales=desc.test.scales)

    @property
    def base_scale(self) -> int:
        return self.scales.index(1.0) if 1.0 in self.scales else int(np.argmin(self.scales))

    def warp(self, image_hw: Sequence[int], scale: float = 1.0) -> tuple[np.ndarray, tuple[int, int]]:
        """Affine (original -> input) and input size ``(W_in, H_in)`` at ``scale``."""
        return self.geometry.warp(image_hw, scale, min_scale=min(self.scales))

    def check_input(self, image_hw: Sequence[int], max_factor: float = MAX_INPUT_FACTOR) -> None:
        """DataError when an image of ``image_hw`` would become a network input over
        ``max_factor`` x the geometry's area or :data:`~fusepose.limits.MAX_INPUT_SIDE` on a
        side at the largest scale (under the short-side resize a 2 x 3000 strip becomes a
        64 x 96000 input: tens of GB). The server's limit and the command line's."""
        _m, (w_in, h_in) = self.warp(image_hw, max(self.scales))
        area = int(np.prod(self.geometry.size))
        if w_in * h_in > max_factor * area or max(w_in, h_in) > MAX_INPUT_SIDE:
            raise DataError(
                f"image of {image_hw[1]}x{image_hw[0]} pixels: the network input would be "
                f"{w_in}x{h_in}, over {max_factor:g} x the model's {self.geometry.describe()} "
                f"or {MAX_INPUT_SIDE} a side (aspect ratio too extreme, or scale too large)"
            )

    def prepare(self, image, boxes=None, box_scores=None) -> Prepared:
        """Whole-image inputs, one batch per scale (``boxes`` are ignored); DataError for an
        image whose input would be too large (:meth:`check_input`)."""
        hw = (int(image.shape[0]), int(image.shape[1]))
        self.check_input(hw)
        batches, matrices = [], []
        for s in self.scales:
            m, size = self.warp(hw, s)
            batch = warp_image(image, m, size)[None]
            batches.append(_flipped(batch) if self.flip else batch)
            matrices.append([m])
        return Prepared(batches, matrices, hw)

    def decode(self, prepared: Prepared, outputs: list[list[np.ndarray]]) -> list[PoseInstance]:
        per_scale = []
        for out in outputs:
            out_q, out_h = out[0], out[1] if len(out) > 1 else None
            fq = out_q[1] if self.flip else None
            fh = out_h[1] if self.flip and out_h is not None else None
            per_scale.append((out_q[0], None if out_h is None else out_h[0], fq, fh))
        base = self.base_scale
        if len(per_scale) == 1:
            poses, scores = self.codec.decode(*per_scale[0])
        else:
            h_in, w_in = prepared.batches[base].shape[2:]
            heatmaps, base_tags = [], None
            for i, (q, h, fq, fh) in enumerate(per_scale):
                hm, tags = aggregate_outputs(
                    q, h, fq, fh, num_keypoints=self.num_keypoints, flip_index=self.flip_index,
                    project_size=(h_in, w_in),
                )  # fmt: skip
                heatmaps.append(hm)
                if i == base:
                    base_tags = tags
            poses, scores = self.codec.group(np.mean(heatmaps, axis=0, dtype=np.float32), base_tags)
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, self.num_keypoints, 3)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(poses):
            poses[..., :2] = invert_points(poses[..., :2], prepared.matrices[base][0])
        people = [
            PoseInstance(p[:, :2], np.clip(p[:, 2], 0.0, None), float(s))
            for p, s in zip(poses, scores, strict=True)
        ]
        return _sorted(people)


# ------------------------------------------------------------------------------ top-down


class TopDownPipeline:
    """Top-down inference (HRNet protocol): one crop per person box, heatmap argmax + shift,
    flip test by ``flip_back`` and averaging, the person score ``box score x mean of the
    keypoint scores above 0.2``, then OKS-NMS over the image's people at ``nms_thr``."""

    family = TOP_DOWN
    kind = family.name
    needs_boxes = family.needs_boxes

    def __init__(
        self,
        codec: TopDownHeatmapCodec,
        geometry: InputGeometry,
        flip_index: Sequence[int],
        sigmas: Sequence[float],
        flip: bool = False,
        nms_thr: float | None = None,
        batch_size: int = 16,
    ) -> None:
        if geometry.mode not in self.family.geometry_modes:
            raise ConfigError(f"a top-down model needs the 'crop' geometry, not {geometry.mode!r}")
        self.codec = codec
        self.geometry = geometry
        self.flip_index = list(flip_index)
        self.sigmas = list(sigmas)
        self.flip = bool(flip)
        self.nms_thr = nms_thr
        self.batch_size = max(int(batch_size), 1)

    @classmethod
    def from_description(cls, desc: Any, codec: Any, batch_size: int = 16) -> TopDownPipeline:
        return cls(codec, desc.geometry, desc.flip_index, desc.skeleton.sigmas,
                   flip=desc.test.flip, nms_thr=desc.test.nms_thr, batch_size=batch_size)  # fmt: skip

    def crop_matrix(self, box: Sequence[float]) -> np.ndarray:
        return self.geometry.crop_matrix(box)

    @staticmethod
    def check_boxes(boxes: Any, box_scores: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 4)`` finite ``[x, y, w, h]`` with ``w, h > 0`` and ``(N,)`` finite scores."""
        b = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), dtype=np.float64)
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise DataError(f"person boxes: expected (N, 4) [x, y, w, h], got shape {b.shape}")
        bad = ~np.isfinite(b).all(1) | (b[:, 2] <= 0) | (b[:, 3] <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"person box {i} {b[i].tolist()}: needs finite x, y and w, h > 0")
        s = np.ones(len(b)) if box_scores is None else np.asarray(box_scores, np.float64)
        s = s.reshape(-1)
        if len(s) != len(b) or not np.isfinite(s).all():
            raise DataError(f"box scores: expected {len(b)} finite values, got {s.tolist()}")
        return b, s

    def prepare(self, image, boxes=None, box_scores=None) -> Prepared:
        boxes, box_scores = self.check_boxes(boxes, box_scores)
        hw = (int(image.shape[0]), int(image.shape[1]))
        h_in, w_in = self.geometry.size
        mats = [self.crop_matrix(b) for b in boxes]
        batches, matrices = [], []
        for i in range(0, len(mats), self.batch_size):
            chunk = mats[i : i + self.batch_size]
            batch = np.stack([warp_image(image, m, (w_in, h_in)) for m in chunk])
            batches.append(_flipped(batch) if self.flip else batch)
            matrices.append(chunk)
        return Prepared(batches, matrices, hw, boxes, box_scores)

    def decode(self, prepared: Prepared, outputs: list[list[np.ndarray]]) -> list[PoseInstance]:
        boxes, box_scores = prepared.boxes, prepared.box_scores
        if boxes is None or len(boxes) == 0:
            return []
        heatmaps = []
        for out in outputs:
            hm = np.asarray(out[0], dtype=np.float32)
            if self.flip:
                n = len(hm) // 2
                hm = (hm[:n] + self.codec.flip_back(hm[n:], self.flip_index)) / 2.0
            heatmaps.append(hm)
        coords, kscores = self.codec.decode(np.concatenate(heatmaps))
        kscores = np.clip(np.asarray(kscores, dtype=np.float64), 0.0, None)
        mats = [m for chunk in prepared.matrices for m in chunk]
        scores = rescore_topdown(box_scores, kscores, RESCORE_KPT_THR)
        people = [
            PoseInstance(invert_points(c, m), ks, float(s), box=b)
            for m, c, ks, s, b in zip(mats, coords, kscores, scores, boxes, strict=True)
        ]
        if self.nms_thr is not None and len(people) > 1:
            # HRNet's OKS-NMS area: the padded crop region of each box, in pixels^2
            aspect = self.geometry.size[1] / self.geometry.size[0]
            areas = [float(np.prod(box_to_center_scale(b, aspect)[1])) for b in boxes]
            records = [
                {"keypoints": np.c_[p.keypoints, p.keypoint_scores], "score": p.score, "area": a}
                for p, a in zip(people, areas, strict=True)
            ]
            people = [people[i] for i in oks_nms(records, self.nms_thr, sigmas=self.sigmas)]
        return _sorted(people)


# family -> its inference pipeline (each has ``from_description(desc, codec, batch_size=)``)
PIPELINES: dict[Family, Any] = {BOTTOM_UP: BottomUpPipeline, TOP_DOWN: TopDownPipeline}
