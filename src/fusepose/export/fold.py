"""Folds that remove whole operators from L-MFNet's inference graph and compute the same function.

Each works in place on an eval-mode copy (``optimize_for_inference`` makes the copy) and is
checked by ``tests/test_perf_equivalence.py`` (raw outputs allclose, decoded keypoints within
0.5 px on the COCO images, fewer ONNX nodes).

- :func:`fold_channel_shuffles`: a Shuffle-Neck's output channel shuffle is a fixed permutation
  ``s = u[:, perm]`` of the concatenation ``u = [a, b]``. A conv that reads ``s`` computes the
  same on ``u`` with its input columns permuted (``W' = W[:, argsort(perm)]``), so the shuffle
  (a Reshape-Transpose-Reshape, 2 M elements per neck at 512) disappears. The next neck's 1x1
  ``pre`` conv is grouped (each group reads two neighbouring shuffled channels), which a
  permutation would break, so it first becomes the equivalent dense conv (zeros outside the
  groups; ``dense_pre``). The last neck's consumers are the transition convs into stage 2.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from fusepose.models.backbones.hrnet import HRNetBackbone
from fusepose.models.blocks.conv import ConvBNAct
from fusepose.models.blocks.shuffle import ShuffleNeck

logger = logging.getLogger(__name__)

__all__ = ["dense_conv", "fold_channel_shuffles", "shuffle_permutation"]


def shuffle_permutation(channels: int, groups: int = 2) -> Tensor:
    """``perm`` with ``channel_shuffle(u, groups) == u[:, perm]``: (C,) int64.

    Output channel ``i * groups + j`` is input channel ``j * C / groups + i``.
    """
    return torch.arange(channels).view(groups, channels // groups).t().reshape(-1)


def dense_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """The groups == 1 conv equal to a grouped ``conv``: its weight (C_out, C_in, kh, kw) holds
    each group's block and zeros elsewhere (same bias, stride, padding, dilation)."""
    g = conv.groups
    c_out, c_in_g = conv.weight.shape[:2]
    dense = nn.Conv2d(conv.in_channels, c_out, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, groups=1, bias=conv.bias is not None)  # fmt: skip
    w = torch.zeros_like(dense.weight)
    out_g = c_out // g
    with torch.no_grad():
        for k in range(g):
            rows = slice(k * out_g, (k + 1) * out_g)
            w[rows, k * c_in_g : (k + 1) * c_in_g] = conv.weight[rows]
        dense.weight.copy_(w)
        if conv.bias is not None:
            dense.bias.copy_(conv.bias)
    return dense.to(conv.weight.device, conv.weight.dtype)


def _permute_inputs(conv: nn.Conv2d, inv: Tensor) -> None:
    """``conv`` reads ``u`` instead of ``u[:, perm]`` (``inv = argsort(perm)``; groups == 1)."""
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:, inv])


def _transition_convs(backbone: HRNetBackbone) -> list[nn.Conv2d] | None:
    """The first conv of every transition from stage 1 (they all read stage 1's output), or
    None when one is not a plain dense conv (then the last shuffle stays)."""
    convs = []
    for layer in backbone.transitions[0]:
        first = layer[0] if isinstance(layer, nn.Sequential) and len(layer) else None
        conv = first.conv if isinstance(first, ConvBNAct) else None
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            return None
        convs.append(conv)
    return convs


def _dense_pre(neck: ShuffleNeck) -> nn.Conv2d:
    """The neck's ``pre`` conv as a dense conv (replaced in place)."""
    conv = neck.pre.conv
    if conv.groups != 1:
        conv = dense_conv(conv)
        neck.pre.conv = conv
    return conv


def fold_channel_shuffles(model: nn.Module, dense_pre: bool = True) -> int:
    """Fold the output shuffle of every Shuffle-Neck of stage 1 into the convs that read it (in
    place); returns the number of shuffles removed.

    dense_pre: also make every neck's grouped ``pre`` conv dense, so that the shuffle before it
        folds too. More MACs (64 -> 128 channels: 64x those of the 64-group conv), but one
        dense 1x1 conv is what CPUs run fastest: OpenVINO bf16 ran the 64-group conv of one
        neck at 512 in 40 ms on AMX against ~1 ms dense (docs/performance.md). False folds only
        the last neck's shuffle into the transitions.
    """
    removed = 0
    for backbone in [m for m in model.modules() if isinstance(m, HRNetBackbone)]:
        necks = list(backbone.stage1) if isinstance(backbone.stage1, nn.Sequential) else []
        if not necks or not all(isinstance(n, ShuffleNeck) and n.shuffle_output for n in necks):
            continue  # no Shuffle-Necks, folded already, or wrapped (ContiguousIsland)
        if dense_pre:
            _dense_pre(necks[0])
        for neck, nxt in zip(necks, necks[1:], strict=False):
            if dense_pre:
                perm = shuffle_permutation(neck.pre.conv.out_channels)
                _permute_inputs(_dense_pre(nxt), torch.argsort(perm))
                neck.shuffle_output = False
                removed += 1
        convs = _transition_convs(backbone)
        if convs is None or len(backbone.transitions) == 0:
            continue
        inv = torch.argsort(shuffle_permutation(necks[-1].pre.conv.out_channels))
        for conv in convs:
            _permute_inputs(conv, inv)
        necks[-1].shuffle_output = False
        removed += 1
    logger.debug("folded %d channel shuffles", removed)
    return removed
