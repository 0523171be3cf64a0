"""Batching of sample dicts (``torch.utils.data.DataLoader(collate_fn=collate)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["collate", "pad_stack"]


def pad_stack(tensors: Sequence[torch.Tensor], pad_value: float = 0) -> torch.Tensor:
    """Stack tensors of equal rank, zero-padding every dim at its end to the largest size.

    E.g. keypoints ``(N_i, K, 3)`` -> ``(B, max N_i, K, 3)`` (padded people have ``v = 0``),
    images ``(3, H_i, W_i)`` -> ``(B, 3, max H, max W)`` (padded bottom / right).
    """
    ranks = {t.dim() for t in tensors}
    if len(ranks) != 1:
        raise ValueError(f"cannot batch tensors of different ranks {sorted(ranks)}")
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = tensors[0].new_full((len(tensors), *shape), pad_value)
    for i, t in enumerate(tensors):
        out[(i, *[slice(0, n) for n in t.shape])] = t
    return out


def _collate(values: list[Any], key: str, batch: dict[str, Any]) -> Any:
    first = values[0]
    if isinstance(first, np.ndarray):
        values = [torch.from_numpy(np.ascontiguousarray(v)) for v in values]
        first = values[0]
    if isinstance(first, torch.Tensor):
        if all(v.shape == first.shape for v in values):
            return torch.stack(values)
        # variable size: pad, and remember every sample's true shape
        batch[f"{key}_shape"] = torch.tensor([list(v.shape) for v in values], dtype=torch.long)
        return pad_stack(values)
    if isinstance(first, (list, tuple)):
        if any(len(v) != len(first) for v in values):
            raise ValueError(f"collate: '{key}' has different lengths across the batch")
        return type(first)(
            _collate([v[j] for v in values], f"{key}.{j}", batch) for j in range(len(first))
        )
    if isinstance(first, dict):
        return {k: _collate([v[k] for v in values], f"{key}.{k}", batch) for k in first}
    if isinstance(first, (bool, int, float)) and not isinstance(first, bool):
        return torch.tensor(values)
    return list(values)


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch sample dicts.

    Tensors (and numpy arrays) are stacked along a new batch dim ``B``; tensors whose shapes
    differ (people per image, test-time image sizes) are zero-padded at the end of each dim and
    their true shapes stored as ``batch[key + "_shape"]`` ``(B, ndim)`` long. Lists/tuples
    (e.g. per-stride heatmaps) are batched element-wise, dicts recursively, numbers become
    tensors. ``meta`` stays a list of the samples' dicts.
    """
    if len(samples) == 0:
        raise ValueError("collate: empty batch")
    keys = list(samples[0])
    for s in samples[1:]:
        if list(s) != keys and set(s) != set(keys):
            raise ValueError(f"collate: samples have different keys {sorted(keys)} vs {sorted(s)}")
    batch: dict[str, Any] = {}
    for k in keys:
        values = [s[k] for s in samples]
        batch[k] = list(values) if k == "meta" else _collate(values, k, batch)
    return batch
