"""The accuracy guard of a non-reference inference path (bf16, INT8, another backend).

A path passes when, on real images decoded through the model's own pipeline, its people's
joints stay where the fp32 reference put them: median change <= :data:`GUARD_MEDIAN_PX` and
90th percentile <= :data:`GUARD_P90_PX` (people matched one to one,
:func:`fusepose.evaluation.compare.keypoint_change`), and, where a trained checkpoint's COCO AP
was measured, AP within :data:`GUARD_AP_DROP` of fp32. A path whose change cannot be measured
(no joint scored above 0.1 by both) does not pass: nothing shows it is accurate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fusepose.data.io import read_image
from fusepose.evaluation.compare import keypoint_change
from fusepose.inference.boxes import whole_image_box
from fusepose.structures import PoseResult

__all__ = ["GUARD_AP_DROP", "GUARD_MEDIAN_PX", "GUARD_P90_PX", "decode_images", "guard",
           "guard_verdict"]  # fmt: skip

GUARD_MEDIAN_PX = 0.5
GUARD_P90_PX = 2.0
GUARD_AP_DROP = 0.01


def decode_images(network: Any, pipeline: Any, images: Sequence[Any]) -> list[PoseResult]:
    """Every person ``network`` finds in ``images`` (paths or BGR arrays) through ``pipeline``
    (top-down: one whole-image box), original pixels, no score threshold."""
    out = []
    for item in images:
        img = item if isinstance(item, np.ndarray) else read_image(item)
        prepared = pipeline.prepare(img, whole_image_box(img))
        raw = [network(b) for b in prepared.batches]
        out.append(PoseResult(pipeline.decode(prepared, raw), (int(img.shape[0]), int(img.shape[1]))))
    return out


def guard_verdict(change: dict[str, Any], ap: float | None = None, ap_ref: float | None = None
                  ) -> tuple[bool, str]:  # fmt: skip
    """``(passed, why)`` of a :func:`~fusepose.evaluation.compare.keypoint_change` (and the
    path's AP against the reference's, when both are given)."""
    if not change.get("joints"):
        return False, "no joints to compare (nothing scored above 0.1 by both)"
    if change["median_px"] > GUARD_MEDIAN_PX:
        return False, f"median keypoint change {change['median_px']:.2f} px > {GUARD_MEDIAN_PX}"
    if change["p90_px"] > GUARD_P90_PX:
        return False, f"90th percentile keypoint change {change['p90_px']:.2f} px > {GUARD_P90_PX}"
    if ap is not None and ap_ref is not None and ap < ap_ref - GUARD_AP_DROP:
        return False, f"AP {ap:.3f} more than {GUARD_AP_DROP} below fp32 {ap_ref:.3f}"
    why = (f"median {change['median_px']:.2f} px, p90 {change['p90_px']:.2f} px over "
           f"{change['joints']} joints")  # fmt: skip
    if ap is not None and ap_ref is not None:
        why += f", AP {ap:.3f} vs {ap_ref:.3f}"
    return True, why


def guard(reference: Sequence[PoseResult], candidate: Sequence[PoseResult]) -> dict[str, Any]:
    """The keypoint change of ``candidate`` against ``reference`` (the same images in the same
    order) with its verdict: the change's keys plus ``passed`` and ``why``."""
    change = keypoint_change(list(zip(reference, candidate, strict=True)))
    passed, why = guard_verdict(change)
    return {**change, "passed": passed, "why": why}
