"""Loss values against hand-computed numbers on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from fusepose.losses import (
    AELoss,
    BottomUpLoss,
    JointsMSELoss,
    MultiStageJointsMSELoss,
    TagSeparation,
    ae_loss_per_image,
    masked_heatmap_mse,
)


def _tag_case():
    """K=2 joints, 2x2 tag maps. Person 0: joint 0 at (x0,y0) tag 1, joint 1 at (x1,y1) tag 3.
    Person 1: joint 0 at (x1,y0) tag 0, joint 1 unlabelled. Third slot unused."""
    k, h, w = 2, 2, 2
    tags = torch.zeros(1, k, h, w)
    tags[0, 0, 0, 0] = 1.0
    tags[0, 1, 1, 1] = 3.0
    tags[0, 0, 0, 1] = 0.0
    tj = torch.zeros(1, 3, k, 2, dtype=torch.int64)
    tj[0, 0, 0] = torch.tensor([0 * h * w + 0 * w + 0, 1])
    tj[0, 0, 1] = torch.tensor([1 * h * w + 1 * w + 1, 1])
    tj[0, 1, 0] = torch.tensor([0 * h * w + 0 * w + 1, 1])
    tj[0, 1, 1] = torch.tensor([5, 0])  # not labelled: index must be ignored
    return tags, tj


def test_ae_push_pull_two_people_by_hand():
    tags, tj = _tag_case()
    push, pull = ae_loss_per_image(tags, tj)
    # means: person0 (1+3)/2 = 2, person1 0. pull = ((1 + 1)/2 + 0) / 2 people = 0.5
    assert pull.item() == pytest.approx(0.5)
    # push = sum over ordered pairs n != n' of exp(-(2-0)^2) / (2 N (N-1)) = 2 e^-4 / 4
    assert push.item() == pytest.approx(math.exp(-4) / 2)
    push_s, pull_s = AELoss(1e-3, 1e-3)(tags, tj)
    assert push_s.item() == pytest.approx(1e-3 * math.exp(-4) / 2)
    assert pull_s.item() == pytest.approx(1e-3 * 0.5)


def test_ae_max_push_by_hand_and_its_gradient_at_collapse():
    """The hinge push: max(0, 1 - |d|) per ordered pair / (2 N (N - 1)); it pushes collapsed
    tags apart at full strength where exp(-d^2) barely does."""
    tags, tj = _tag_case()
    tj2 = tj.clone()
    tags2 = tags.clone()
    tags2[0, 0, 0, 1] = 1.5  # person 1's mean 1.5: |2 - 1.5| = 0.5 from person 0
    push, pull = ae_loss_per_image(tags2, tj2, "max")
    assert push.item() == pytest.approx(2 * 0.5 / 4)
    assert pull.item() == pytest.approx(0.5)
    # far apart (|d| = 2 >= 1): no push at all, unlike exp(-4)
    assert ae_loss_per_image(tags, tj, "max")[0].item() == 0.0
    # nearly collapsed tags: d = 0.01 between the two people's means
    near = torch.zeros(1, 2, 2, 2)
    near[0, 0, 0, 1] = 0.01
    t = near.clone().requires_grad_(True)
    ae_loss_per_image(t, tj, "max")[0].sum().backward()
    g_max = t.grad[0, 0, 0, 1].item()
    t2 = near.clone().requires_grad_(True)
    ae_loss_per_image(t2, tj, "exp")[0].sum().backward()
    g_exp = t2.grad[0, 0, 0, 1].item()
    # person 0's mean is 0, person 1's single joint is 0.01: two ordered pairs over 2 N (N - 1)
    assert g_max == pytest.approx(-0.5)  # d/dt of 2 (1 - t) / 4
    assert g_exp == pytest.approx(-0.01, rel=1e-3)  # d/dt of 2 exp(-t^2) / 4 = -t at t = 0.01
    with pytest.raises(ValueError, match="AE loss type"):
        ae_loss_per_image(tags, tj, "hinge")


def test_tag_separation_by_hand():
    """Between: mean |t̄_n - t̄_n'| over pairs of one image; within: RMS of t - t̄_n."""
    tags, tj = _tag_case()  # person 0 tags (1, 3), mean 2; person 1 tag 0
    stats = TagSeparation(threshold=1.0)
    stats.update(tags, tj)
    r = stats.result()
    assert r["tag_between"] == pytest.approx(2.0)
    # squared deviations: 1, 1 (person 0), 0 (person 1) over 3 joints
    assert r["tag_within"] == pytest.approx(math.sqrt(2 / 3))
    assert r["tag_separation"] == pytest.approx(2.0 / math.sqrt(2 / 3))
    assert r["tag_pairs_apart"] == 1.0 and r["tag_pairs"] == 1 and r["tag_people"] == 2
    # a second image whose two people share one tag: the pair is not apart
    same = torch.zeros(1, 2, 2, 2)
    stats.update(same, tj)
    r = stats.result()
    assert r["tag_pairs"] == 2 and r["tag_pairs_apart"] == 0.5
    assert r["tag_between"] == pytest.approx(1.0)
    assert TagSeparation().result()["tag_pairs"] == 0


