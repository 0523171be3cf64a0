"""The official HigherHRNet conventions: EXIF orientation, multi-scale test sizes, and the
training-target quirks behind switches (``data.official_flip``, ``data.official_mask``,
``data.official_shift``).

The official behaviour is recomputed here from its description in the official code
(HRNet/HigherHRNet-Human-Pose-Estimation ``lib/dataset/transforms/transforms.py``:
``RandomAffineTransform`` warps joints and mask straight to each output resolution with the
output-size matrix, ``RandomHorizontalFlip`` then mirrors them with ``res - 1 - x`` and
``mask[:, ::-1]``; ``HeatmapGenerator`` puts a joint at ``int(x), int(y)``), not from
fusepose's encoder.
"""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest

from fusepose.codecs.associative_embedding import AssociativeEmbeddingCodec
from fusepose.codecs.pipelines import build_pipeline
from fusepose.data import read_image
from fusepose.data import transforms as T
from fusepose.data.bottom_up import CocoBottomUpDataset
from fusepose.data.synth import coco_categories
from fusepose.inference.sources import iter_frames
from fusepose.modelfile import default_description
from fusepose.skeletons import COCO17

# ----------------------------------------------------------------------------- EXIF


def exif_orientation_app1(orientation: int) -> bytes:
    """A JPEG APP1 segment holding an EXIF IFD0 with one Orientation tag (0x0112, SHORT),
    big-endian TIFF header; written by hand (no EXIF package)."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)  # tag, SHORT, count 1, value
    ifd = struct.pack(">H", 1) + entry + struct.pack(">I", 0)  # one entry, no next IFD
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd  # IFD0 right after the 8-byte header
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def write_rotated_jpeg(path, orientation: int = 6) -> np.ndarray:
    """A 40 x 60 JPEG (stored frame) with a white top-left corner, tagged ``orientation``."""
    img = np.full((40, 60, 3), 40, np.uint8)
    img[:10, :10] = 255
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    data = buf.tobytes()
    path.write_bytes(data[:2] + exif_orientation_app1(orientation) + data[2:])  # after SOI
    return img


def test_exif_orientation_6_datasets_stored_frame_predictor_upright(tmp_path):
    write_rotated_jpeg(tmp_path / "photo.jpg", 6)
    # datasets (and evaluation): the stored frame, as the official IMREAD_IGNORE_ORIENTATION
    stored = read_image(tmp_path / "photo.jpg")
    assert stored.shape == (40, 60, 3) and stored[:5, :5].mean() > 200
    ann = tmp_path / "ann.json"
    person = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 1,
              "bbox": [5, 5, 20, 20], "area": 400, "keypoints": [10, 10, 2] + [0] * 48}  # fmt: skip
    ann.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "photo.jpg", "width": 60, "height": 40}],
        "annotations": [person], "categories": coco_categories(),
    }))  # fmt: skip
    raw = CocoBottomUpDataset(ann, tmp_path, None, train=False).load_raw(0)  # size checked
    assert raw["image"].shape == (40, 60, 3)
    # the predictor's sources: upright, as a photo viewer shows it (Orientation 6 = the stored
    # image turned 90 degrees clockwise: the stored top-left corner goes to the top-right)
    for frames in (iter_frames(tmp_path / "photo.jpg"), iter_frames(tmp_path)):
        upright = next(frames).image
        assert upright.shape == (60, 40, 3)
        assert upright[:5, -5:].mean() > 200 and upright[:5, :5].mean() < 100


# ----------------------------------------------------------------------- multi-scale


def test_multi_scale_input_sizes_equal_the_official_ones():
    """A 640x425 image at scales (0.5, 1, 2): official get_multi_scale_size aligns the long
    side at the smallest scale (256 / 425 * 640 = 385.5 -> 448) and scales it up: 448, 896,
    1792 wide (fusepose used to round at each scale: 416, 832, 1664)."""
    desc = default_description("higherhrnet_w32").replace(test_scales=(0.5, 1.0, 2.0))
    pipe = build_pipeline(desc)
    sizes = {s: pipe.warp((425, 640), s)[1] for s in (0.5, 1.0, 2.0)}
    assert sizes == {0.5: (448, 256), 1.0: (896, 512), 2.0: (1792, 1024)}
    prepared = pipe.prepare(np.zeros((425, 640, 3), np.uint8))
    assert [b.shape[-1] for b in prepared.batches] == [448, 896, 1792]


# --------------------------------------------------------------- training targets


def _official_targets(kpts_orig, mask_orig, A, flipped: bool, res: int):
    """Joints ``(N, K, 2)`` int and mask ``(res, res)`` at one output resolution, the
    official way: warp with the output-size matrix, then flip with ``res - 1 - x``."""
    s = 512 / res
    A_out = np.asarray(A, np.float64) / s  # _get_affine_matrix at (res, res) = input matrix / s
    joints = T.affine_points(kpts_orig, A_out)
    mask = cv2.warpAffine((mask_orig * 255).astype(np.uint8), A_out, (res, res)) / 255
    mask = (mask > 0.5).astype(np.float32)
    if flipped:
        mask = mask[:, ::-1]
        joints = joints[:, COCO17.flip_index]
        joints[..., 0] = res - joints[..., 0] - 1
    return joints[..., :2].astype(np.int64), joints[..., 2] > 0, mask  # int(): toward zero


@pytest.mark.parametrize("seed", [0, 3])
def test_official_flip_and_mask_equal_the_official_targets(coco_dir, seed):
    codec = AssociativeEmbeddingCodec(17, (512, 512), flip_index=COCO17.flip_index)
    kw = dict(train=True, flip_prob=1.0, rotation=30.0)
    ds = CocoBottomUpDataset(coco_dir / "test_coco.json", coco_dir, codec, official_flip=True,
                             official_mask=True, rng=np.random.default_rng(seed), **kw)  # fmt: skip
    plain = CocoBottomUpDataset(coco_dir / "test_coco.json", coco_dir, codec,
                                rng=np.random.default_rng(seed), **kw)  # fmt: skip
    shifted = mask_diff = 0
    for i in range(len(ds)):
        s, p = ds[i], plain[i]
        assert s["meta"]["flipped"] and np.allclose(s["meta"]["matrix"], p["meta"]["matrix"])
        raw = ds.load_raw(i)
        A = T.compose_affine(T.flip_matrix(512), s["meta"]["matrix"])  # the affine before flip
        for k, res in enumerate((128, 256)):
            xy, vis, mask = _official_targets(raw["keypoints"], raw["mask"], A, True, res)
            hm = s["heatmaps"][k].numpy()
            ok = vis & (xy >= 0).all(-1) & (xy < res).all(-1)
            for j in range(17):  # the Gaussian centres (value 1) are the official joints
                want = {(int(x), int(y)) for (x, y), o in zip(xy[:, j], ok[:, j], strict=True) if o}
                got = {(int(x), int(y)) for y, x in zip(*np.nonzero(hm[j] == 1.0), strict=True)}
                assert got == want, (i, res, j)
            diff = s["masks"][k].numpy() != mask
            # the same bilinear sample point; OpenCV rounds it to 1/32 px in both warps
            assert diff.mean() < 0.002, (i, res, diff.mean())
            mask_diff += int(diff.sum())
            phm = p["heatmaps"][k].numpy()
            shifted += int((phm != hm).any())
        # tag indices at 1/4 follow the same joints
        xy, vis, _ = _official_targets(raw["keypoints"], raw["mask"], A, True, 128)
        tj = s["tag_joints"].numpy()
        for n in range(len(xy)):
            for j in range(17):
                if tj[n, j, 1]:
                    x, y = xy[n, j]
                    assert tj[n, j, 0] == j * 128 * 128 + y * 128 + x
    assert shifted > 0  # the default (geometrically exact) flip gives other targets


def test_default_flip_targets_are_the_unflipped_rule_on_the_mirrored_image(coco_dir):
    """Without official_flip a flipped sample is encoded like any other: int(x / s) of its
    input-pixel joints, which equals the official *unflipped* rule applied to the mirror."""
    codec = AssociativeEmbeddingCodec(17, (512, 512), flip_index=COCO17.flip_index)
    ds = CocoBottomUpDataset(coco_dir / "test_coco.json", coco_dir, codec, train=True,
                             flip_prob=1.0, rng=np.random.default_rng(1))  # fmt: skip
    s = ds[0]
    raw = ds.load_raw(0)
    xy, vis, _ = _official_targets(raw["keypoints"], raw["mask"], s["meta"]["matrix"], False, 128)
    hm = s["heatmaps"][0].numpy()
    ok = vis & (xy >= 0).all(-1) & (xy < 128).all(-1)
    j = int(np.argmax(ok.sum(0)))
    want = {(int(x), int(y)) for (x, y), o in zip(xy[:, j], ok[:, j], strict=True) if o}
    assert (
        want and {(int(x), int(y)) for y, x in zip(*np.nonzero(hm[j] == 1.0), strict=True)} == want
    )


def test_official_shift_is_numpys_integer_randint():
    """Official: center += np.random.randint(-m, m) with m = 40 * scale (float bounds: int()
    toward zero, upper bound excluded)."""
    sample = {"image": np.zeros((13, 40, 3), np.uint8)}  # crop 13 px: m = 0.2 * 13 = 2.6
    m_px = 0.2 * 13
    aff = T.RandomAffine(32, max_rotation=0, scale_range=(1, 1), max_shift=0.2,
                         rng=np.random.default_rng(0), integer_shift=True)  # fmt: skip
    shifts = []
    for _ in range(400):
        c, _, _ = aff.sample_params(sample)
        shifts.append(c - np.array([20.0, 6.5]))
    shifts = np.array(shifts)
    official = {int(np.random.randint(-m_px, m_px)) for _ in range(400)}
    assert set(shifts[:, 0].tolist()) == set(shifts[:, 1].tolist()) == official
    assert official == {-2, -1, 0, 1}
    cont = T.RandomAffine(32, max_rotation=0, scale_range=(1, 1), max_shift=0.2,
                          rng=np.random.default_rng(0))  # fmt: skip
    c, _, _ = cont.sample_params(sample)
    assert not float(c[0] - 20.0).is_integer()
