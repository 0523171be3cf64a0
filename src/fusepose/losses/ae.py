"""Associative-embedding (AE) grouping loss, as HigherHRNet's ``exp`` variant.

For one image with N people (tags are 1-D), with t_nk the tag of person n's visible joint k
and t̄_n the mean over those joints:

* pull = (1/N) Σ_n mean_k (t_nk − t̄_n)²
* push = Σ_{n≠n'} exp(−(t̄_n − t̄_n')²) / (2·N·(N−1)), 0 when N ≤ 1

Both are computed per image and then averaged over the batch; vectorised over people and
joints (no Python loop).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def ae_loss_per_image(tag_maps: Tensor, tag_joints: Tensor) -> tuple[Tensor, Tensor]:
    """Push and pull per image, each ``(B,)``.

    tag_maps: ``(B, K, h, w)`` tag maps (1-D tags) at the tag resolution.
    tag_joints: ``(B, M, K, 2)`` int64 ``[flat index k*h*w + y*w + x, valid]`` per person slot
    (M = max people; unused slots and unlabelled joints have valid = 0).
    """
    tags = tag_maps.float().flatten(1)  # (B, K*h*w)
    b, m, k, _ = tag_joints.shape
    idx = tag_joints[..., 0].long().clamp(0, tags.shape[1] - 1)
    vis = (tag_joints[..., 1] > 0).to(tags.dtype)  # (B, M, K)
    t = torch.gather(tags, 1, idx.reshape(b, m * k)).reshape(b, m, k)

    n_joints = vis.sum(-1)  # (B, M)
    person = (n_joints > 0).to(tags.dtype)  # (B, M)
    denom = n_joints.clamp(min=1)
    mean = (t * vis).sum(-1) / denom  # (B, M)
    pull_person = (((t - mean[..., None]) ** 2) * vis).sum(-1) / denom  # (B, M)
    n_people = person.sum(-1)  # (B,)
    pull = (pull_person * person).sum(-1) / n_people.clamp(min=1)

    diff2 = (mean[:, :, None] - mean[:, None, :]) ** 2  # (B, M, M)
    pair = person[:, :, None] * person[:, None, :]
    pair = pair * (1 - torch.eye(m, dtype=tags.dtype, device=tags.device))
    push_sum = (torch.exp(-diff2) * pair).sum((1, 2))
    pairs = n_people * (n_people - 1)
    push = torch.where(pairs > 0, push_sum / (2 * pairs.clamp(min=1)), torch.zeros_like(push_sum))
    return push, pull


class AELoss(nn.Module):
    """Batch-mean push and pull scaled by their factors (HigherHRNet: 1e-3 each)."""

    def __init__(self, push_factor: float = 1e-3, pull_factor: float = 1e-3) -> None:
        super().__init__()
        self.push_factor = float(push_factor)
        self.pull_factor = float(pull_factor)

    def forward(self, tag_maps: Tensor, tag_joints: Tensor) -> tuple[Tensor, Tensor]:
        push, pull = ae_loss_per_image(tag_maps, tag_joints)
        return self.push_factor * push.mean(), self.pull_factor * pull.mean()