def test_ae_single_person_and_empty_image_and_batch_mean():
    tags, tj = _tag_case()
    one = tj.clone()
    one[0, 1, :, 1] = 0  # only person 0 left
    empty = torch.zeros_like(tj)
    push, pull = ae_loss_per_image(tags.repeat(3, 1, 1, 1), torch.cat([tj, one, empty]))
    assert push.tolist() == pytest.approx([math.exp(-4) / 2, 0.0, 0.0])
    assert pull.tolist() == pytest.approx([0.5, 1.0, 0.0])
    p, q = AELoss(1.0, 1.0)(tags.repeat(3, 1, 1, 1), torch.cat([tj, one, empty]))
    assert p.item() == pytest.approx(math.exp(-4) / 6)
    assert q.item() == pytest.approx(1.5 / 3)


def test_ae_identical_tags_push_is_half_and_gradients_flow():
    # two people with the same mean tag: exp(0) = 1 per ordered pair -> 2 / (2*2*1) = 0.5
    tags = torch.zeros(1, 1, 1, 2, requires_grad=True)
    tj = torch.tensor([[[[0, 1]], [[1, 1]]]])
    push, pull = ae_loss_per_image(tags, tj)
    assert push.item() == pytest.approx(0.5)
    assert pull.item() == 0.0
    push.sum().backward()
    assert tags.grad is not None


def test_masked_mse_by_hand():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.ones(1, 2, 2, 2)
    target[0, 1] = 3.0  # joint 1 error 9 per pixel
    mask = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    # (3 * 1 + 3 * 9) / (2 * 2 * 2) = 30 / 8
    assert masked_heatmap_mse(pred, target, mask).item() == pytest.approx(30 / 8)
    assert masked_heatmap_mse(pred, target, None).item() == pytest.approx(40 / 8)


def test_masked_mse_foreground_weight_by_hand():
    """fg_weight w: each pixel's squared error times 1 + w * target; w = 0 is the plain loss."""
    pred = torch.zeros(1, 1, 2, 2)
    pred[0, 0, 1, 1] = 0.5  # a false positive on the background
    target = torch.zeros(1, 1, 2, 2)
    target[0, 0, 0, 0] = 1.0  # a missed peak
    plain = (1.0 + 0.25) / 4
    assert masked_heatmap_mse(pred, target, None).item() == pytest.approx(plain)
    assert masked_heatmap_mse(pred, target, None, fg_weight=0.0).item() == pytest.approx(plain)
    # the peak's error counts 1 + 10 times, the background's once: (11 * 1 + 0.25) / 4
    assert masked_heatmap_mse(pred, target, None, fg_weight=10.0).item() == pytest.approx(11.25 / 4)


def test_joints_mse_target_weight_by_hand():
    pred = torch.full((1, 2, 2, 2), 2.0)
    target = torch.zeros(1, 2, 2, 2)
    weights = torch.tensor([[1.0, 0.0]])
    # joint 0: mse 4; joint 1 weight 0 -> 0; 0.5 * mean over joints = 0.5 * (4 + 0) / 2
    assert JointsMSELoss()(pred, target, weights).item() == pytest.approx(1.0)
    assert JointsMSELoss(use_target_weight=False)(pred, target, weights).item() == pytest.approx(
        2.0
    )
    total, parts = MultiStageJointsMSELoss()((pred, pred * 0.5), target, weights)
    # stage 2 is pred/2 = 1 -> mse 1 -> 0.25
    assert [p.item() for p in parts] == pytest.approx([1.0, 0.25])
    assert total.item() == pytest.approx(1.25)


def test_bottom_up_loss_total_and_fp32_under_autocast():
    k = 2
    tags, tj = _tag_case()
    out_q = torch.zeros(1, 2 * k, 2, 2)
    out_q[:, k:] = tags
    out_h = torch.zeros(1, k, 4, 4)
    batch = {
        "heatmaps": [torch.ones(1, k, 2, 2), torch.ones(1, k, 4, 4) * 2],
        "masks": [torch.ones(1, 2, 2), torch.ones(1, 4, 4)],
        "tag_joints": tj,
    }
    loss = BottomUpLoss(k)
    total, parts = loss((out_q, out_h), batch)
    expected = 1.0 + 4.0 + 1e-3 * math.exp(-4) / 2 + 1e-3 * 0.5
    assert total.item() == pytest.approx(expected)
    assert parts["heatmap_s4"].item() == pytest.approx(1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t2, _ = loss((out_q.bfloat16(), out_h.bfloat16()), batch)
    assert t2.dtype == torch.float32
    assert t2.item() == pytest.approx(expected, rel=1e-3)
