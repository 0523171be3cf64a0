"""Top-down heatmap codec: encode -> decode round trips, flip_back, DARK."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusepose.codecs.heatmap import TopDownHeatmapCodec
from fusepose.skeletons import COCO17

H, W = 256, 192


def _random_keypoints(
    rng: np.random.Generator, b: int, k: int = 17, margin: int = 12
) -> np.ndarray:
    # keep 1.5 sigma (12 input px) away from the border so the Gaussians are not truncated
    xy = rng.uniform([margin, margin], [W - 1 - margin, H - 1 - margin], size=(b, k, 2))
    return np.concatenate([xy, np.full((b, k, 1), 2.0)], -1)


@pytest.mark.parametrize("unbiased", [True, False])
def test_quarter_round_trip_within_quarter_heatmap_pixel(unbiased):
    codec = TopDownHeatmapCodec((H, W), (64, 48), sigma=2.0, unbiased=unbiased, refine="quarter")
    kp = _random_keypoints(np.random.default_rng(0), 8)
    hm, wt = codec.encode_batch(kp)
    assert hm.shape == (8, 17, 64, 48) and hm.dtype == np.float32 and wt.shape == (8, 17)
    assert (wt == 1).all()
    coords, scores = codec.decode(hm)
    err_hm = np.abs(codec.to_heatmap(coords) - codec.to_heatmap(kp[..., :2]))
    # argmax is within 0.5 px of the centre; the quarter shift toward it halves that
    assert err_hm.max() <= 0.25 + 1e-6
    # peak value of an unnormalised Gaussian sampled within 0.5 px of its centre
    assert (scores > np.exp(-0.25 / 4)).all() and (scores <= 1).all()


@pytest.mark.parametrize("unbiased", [True, False])
def test_dark_round_trip_within_quarter_input_pixel(unbiased):
    codec = TopDownHeatmapCodec((H, W), (64, 48), sigma=2.0, unbiased=unbiased, refine="dark")
    # DARK blurs with an 11x11 kernel: stay 6 heatmap px (24 input px) from the border
    kp = _random_keypoints(np.random.default_rng(1), 6, margin=24)
    hm, _ = codec.encode_batch(kp)
    coords, _ = codec.decode(torch.from_numpy(hm))  # torch input accepted
    err = np.abs(coords - kp[..., :2])
    assert err.max() < 0.25  # input pixels, stride 4


def test_single_crop_encode_and_weights():
    codec = TopDownHeatmapCodec()
    kp = np.array([[50.0, 60.0, 2], [10.0, 10.0, 0], [-40.0, 20.0, 1], [100.0, 300.0, 2]])
    targets = codec.encode(kp)
    hm, wt = targets["heatmaps"], targets["target_weight"]
    assert hm.shape == (4, 64, 48)
    np.testing.assert_array_equal(wt, [1, 0, 0, 0])  # unlabelled, left of and below the crop
    assert hm[1:].max() == 0
    # UDP centre: x * 47 / 191, y * 63 / 255
    v, u = np.unravel_index(hm[0].argmax(), hm[0].shape)
    assert (u, v) == (round(50 * 47 / 191), round(60 * 63 / 255))


def test_flip_back_unbiased_is_exact():
    codec = TopDownHeatmapCodec(unbiased=True)
    kp = _random_keypoints(np.random.default_rng(2), 4)
    flipped = kp[:, COCO17.flip_index].copy()
    flipped[..., 0] = W - 1 - flipped[..., 0]
    hm, _ = codec.encode_batch(kp)
    hm_f, _ = codec.encode_batch(flipped)
    back = codec.flip_back(hm_f, COCO17.flip_index)
    np.testing.assert_allclose(back, hm, atol=1e-5)


def test_flip_back_biased_shift_brings_peaks_within_quarter_pixel():
    codec = TopDownHeatmapCodec(unbiased=False, refine="dark")
    kp = _random_keypoints(np.random.default_rng(3), 4, margin=24)
    flipped = kp[:, COCO17.flip_index].copy()
    flipped[..., 0] = W - 1 - flipped[..., 0]
    hm_f, _ = codec.encode_batch(flipped)
    back = codec.flip_back(hm_f, COCO17.flip_index)
    coords, _ = codec.decode(back)
    # without the shift the error would be 1 - 1/4 = 0.75 heatmap px; with it 0.25 px
    err_hm = np.abs(codec.to_heatmap(coords) - codec.to_heatmap(kp[..., :2]))
    assert err_hm[..., 0].max() < 0.3 and err_hm[..., 1].max() < 0.05
    no_shift = codec.decode(codec.flip_back(hm_f, COCO17.flip_index, shift=False))[0]
    assert np.abs(codec.to_heatmap(no_shift) - codec.to_heatmap(kp[..., :2]))[..., 0].min() > 0.7
