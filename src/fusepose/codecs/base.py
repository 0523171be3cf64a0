"""The protocol every target codec follows (the idea of MMPose's ``BaseKeypointCodec``).

A codec turns the keypoints of one sample into named training targets, and the network
outputs of one input back into keypoints; datasets, pipelines, the ideal-output hooks and the
ONNX metadata call these methods and never ask which codec they hold::

    targets = codec.encode(keypoints, **options)      # {name: array}: the sample's target keys
    keypoints, scores = codec.decode(*outputs)        # outputs of one input, deployed layout
    outputs = codec.ideal_outputs(keypoints)          # what a perfect network outputs

Keypoints are ``[x, y, v]`` in input pixels (the network input after the warp). A codec is
built from a model description's ``{"type", "kwargs"}`` by
:func:`fusepose.codecs.pipelines.build_codec`, which looks the type up in ``CODECS`` and lets
the class complete its arguments (:meth:`KeypointCodec.spec_kwargs`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from fusepose.errors import DataError

__all__ = ["KeypointCodec", "check_finite", "to_numpy"]


def check_finite(a: np.ndarray, what: str) -> None:
    """DataError when network outputs hold NaN or inf (diverged weights, a broken export)."""
    if not np.isfinite(a).all():
        raise DataError(f"{what}: the network outputs contain NaN or inf (diverged weights?)")


def to_numpy(x) -> np.ndarray:
    """A numpy float32 view of a numpy array or a (possibly CUDA, possibly grad) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


class KeypointCodec(ABC):
    """Base of the target codecs.

    target_keys: the keys :meth:`encode` returns (the sample dict's target entries, which the
        family's loss reads).
    """

    target_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def spec_kwargs(
        cls,
        kwargs: Mapping[str, Any],
        *,
        num_keypoints: int,
        flip_index: Sequence[int],
        input_size: tuple[int, int],
    ) -> dict[str, Any]:
        """Constructor arguments: the stored ``kwargs`` of a description's codec spec,
        completed with what the description supplies (keypoint count, flip pairs, the input
        size ``(H, W)``)."""

    @abstractmethod
    def encode(self, keypoints: np.ndarray, **options: Any) -> dict[str, Any]:
        """Training targets of one sample: ``{key: array}`` for every key of
        :attr:`target_keys`. ``keypoints``: ``[x, y, v]`` input pixels, ``v > 0`` labelled."""

    @abstractmethod
    def decode(self, *outputs: Any, **options: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(keypoints, scores)`` in input pixels, one row per person, from the network
        outputs of one input (numpy or torch) in the family's deployed layout."""

    @abstractmethod
    def ideal_outputs(self, keypoints: np.ndarray, **options: Any) -> tuple[np.ndarray, ...]:
        """The outputs a perfect network gives for ``keypoints``, in the shapes :meth:`decode`
        takes (so ``decode(*ideal_outputs(kp))`` recovers ``kp``)."""
