"""Associative-embedding (AE) grouping loss, as HigherHRNet's ``exp`` variant.

For one image with N people (tags are 1-D), with t_nk the tag of person n's visible joint k
and t̄_n the mean over those joints:

* pull = (1/N) Σ_n mean_k (t_nk − t̄_n)²
* push = Σ_{n≠n'} exp(−(t̄_n − t̄_n')²) / (2·N·(N−1)), 0 when N ≤ 1 (``exp``, the
  default), or with ``max(0, 1 − |t̄_n − t̄_n'|)`` in place of the exponential (``max``, the
  official code's other ``loss_type``). The exponential is flat at zero distance, so when all
  tags start equal (an untrained head) it barely pushes; the hinge pushes at full strength
  until the people are one tag unit apart.

Both are computed per image and then averaged over the batch; vectorised over people and
joints (no Python loop).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def person_tags(tag_maps: Tensor, tag_joints: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each person's joint tags, their mean, and which slots are people.

    tag_maps: ``(B, K, h, w)`` tag maps (1-D tags) at the tag resolution.
    tag_joints: ``(B, M, K, 2)`` int64 ``[flat index k*h*w + y*w + x, valid]`` per person slot
    (M = max people; unused slots and unlabelled joints have valid = 0).

    Returns ``t (B, M, K)`` joint tags, ``vis (B, M, K)`` 1 for labelled joints, ``mean (B, M)``
    (t̄_n over the labelled joints) and ``person (B, M)`` 1 for slots with a labelled joint.
    """
    tags = tag_maps.float().flatten(1)  # (B, K*h*w)
    b, m, k, _ = tag_joints.shape
    idx = tag_joints[..., 0].long().clamp(0, tags.shape[1] - 1)
    vis = (tag_joints[..., 1] > 0).to(tags.dtype)  # (B, M, K)
    t = torch.gather(tags, 1, idx.reshape(b, m * k)).reshape(b, m, k)
    n_joints = vis.sum(-1)  # (B, M)
    person = (n_joints > 0).to(tags.dtype)
    mean = (t * vis).sum(-1) / n_joints.clamp(min=1)
    return t, vis, mean, person


AE_TYPES = ("exp", "max")


def ae_loss_per_image(
    tag_maps: Tensor, tag_joints: Tensor, loss_type: str = "exp"
) -> tuple[Tensor, Tensor]:
    """Push and pull per image, each ``(B,)`` (arguments as :func:`person_tags`;
    ``loss_type`` ``exp`` or ``max``)."""
    if loss_type not in AE_TYPES:
        raise ValueError(f"AE loss type {loss_type!r}: use one of {AE_TYPES}")
    t, vis, mean, person = person_tags(tag_maps, tag_joints)
    m = t.shape[1]
    denom = vis.sum(-1).clamp(min=1)
    pull_person = (((t - mean[..., None]) ** 2) * vis).sum(-1) / denom  # (B, M)
    n_people = person.sum(-1)  # (B,)
    pull = (pull_person * person).sum(-1) / n_people.clamp(min=1)

    diff2 = (mean[:, :, None] - mean[:, None, :]) ** 2  # (B, M, M)
    pair = person[:, :, None] * person[:, None, :]
    pair = pair * (1 - torch.eye(m, dtype=t.dtype, device=t.device))
    if loss_type == "exp":
        push_pair = torch.exp(-diff2)
    else:  # the hinge on |d|; sqrt of d² + eps keeps the gradient finite on the diagonal
        push_pair = torch.clamp(1 - torch.sqrt(diff2 + 1e-12), min=0)
    push_sum = (push_pair * pair).sum((1, 2))
    pairs = n_people * (n_people - 1)
    push = torch.where(pairs > 0, push_sum / (2 * pairs.clamp(min=1)), torch.zeros_like(push_sum))
    return push, pull


class TagSeparation:
    """How well tags separate people, accumulated over batches.

    ``update(tag_maps, tag_joints)`` (arguments as :func:`person_tags`); ``result()`` returns

    * ``tag_within``: spread within a person, the RMS of ``t_nk − t̄_n`` over every labelled
      joint of every person;
    * ``tag_between``: mean ``|t̄_n − t̄_n'|`` over the pairs of people of the same image;
    * ``tag_separation``: ``tag_between / tag_within`` (above a few: people are told apart);
    * ``tag_pairs_apart``: fraction of pairs whose mean tags differ by more than
      ``threshold`` (the decoder's ``tag_threshold``, 1.0: a joint joins a person whose mean
      tag is nearer than it);
    * ``tag_pairs`` and ``tag_people``: the counts behind them.
    """

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = float(threshold)
        self.sq = 0.0
        self.joints = 0.0
        self.people = 0.0
        self.dist = 0.0
        self.pairs = 0.0
        self.apart = 0.0

    @torch.no_grad()
    def update(self, tag_maps: Tensor, tag_joints: Tensor) -> None:
        t, vis, mean, person = person_tags(tag_maps, tag_joints)
        self.sq += float((((t - mean[..., None]) ** 2) * vis).sum())
        self.joints += float(vis.sum())
        self.people += float(person.sum())
        d = (mean[:, :, None] - mean[:, None, :]).abs()  # (B, M, M)
        pair = torch.triu(person[:, :, None] * person[:, None, :], diagonal=1)
        self.dist += float((d * pair).sum())
        self.pairs += float(pair.sum())
        self.apart += float(((d > self.threshold).to(d.dtype) * pair).sum())

    def result(self) -> dict[str, float]:
        nan = float("nan")
        within = (self.sq / self.joints) ** 0.5 if self.joints else nan
        between = self.dist / self.pairs if self.pairs else nan
        return {
            "tag_within": within,
            "tag_between": between,
            "tag_separation": between / within if self.pairs and within > 0 else nan,
            "tag_pairs_apart": self.apart / self.pairs if self.pairs else nan,
            "tag_pairs": int(self.pairs),
            "tag_people": int(self.people),
        }


class AELoss(nn.Module):
    """Batch-mean push and pull scaled by their factors (HigherHRNet: 1e-3 each, ``exp``)."""

    def __init__(
        self, push_factor: float = 1e-3, pull_factor: float = 1e-3, loss_type: str = "exp"
    ) -> None:
        super().__init__()
        if loss_type not in AE_TYPES:
            raise ValueError(f"AE loss type {loss_type!r}: use one of {AE_TYPES}")
        self.push_factor = float(push_factor)
        self.pull_factor = float(pull_factor)
        self.loss_type = loss_type

    def forward(self, tag_maps: Tensor, tag_joints: Tensor) -> tuple[Tensor, Tensor]:
        push, pull = ae_loss_per_image(tag_maps, tag_joints, self.loss_type)
        return self.push_factor * push.mean(), self.pull_factor * pull.mean()
