"""The model families, as data: what differs between a bottom-up and a top-down model.

A :class:`Family` answers the questions code used to settle by comparing a ``kind`` string:
the deployed output layout, the input multiple, the input geometries, whether the model runs
on person boxes, the default codec and test settings, the ONNX metadata that explains the
input. Code asks ``desc.family.needs_boxes`` instead of comparing ``desc.kind`` with a name::

    fam = get_family(desc.kind)            # or desc.family / info.family / predictor.family
    fam.output_names                       # ("out_q", "out_h")
    fam.geometry((256, 384), "letterbox")  # InputGeometry("letterbox", (256, 384))

What a higher layer owns stays there, in a small table keyed by the family:
``fusepose.codecs.pipelines.PIPELINES`` (the inference pipeline), ``fusepose.losses.LOSSES``
(the training loss), ``fusepose.data.COCO_DATASETS`` (the COCO-format dataset). The string
``"bottom_up"`` / ``"top_down"`` (:attr:`Family.name`) stays the serialized form in
checkpoints, ONNX metadata, JSON and configs; :func:`get_family` parses it, once, where a file
or a registry entry is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fusepose.errors import ConfigError
from fusepose.geometry import InputGeometry

__all__ = [
    "BOTTOM_UP",
    "FAMILIES",
    "TOP_DOWN",
    "TOP_DOWN_NMS_THR",
    "Family",
    "OutputSpec",
    "get_family",
]

# top-down evaluation (HRNet): OKS-NMS over each image's people at this threshold
TOP_DOWN_NMS_THR = 0.9


@dataclass(frozen=True)
class OutputSpec:
    """One deployed network output: ``(B, channels * K, H / stride, W / stride)``.

    meaning: text for the ONNX metadata; ``{k}``, ``{k_last}`` (K - 1) and ``{k2_last}``
    (2K - 1) are filled in with the keypoint count.
    """

    name: str
    channels: int
    stride: int
    meaning: str

    def shape(self, num_keypoints: int, input_hw: Sequence[Any]) -> list[Any]:
        """``["B", C, h, w]``; a symbolic (str) input side stays symbolic (``"H/4"``)."""

        def div(v: Any) -> Any:
            return v // self.stride if isinstance(v, int) else f"{v}/{self.stride}"

        return ["B", self.channels * int(num_keypoints), div(input_hw[0]), div(input_hw[1])]

    def describe(self, num_keypoints: int) -> str:
        k = int(num_keypoints)
        return self.meaning.format(k=k, k_last=k - 1, k2_last=2 * k - 1)


@dataclass(frozen=True, eq=False)
class Family:
    """One model family. Plain data; one instance per family (:data:`FAMILIES`), compared by
    identity and hashable, so higher layers key their own tables by it.

    name: the serialized form (``ModelInfo.kind``, ``ModelDescription.kind``, JSON, ONNX).
    title: for messages (``"bottom-up"``).
    outputs: the deployed outputs, in order (``fusepose.models.InferenceWrapper``).
    staged: the network returns every stage's output (intermediate supervision), final
        last; deployment keeps the final one only.
    tags: the outputs carry associative-embedding tag maps after the K heatmaps of the
        first output; decoding groups joints into people by them.
    needs_boxes: the model estimates one person per box (given, detected or GT); otherwise
        it finds every person in the whole image.
    input_multiple: a fixed-size input's H and W must be multiples of this by default (the
        coarsest stride of the family's nets).
    geometry_modes: the :class:`~fusepose.geometry.InputGeometry` modes the family runs with.
    default_mode: the paper's test geometry; fixed_mode: the one for a fixed ``H x W`` input.
    codec: the default target codec (a class name in ``fusepose.codecs``) and
        codec_defaults its parameters besides those a description supplies.
    nms_thr: the default OKS-NMS threshold of the test settings (None: no NMS).
    preprocess: the ``preprocess`` entry of the ONNX metadata.
    """

    name: str
    title: str
    outputs: tuple[OutputSpec, ...]
    staged: bool
    tags: bool
    needs_boxes: bool
    input_multiple: int
    geometry_modes: tuple[str, ...]
    default_mode: str
    fixed_mode: str
    codec: str
    codec_defaults: Mapping[str, Any] = field(default_factory=dict)
    nms_thr: float | None = None
    preprocess: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec_defaults", MappingProxyType(dict(self.codec_defaults)))
        object.__setattr__(self, "preprocess", MappingProxyType(dict(self.preprocess)))

    def __repr__(self) -> str:
        return f"Family({self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # unpickled (DataLoader workers, spawn) as the one instance, so identity tables hold
        return get_family, (self.name,)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def geometry(self, size: Sequence[int] | int, resize: str | None = None) -> InputGeometry:
        """The geometry of this family at ``size`` (H, W): ``resize`` when it is one of
        :attr:`geometry_modes`, else :attr:`default_mode` (a training config's ``data.resize``
        ``crop``, HigherHRNet's square random crop, validates with the short-side resize).
        ``short_side`` takes ``size[0]`` as the short side."""
        mode = resize if resize in self.geometry_modes else self.default_mode
        return InputGeometry.of_mode(mode, size)

    def fixed_geometry(self, size: Sequence[int] | int) -> InputGeometry:
        """The fixed-shape geometry at ``(H, W)`` (a fixed-size export, a timing row)."""
        return InputGeometry.of_mode(self.fixed_mode, size)

    def default_codec_spec(self, **kwargs: Any) -> dict[str, Any]:
        """``{"type", "kwargs"}`` of the family's codec with ``kwargs`` as its parameters."""
        return {"type": self.codec, "kwargs": dict(kwargs)}


BOTTOM_UP = Family(
    name="bottom_up",
    title="bottom-up",
    outputs=(
        OutputSpec(
            name="out_q",
            channels=2,
            stride=4,
            meaning="stride-4 maps: channels 0..{k_last} keypoint heatmaps, channels "
            "{k}..{k2_last} associative-embedding tag maps (same keypoint order)",
        ),
        OutputSpec(
            name="out_h",
            channels=1,
            stride=2,
            meaning="stride-2 keypoint heatmaps (higher-resolution head)",
        ),
    ),
    staged=False,
    tags=True,
    needs_boxes=False,
    input_multiple=32,
    geometry_modes=("short_side", "letterbox"),
    default_mode="short_side",
    fixed_mode="letterbox",
    codec="AssociativeEmbeddingCodec",
    codec_defaults={"sigma": 2.0, "max_people": 30},
    nms_thr=None,
    preprocess={
        "type": "bottom_up_warp",
        "rule": "short side -> input_size, long side scaled alike and rounded up to a "
        "multiple of 64, affine about the image centre; fixed-shape exports letterbox "
        "the image into the exported H x W instead",
    },
)

TOP_DOWN = Family(
    name="top_down",
    title="top-down",
    outputs=(
        OutputSpec(
            name="heatmaps",
            channels=1,
            stride=4,
            meaning="stride-4 keypoint heatmaps of the person crop (final stage only); "
            "argmax + sub-pixel shift gives crop-input pixels",
        ),
    ),
    staged=True,
    tags=False,
    needs_boxes=True,
    input_multiple=4,
    geometry_modes=("crop",),
    default_mode="crop",
    fixed_mode="crop",
    codec="TopDownHeatmapCodec",
    codec_defaults={"sigma": 2.0},
    nms_thr=TOP_DOWN_NMS_THR,
    preprocess={
        "type": "top_down_warp",
        "rule": "person box [x, y, w, h] expanded to the input aspect ratio, padded 1.25x, "
        "affine-warped to H x W",
    },
)

FAMILIES: Mapping[str, Family] = MappingProxyType({f.name: f for f in (BOTTOM_UP, TOP_DOWN)})


def get_family(kind: str | Family) -> Family:
    """The family named ``kind`` (``"bottom_up"`` / ``"top_down"``), or ``kind`` itself when
    it is a Family; ConfigError otherwise."""
    if isinstance(kind, Family):
        return kind
    fam = FAMILIES.get(kind) if isinstance(kind, str) else None
    if fam is None:
        raise ConfigError(f"model kind {kind!r}: use one of {tuple(FAMILIES)}")
    return fam
