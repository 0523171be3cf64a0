"""Transforms: hand-computed values, parity with HRNet's 3-point construction, pixel/point
consistency of every geometric op and exact inverse round trips on the real COCO images."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from fusepose.data import transforms as T
from fusepose.skeletons import COCO17


def _hrnet_three_point(center, scale_wh, rot, out_wh, shift=(0.0, 0.0), inv=False):
    """HRNet's get_affine_transform construction (three point pairs -> cv2.getAffineTransform),
    written independently here from its description, in pixels instead of /200 units."""
    center = np.asarray(center, np.float64)
    scale_wh = np.asarray(scale_wh, np.float64)
    r = math.radians(rot)

    def rotate(p):
        return np.array(
            [p[0] * math.cos(r) - p[1] * math.sin(r), p[0] * math.sin(r) + p[1] * math.cos(r)]
        )

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]])

    src = np.zeros((3, 2))
    dst = np.zeros((3, 2))
    src[0] = center + scale_wh * np.asarray(shift)
    src[1] = src[0] + rotate([0.0, -0.5 * scale_wh[0]])
    dst[0] = [out_wh[0] * 0.5, out_wh[1] * 0.5]
    dst[1] = dst[0] + [0.0, -0.5 * out_wh[0]]
    src[2] = third(src[0], src[1])
    dst[2] = third(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst.astype(np.float32), src.astype(np.float32))
    return cv2.getAffineTransform(src.astype(np.float32), dst.astype(np.float32))


@pytest.fixture(scope="module")
def coco_samples(coco_dir):
    """(image, keypoints (N, 17, 3)) for the 4 real COCO images."""
    data = json.loads((coco_dir / "test_coco.json").read_text())
    out = []
    for im in data["images"]:
        img = cv2.imread(str(coco_dir / im["file_name"]), cv2.IMREAD_COLOR)
        kp = [a["keypoints"] for a in data["annotations"] if a["image_id"] == im["id"]]
        out.append((img, np.asarray(kp, np.float64).reshape(-1, 17, 3)))
    return out


# ---------------------------------------------------------------------------------- pixels


def test_normalize_hand_computed_pixel_and_layout():
    img = np.zeros((2, 3, 3), np.uint8)
    img[1, 2] = (0, 128, 255)  # B, G, R
    out = T.normalize(img)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    # channel 0 is R = 255 -> (1 - 0.485) / 0.229; channel 2 is B = 0 -> -0.406 / 0.225
    assert out[0, 1, 2] == pytest.approx((1.0 - 0.485) / 0.229, abs=1e-6)
    assert out[1, 1, 2] == pytest.approx((128 / 255 - 0.456) / 0.224, abs=1e-6)
    assert out[2, 1, 2] == pytest.approx(-0.406 / 0.225, abs=1e-6)
    assert out[0, 0, 0] == pytest.approx(-0.485 / 0.229, abs=1e-6)


def test_denormalize_inverts_normalize_exactly_on_real_image(coco_samples):
    img = coco_samples[0][0]
    assert np.array_equal(T.denormalize(T.normalize(img)), img)
    torch = pytest.importorskip("torch")
    assert np.array_equal(T.denormalize(torch.from_numpy(T.normalize(img))), img)


# ---------------------------------------------------------------------------------- matrices


def test_affine_points_hand_computed_and_extra_columns_kept():
    M = np.array([[2.0, 0.0, 10.0], [0.0, 3.0, -5.0]])
    pts = np.array([[[1.0, 2.0, 0.7], [0.0, 0.0, 2.0]]])
    out = T.affine_points(pts, M)
    np.testing.assert_allclose(out, [[[12.0, 1.0, 0.7], [10.0, -5.0, 2.0]]])
    assert T.affine_points(np.array([3.0, 4.0]), M).tolist() == [16.0, 7.0]


@pytest.mark.parametrize(
    "center,scale,rot,out,shift",
    [
        ((320.0, 212.5), (300.0, 400.0), 0.0, (192, 256), (0.0, 0.0)),
        ((100.5, 50.0), (90.0, 120.0), 30.0, (192, 256), (0.0, 0.0)),
        ((250.0, 300.0), (512.0, 512.0), -17.0, (512, 512), (0.1, -0.05)),
        ((10.0, 20.0), (64.0, 64.0), 135.0, (256, 256), (0.0, 0.0)),
    ],
)
def test_get_affine_matrix_matches_hrnet_three_point_construction(center, scale, rot, out, shift):
    for inv in (False, True):
        ours = T.get_affine_matrix(center, scale, rot, out, shift=shift, inv=inv)
        ref = _hrnet_three_point(center, scale, rot, out, shift=shift, inv=inv)
        np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)  # ref is float32
    M = T.get_affine_matrix(center, scale, rot, out, shift=shift)
    Minv = T.get_affine_matrix(center, scale, rot, out, shift=shift, inv=True)
    np.testing.assert_allclose(T.compose_affine(Minv, M), np.eye(3)[:2], atol=1e-12)


def test_positive_rotation_turns_content_counter_clockwise():
    # A point to the right of the centre ends up above it (y down) for rot = +90.
    M = T.get_affine_matrix((50.0, 50.0), (100.0, 100.0), 90.0, (100, 100))
    np.testing.assert_allclose(T.affine_points(np.array([60.0, 50.0]), M), [50.0, 40.0], atol=1e-9)


def test_top_down_warp_hand_computed_box():
    # box 100x100 at (10, 20), input 256x192 (aspect 0.75): height grows to 133.33, x1.25 pad.
    M, center, scale = T.top_down_warp((10, 20, 100, 100), (256, 192), padding=1.25)
    np.testing.assert_allclose(center, [60.0, 70.0])
    np.testing.assert_allclose(scale, [125.0, 100 / 0.75 * 1.25])
    np.testing.assert_allclose(T.affine_points(center, M), [96.0, 128.0], atol=1e-9)
    # isotropic: both axes scaled by 192 / 125, no shear (aspect ratio kept)
    np.testing.assert_allclose(M[:, :2], np.diag([192 / 125, 192 / 125]), atol=1e-12)
    # the padded box corners land on the input corners
    np.testing.assert_allclose(
        T.affine_points(np.array([60 - 62.5, 70 - 83.3333333]), M), [0.0, 0.0], atol=1e-5
    )
    # a tall box grows in width instead
    _, _, scale2 = T.top_down_warp((0, 0, 30, 200), (256, 192), padding=1.0)
    np.testing.assert_allclose(scale2, [150.0, 200.0])


@pytest.mark.parametrize(
    "hw,expected_wh",
    [
        ((425, 640), (832, 512)),  # 640 * 512 / 425 = 771.01 -> 832
        # official (x + 63) // 64 * 64 on a float: 768.77 -> 768 (not a strict ceil)
        ((333, 500), (768, 512)),
        ((1000, 665), (512, 832)),  # portrait: 769.92 -> 832
        ((512, 512), (512, 512)),
        ((480, 640), (704, 512)),  # 682.67 -> 704
    ],
)
def test_bottom_up_warp_sizes_and_centre(hw, expected_wh):
    M, size = T.bottom_up_warp(hw, 512)
    assert size == expected_wh
    h, w = hw
    s = 512 / min(h, w)
    np.testing.assert_allclose(M[:, :2], np.diag([s, s]), atol=1e-12)
    centre = np.array([int(w / 2 + 0.5), int(h / 2 + 0.5)], float)  # official rounding
    np.testing.assert_allclose(T.affine_points(centre, M), np.array(size) / 2, atol=1e-9)


def test_bottom_up_warp_multi_scale_sizes():
    # official: min size 256 at min_scale 0.5; long side 256 / 425 * 640 = 385.5 -> 448 there;
    # both then times scale / min_scale.
    assert T.bottom_up_warp((425, 640), 512, scale=2.0, min_scale=0.5)[1] == (1792, 1024)
    assert T.bottom_up_warp((425, 640), 512, scale=0.5, min_scale=0.5)[1] == (448, 256)


# ---------------------------------------------------------------------------------- pixels vs points


def _blob_image(h, w, x, y, sigma=3.0):
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((g * 250).astype(np.float32)[:, :, None], 3, axis=2)


def _centroid(img):
    g = img[:, :, 0].astype(np.float64)
    g = np.where(g > 0.05 * g.max(), g, 0)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(xx * g).sum() / g.sum(), (yy * g).sum() / g.sum()])


@pytest.mark.parametrize("rot,scale", [(0.0, 1.0), (30.0, 0.8), (-47.0, 1.3)])
def test_warped_dot_lands_where_affine_points_says(rot, scale):
    dot = np.array([141.3, 97.6])
    img = _blob_image(240, 320, *dot)
    M = T.get_affine_matrix((160.0, 120.0), (200 * scale, 200 * scale), rot, (192, 192))
    warped = T.apply_affine(img, M, (192, 192))
    expected = T.affine_points(dot, M)
    np.testing.assert_allclose(_centroid(warped), expected, atol=0.05)
    # and the inverse warp brings it back
    back = T.apply_affine(warped, T.invert_affine(M), (320, 240))
    np.testing.assert_allclose(_centroid(back), dot, atol=0.05)


def test_flip_moves_dot_and_mask_like_the_points():
    dot = np.array([[[40.0, 10.0, 2.0]]])
    img = _blob_image(30, 100, 40.0, 10.0).astype(np.uint8)
    mask = np.zeros((30, 100), np.uint8)
    mask[10, 40] = 1
    sample = {"image": img, "keypoints": dot, "mask": mask}
    T.RandomFlip([0], prob=1.0)(sample)
    assert sample["keypoints"][0, 0].tolist() == [59.0, 10.0, 2.0]  # 100 - 1 - 40
    assert np.argwhere(sample["mask"]).tolist() == [[10, 59]]
    np.testing.assert_allclose(_centroid(sample["image"]), [59.0, 10.0], atol=0.05)


def test_flip_permutes_joints_with_flip_index():
    kp = np.zeros((1, 17, 3))
    kp[0, :, 0] = np.arange(17) * 10.0  # x identifies the joint
    kp[0, :, 2] = 2
    s = T.RandomFlip(COCO17.flip_index, prob=1.0)(
        {"image": np.zeros((5, 200, 3), np.uint8), "keypoints": kp.copy()}
    )
    # new joint 1 (left eye) is the old joint 2 (right eye), mirrored
    assert s["keypoints"][0, 1, 0] == 199 - 20.0
    assert s["keypoints"][0, 0, 0] == 199 - 0.0


# ---------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("seed", [0, 1])
def test_bottom_up_augment_round_trip_on_real_images(coco_samples, seed):
    rng = np.random.default_rng(seed)
    aug = T.Compose(
        [
            T.RandomAffine(512, max_rotation=30, scale_range=(0.75, 1.5), max_shift=0.2, rng=rng),
            T.RandomFlip(COCO17.flip_index, prob=1.0, rng=rng),
        ]
    )
    for img, kp in coco_samples:
        mask = np.ones(img.shape[:2], np.uint8)
        s = aug({"image": img.copy(), "keypoints": kp.copy(), "mask": mask})
        assert s["image"].shape == (512, 512, 3) and s["mask"].shape == (512, 512)
        # points: inverse matrix + un-permute gives the annotation back
        back = T.affine_points(s["keypoints"], T.invert_affine(s["matrix"]))
        back = back[:, COCO17.flip_index]  # flip_index is an involution
        np.testing.assert_allclose(back, kp, atol=0.01)
        # pixels: one warp of the original with the composed matrix equals the pipeline output
        direct = T.apply_affine(img, s["matrix"], (512, 512)).astype(np.int16)
        assert np.abs(direct - s["image"].astype(np.int16)).mean() < 0.5
        # the mask is 0 outside the warped image area and 1 well inside
        ones = T.apply_affine(np.full(img.shape[:2], 255, np.uint8), s["matrix"], (512, 512))
        assert np.all(s["mask"][ones == 0] == 0)
        assert np.all(s["mask"][cv2.erode(ones, np.ones((3, 3))) == 255] == 1)


def test_top_down_augment_round_trip_on_real_images(coco_samples):
    rng = np.random.default_rng(3)
    for img, kp in coco_samples:
        for person in kp:
            if (person[:, 2] > 0).sum() == 0:
                continue
            x0, y0 = person[person[:, 2] > 0, :2].min(0)
            x1, y1 = person[person[:, 2] > 0, :2].max(0)
            center, scale = T.box_to_center_scale((x0, y0, x1 - x0 + 1, y1 - y0 + 1), 0.75)
            aug = T.Compose(
                [
                    T.HalfBody(COCO17.upper_body, prob=0.5, rng=rng),
                    T.RandomFlip(COCO17.flip_index, prob=0.5, rng=rng),
                    T.RandomAffine(
                        (256, 192),
                        max_rotation=30,
                        scale_range=(0.75, 1.25),
                        max_shift=0.0,
                        rot_prob=1.0,
                        rng=rng,
                    ),
                ]
            )
            s = aug(
                {
                    "image": img.copy(),
                    "keypoints": person[None].copy(),
                    "center": center,
                    "scale": scale,
                }
            )
            assert s["image"].shape == (256, 192, 3)
            back = T.affine_points(s["keypoints"], T.invert_affine(s["matrix"]))
            if s.get("flipped"):
                back = back[:, COCO17.flip_index]
            np.testing.assert_allclose(back, person[None], atol=0.01)
            direct = T.apply_affine(img, s["matrix"], (192, 256)).astype(np.int16)
            assert np.abs(direct - s["image"].astype(np.int16)).mean() < 0.5


def test_random_affine_without_randomness_maps_short_side_to_output(coco_samples):
    img, kp = coco_samples[0]  # 640 x 425
    s = T.RandomAffine(512, max_rotation=0, scale_range=(1, 1), max_shift=0)(
        {"image": img, "keypoints": kp.copy()}
    )
    np.testing.assert_allclose(s["matrix"][:, :2], np.diag([512 / 425] * 2), atol=1e-12)
    np.testing.assert_allclose(
        T.affine_points(np.array([320.0, 212.5]), s["matrix"]), [256.0, 256.0], atol=1e-9
    )


def test_half_body_picks_one_half_of_the_joints():
    kp = np.zeros((17, 3))
    kp[:, 0] = np.arange(17) * 3.0 + 100
    kp[:, 1] = np.arange(17) * 10.0 + 50
    kp[:, 2] = 2
    upper = kp[list(COCO17.upper_body), :2]
    lower = kp[[i for i in range(17) if i not in COCO17.upper_body], :2]
    for seed in range(6):
        s = T.HalfBody(
            COCO17.upper_body,
            aspect_ratio=0.75,
            prob=1.0,
            padding=1.5,
            rng=np.random.default_rng(seed),
        )({"keypoints": kp[None].copy(), "center": np.zeros(2), "scale": np.ones(2)})
        pts = upper if np.allclose(s["center"], upper.mean(0)) else lower
        np.testing.assert_allclose(s["center"], pts.mean(0))
        span = pts.max(0) - pts.min(0)  # tall: width grows to 0.75 * height, then x1.5
        np.testing.assert_allclose(s["scale"], [span[1] * 0.75 * 1.5, span[1] * 1.5])


def test_color_jitter_keeps_geometry_and_gray_stays_gray(coco_samples):
    img, kp = coco_samples[1]
    s = T.ColorJitter(0.0, 0.0, 0.0)({"image": img.copy(), "keypoints": kp.copy()})
    assert np.array_equal(s["image"], img) and np.array_equal(s["keypoints"], kp)
    rng = np.random.default_rng(0)
    gray = np.repeat(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None], 3, axis=2)
    s = T.ColorJitter(0.4, 0.4, 0.4, rng=rng)({"image": gray.copy(), "keypoints": kp.copy()})
    assert np.array_equal(s["keypoints"], kp)
    assert not np.array_equal(s["image"], gray)
    assert np.array_equal(s["image"][:, :, 0], s["image"][:, :, 1])
    assert np.array_equal(s["image"][:, :, 0], s["image"][:, :, 2])


def test_default_randomness_follows_numpy_global_seed(coco_samples):
    # DataLoader workers are seeded through numpy's global state; rng=None must follow it.
    img, kp = coco_samples[2]
    aug = T.Compose([T.RandomAffine(256), T.RandomFlip(COCO17.flip_index)])
    np.random.seed(123)
    a = aug({"image": img.copy(), "keypoints": kp.copy()})["matrix"]
    np.random.seed(123)
    b = aug({"image": img.copy(), "keypoints": kp.copy()})["matrix"]
    c = aug({"image": img.copy(), "keypoints": kp.copy()})["matrix"]
    assert np.array_equal(a, b) and not np.array_equal(b, c)
