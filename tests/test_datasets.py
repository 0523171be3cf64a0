"""Datasets on the real sample data: counts from the data README, exact coordinate round trips,
ignore masks against pycocotools, MPII 1-based handling against the official .mat files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from fusepose.data import collate
from fusepose.data import transforms as T
from fusepose.data.coco import (
    CocoBottomUpDataset,
    CocoTopDownDataset,
    load_coco_keypoints,
    load_detections,
)
from fusepose.data.mpii import MpiiDataset, load_mpii
from fusepose.skeletons import COCO17, CROWDPOSE14, MPII16

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def _labelled(path):
    """Counts straight from the JSON (no fusepose code)."""
    d = json.loads(path.read_text())
    kps = [np.asarray(a["keypoints"]).reshape(-1, 3) for a in d["annotations"]]
    return (
        len(d["images"]),
        len(kps),
        sum(int((k[:, 2] > 0).any()) for k in kps),
        sum(int((k[:, 2] > 0).sum()) for k in kps),
    )


# ------------------------------------------------------------------------------ COCO-format index


@pytest.mark.parametrize(
    "folder,file,counts,K",
    [
        ("mmpose_coco", "test_coco.json", (4, 14, 12, 181), 17),
        ("mmpose_crowdpose", "test_crowdpose.json", (2, 5, 4, 47), 14),
        ("mmpose_ochuman", "test_ochuman.json", (3, 5, 5, 73), 17),
    ],
)
def test_loader_counts_match_data_readme(shared_data, folder, file, counts, K):
    path = shared_data / folder / file
    idx = load_coco_keypoints(path)
    got = (
        idx.num_images,
        idx.num_annotations,
        idx.num_people_with_keypoints,
        idx.num_labelled_keypoints,
    )
    assert got == counts  # the README's numbers
    assert _labelled(path) == counts  # and the raw JSON agrees
    assert idx.num_keypoints == K


def test_coco_index_keypoints_and_limbs(coco_dir):
    idx = load_coco_keypoints(coco_dir / "test_coco.json")
    raw = json.loads((coco_dir / "test_coco.json").read_text())
    first = raw["annotations"][0]
    kp = idx.keypoints(first["image_id"])
    assert kp.shape == (1, 17, 3)
    np.testing.assert_array_equal(kp[0].ravel(), first["keypoints"])
    assert idx.keypoint_names == COCO17.keypoints
    assert set(idx.limbs) == set(COCO17.limbs)  # COCO 1-based skeleton -> 0-based limbs


# ------------------------------------------------------------------------------ bottom-up


@pytest.mark.parametrize(
    "folder,file,skeleton,n",
    [
        ("mmpose_coco", "test_coco.json", "coco", 4),
        ("mmpose_crowdpose", "test_crowdpose.json", "crowdpose", 2),
        ("mmpose_ochuman", "test_ochuman.json", "ochuman", 3),  # portrait images
    ],
)
def test_bottom_up_test_samples_round_trip_and_sizes(shared_data, folder, file, skeleton, n):
    d = shared_data / folder
    ds = CocoBottomUpDataset(d / file, d, None, train=False, skeleton=skeleton)
    idx = ds.index
    assert len(ds) == n
    for i in range(len(ds)):
        s = ds[i]
        iid = s["meta"]["image_id"]
        im = idx.images[iid]
        M, (w_in, h_in) = T.bottom_up_warp((im["height"], im["width"]), 512)
        assert s["image"].shape == (3, h_in, w_in) and min(h_in, w_in) == 512
        np.testing.assert_allclose(s["meta"]["matrix"], M)
        orig = idx.keypoints(iid)
        back = T.affine_points(
            s["keypoints"].numpy().astype(np.float64),
            cv2.invertAffineTransform(s["meta"]["matrix"]),
        )
        np.testing.assert_allclose(back, orig, atol=0.01)


@pytest.mark.parametrize("seed,flip_prob", [(0, 1.0), (1, 0.5), (2, 0.0)])
def test_bottom_up_train_samples_round_trip_with_flip(coco_dir, seed, flip_prob):
    ds = CocoBottomUpDataset(
        coco_dir / "test_coco.json",
        coco_dir,
        None,
        train=True,
        rng=np.random.default_rng(seed),
        flip_prob=flip_prob,
    )
    flips = 0
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].shape == (3, 512, 512) and s["mask"].shape == (512, 512)
        back = T.affine_points(
            s["keypoints"].numpy().astype(np.float64),
            cv2.invertAffineTransform(s["meta"]["matrix"]),
        )
        if s["meta"]["flipped"]:
            back = back[:, COCO17.flip_index]
            flips += 1
        np.testing.assert_allclose(back, ds.index.keypoints(s["meta"]["image_id"]), atol=0.01)
        # the network image is the original warped with meta.matrix (same matrix as the points)
        raw = cv2.imread(s["meta"]["path"])
        direct = T.normalize(T.apply_affine(raw, s["meta"]["matrix"], (512, 512)))
        assert np.abs(direct - s["image"].numpy()).mean() < 0.02
    if flip_prob in (0.0, 1.0):
        assert flips == flip_prob * len(ds)


def test_bottom_up_ignore_mask_matches_pycocotools(coco_dir, shared_data):
    # COCO: the two num_keypoints == 0 people are ignored (official HigherHRNet get_mask).
    ds = CocoBottomUpDataset(coco_dir / "test_coco.json", coco_dir, None, train=False)
    coco = COCO(str(coco_dir / "test_coco.json"))
    total_ignored = 0
    for i in range(len(ds)):
        raw = ds.load_raw(i)
        iid = raw["image_id"]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=iid))
        ref = np.zeros(raw["mask"].shape, bool)
        for a in anns:
            if a["iscrowd"] or a["num_keypoints"] == 0:
                ref |= coco.annToMask(a).astype(bool)
        np.testing.assert_array_equal(raw["mask"] == 0, ref)
        total_ignored += int(ref.sum())
        assert raw["keypoints"].shape[0] == len(anns)  # no crowd regions in this file
    assert total_ignored > 0
    # OCHuman (RLE masks): everybody has keypoints -> nothing ignored
    och = shared_data / "mmpose_ochuman"
    ds2 = CocoBottomUpDataset(och / "test_ochuman.json", och, None, train=False)
    for i in range(len(ds2)):
        assert ds2.load_raw(i)["mask"].all()
    # CrowdPose: one person without keypoints and without segmentation -> its box is ignored
    cp = shared_data / "mmpose_crowdpose"
    ds3 = CocoBottomUpDataset(
        cp / "test_crowdpose.json", cp, None, train=False, skeleton="crowdpose"
    )
    raw_json = json.loads((cp / "test_crowdpose.json").read_text())
    empty = [a for a in raw_json["annotations"] if max(a["keypoints"][2::3]) == 0]
    assert len(empty) == 1
    i = ds3.image_ids.index(empty[0]["image_id"])
    ignored = ds3.load_raw(i)["mask"] == 0
    x, y, w, h = empty[0]["bbox"]
    ys, xs = np.nonzero(ignored)
    assert xs.min() >= int(x) and xs.max() <= x + w and ys.min() >= int(y) and ys.max() <= y + h
    assert abs(ignored.sum() - w * h) < (w + h) * 2  # the box area, up to its border pixels


class _RecordingCodec:
    """A test double with the AssociativeEmbeddingCodec.encode signature."""

    def __init__(self):
        self.calls = []

    def encode(self, keypoints, valid_mask):
        self.calls.append((keypoints.copy(), valid_mask.copy()))
        h, w = valid_mask.shape
        return {
            "heatmaps": [
                np.full((17, h // 4, w // 4), 1, np.float32),
                np.full((17, h // 2, w // 2), 2, np.float32),
            ],
            "masks": [
                valid_mask[::4, ::4].astype(np.float32),
                valid_mask[::2, ::2].astype(np.float32),
            ],
            "tag_joints": np.zeros((30, 17, 2), np.int64),
        }


def test_bottom_up_codec_gets_input_pixel_keypoints_and_collates(coco_dir):
    codec = _RecordingCodec()
    ds = CocoBottomUpDataset(
        coco_dir / "test_coco.json", coco_dir, codec, train=True, rng=np.random.default_rng(0)
    )
    batch = collate([ds[i] for i in range(3)])
    kp, mask = codec.calls[0]
    assert mask.shape == (512, 512) and mask.dtype == np.uint8
    np.testing.assert_allclose(kp, batch["keypoints"][0, : len(kp)].numpy(), atol=1e-4)
    assert [t.shape for t in batch["heatmaps"]] == [(3, 17, 128, 128), (3, 17, 256, 256)]
    assert batch["tag_joints"].shape == (3, 30, 17, 2) and batch["tag_joints"].dtype == torch.int64
    assert batch["image"].shape == (3, 3, 512, 512)
    assert isinstance(batch["meta"], list) and len(batch["meta"]) == 3
    assert "mask" not in batch  # the codec's masks replace the raw mask


# ------------------------------------------------------------------------------ top-down


def test_top_down_entries_follow_hrnet_rules(coco_dir):
    ann = coco_dir / "test_coco.json"
    det = coco_dir / "test_coco_det_AP_H_56.json"
    assert len(CocoTopDownDataset(ann, coco_dir, None, train=True)) == 12  # with keypoints
    assert len(CocoTopDownDataset(ann, coco_dir, None, train=False)) == 14  # every GT box
    raw = json.loads(det.read_text())
    assert len(CocoTopDownDataset(ann, coco_dir, None, train=False, det_file=det)) == 118
    n_half = sum(d["score"] >= 0.5 for d in raw)
    ds = CocoTopDownDataset(ann, coco_dir, None, train=False, det_file=det, det_score_thr=0.5)
    assert len(ds) == n_half and 0 < n_half < 118
    assert len(load_detections(det, score_thr=0.5)) == n_half


def test_top_down_test_sample_is_the_padded_box(coco_dir):
    ds = CocoTopDownDataset(coco_dir / "test_coco.json", coco_dir, None, train=False)
    s = ds[0]
    x, y, w, h = s["meta"]["box"]
    assert s["image"].shape == (3, 256, 192)
    M = s["meta"]["matrix"]
    np.testing.assert_allclose(
        T.affine_points(np.array([x + w / 2, y + h / 2]), M), [96.0, 128.0], atol=1e-9
    )
    # 1.25 x padding, aspect 3:4: the box fits and touches two opposite sides at 1/1.25
    scale = s["meta"]["scale"]
    assert scale[0] / scale[1] == pytest.approx(0.75)
    assert max(w / scale[0], h / scale[1]) == pytest.approx(1 / 1.25)


@pytest.mark.parametrize("seed", [0, 5])
def test_top_down_train_round_trip_on_real_images(coco_dir, seed):
    ds = CocoTopDownDataset(
        coco_dir / "test_coco.json",
        coco_dir,
        None,
        train=True,
        rng=np.random.default_rng(seed),
        half_body_prob=0.5,
    )
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].shape == (3, 256, 192) and s["keypoints"].shape == (17, 3)
        back = T.affine_points(
            s["keypoints"].numpy().astype(np.float64),
            cv2.invertAffineTransform(s["meta"]["matrix"]),
        )
        if s["meta"]["flipped"]:
            back = back[COCO17.flip_index]
        np.testing.assert_allclose(back, ds.entries[i]["keypoints"], atol=0.01)


class _TopDownCodec:
    """A test double with the TopDownHeatmapCodec.encode signature."""

    def encode(self, keypoints):
        return {"heatmaps": np.zeros((keypoints.shape[0], 64, 48), np.float32),
                "target_weight": (keypoints[:, 2] > 0).astype(np.float32)}  # fmt: skip


def test_top_down_codec_targets_and_crowdpose(coco_dir, shared_data):
    ds = CocoTopDownDataset(
        coco_dir / "test_coco.json",
        coco_dir,
        _TopDownCodec(),
        train=True,
        rng=np.random.default_rng(0),
    )
    b = collate([ds[i] for i in range(4)])
    assert b["heatmaps"].shape == (4, 17, 64, 48) and b["target_weight"].shape == (4, 17)
    cp = shared_data / "mmpose_crowdpose"
    ds2 = CocoTopDownDataset(
        cp / "test_crowdpose.json",
        cp,
        None,
        train=True,
        skeleton=CROWDPOSE14,
        rng=np.random.default_rng(0),
    )
    assert len(ds2) == 4 and ds2[0]["keypoints"].shape == (14, 3)


# ------------------------------------------------------------------------------ MPII


@pytest.fixture(scope="module")
def mpii_mats(shared_data):
    d = shared_data / "mpii_valid_eval"
    return load_mpii(d / "detections_our_format.mat"), load_mpii(d / "detections.mat")


def test_mpii_json_equals_official_mat_after_one_based_handling(shared_data, mpii_mats):
    path = shared_data / "mmpose_mpii" / "test_mpii.json"
    js = load_mpii(path)
    raw = json.loads(path.read_text())
    assert len(js) == 5
    # exactly one subtraction of 1: loaded + 1 == the file
    np.testing.assert_array_equal(js.joints + 1, [e["joints"] for e in raw])
    # HRNet centre/scale: (objpos_x, objpos_y + 15 s) - 1 and 200 * 1.25 * s pixels
    assert js.center[0].tolist() == pytest.approx([966 - 1, 340 + 15 * 4.718488 - 1])
    assert js.scale[0] == pytest.approx(4.718488 * 1.25 * 200)
    gt, _ = mpii_mats
    np.testing.assert_array_equal(js.visible, gt.visible[:5])  # joints_vis == 1 - jnt_missing
    ann = js.visible > 0
    assert np.abs(js.joints - gt.joints[:5])[ann].max() < 4e-5


def test_mpii_mat_counts_and_native_structure(shared_data, mpii_mats):
    gt, native = mpii_mats
    assert len(gt) == len(native) == 2958
    assert gt.num_annotated == native.num_annotated == 44240
    assert gt.joints.shape == (2958, 16, 2) and gt.headboxes.shape == (2958, 2, 2)
    # the two official layouts agree, except the 13 annotated joints where the eval .mat
    # stores an x or y of exactly 0 (see data README)
    ann = gt.visible > 0
    assert np.array_equal(ann, native.visible > 0)
    diff = np.abs(gt.joints - native.joints).max(axis=2)
    bad = ann & (diff > 1e-3)
    assert bad.sum() == 13
    assert np.all(np.any(gt.joints[bad] == -1.0, axis=1))  # a 1-based 0, shifted once
    assert np.abs(gt.headboxes - native.headboxes).max() < 1e-4
    # head sizes equal the hourglass file's "normalize" (0.6 x head diagonal) within 6e-5
    import h5py

    with h5py.File(shared_data / "mpii_valid_eval" / "valid.h5", "r") as f:
        norm = f["normalize"][:]
        center = f["center"][:]
        scale = f["scale"][:]
    assert np.abs(gt.head_sizes() - norm).max() < 6e-5
    # hourglass stores the same adjusted centre (1-based) and 1.25 x scale
    np.testing.assert_allclose(native.center + 1, center, atol=1e-3)
    np.testing.assert_allclose(native.scale / 200, scale, atol=1e-4)


def test_mpii_dataset_samples(shared_data):
    d = shared_data / "mmpose_mpii"
    ds = MpiiDataset(d / "test_mpii.json", d, None, train=False)
    assert len(ds) == 5
    s = ds[0]
    assert s["image"].shape == (3, 256, 256)
    np.testing.assert_allclose(
        T.affine_points(ds.ann.center[0], s["meta"]["matrix"]), [128.0, 128.0], atol=1e-9
    )
    back = T.affine_points(
        s["keypoints"].numpy().astype(np.float64), cv2.invertAffineTransform(s["meta"]["matrix"])
    )
    np.testing.assert_allclose(back[:, :2], ds.ann.joints[0], atol=0.01)
    tr = MpiiDataset(d / "test_mpii.json", d, None, train=True, rng=np.random.default_rng(1))
    for i in range(len(tr)):
        s = tr[i]
        back = T.affine_points(
            s["keypoints"].numpy().astype(np.float64),
            cv2.invertAffineTransform(s["meta"]["matrix"]),
        )
        if s["meta"]["flipped"]:
            back = back[MPII16.flip_index]
        vis = tr.ann.visible[i] > 0
        np.testing.assert_allclose(back[vis, :2], tr.ann.joints[i][vis], atol=0.01)


def test_mpii_mat_dataset_with_image_list(shared_data):
    ev = shared_data / "mpii_valid_eval"
    ds = MpiiDataset(
        ev / "detections.mat",
        shared_data / "mmpose_mpii",
        None,
        train=False,
        image_list=ev / "valid_images.txt",
        max_images=5,
    )
    js = load_mpii(shared_data / "mmpose_mpii" / "test_mpii.json")
    assert len(ds) == 5 and ds.ann.images[:5] == js.images
    np.testing.assert_allclose(ds.ann.center[:5], js.center, atol=1e-3)
    s = ds[2]
    assert s["meta"]["headbox"].shape == (2, 2)


# ------------------------------------------------------------------------------ collate


def test_collate_pads_variable_sizes_and_keeps_meta():
    a = {
        "image": torch.ones(3, 4, 6),
        "keypoints": torch.ones(2, 17, 3),
        "meta": {"i": 0},
        "heatmaps": [torch.zeros(17, 2, 2)],
        "n": 1,
    }
    b = {
        "image": torch.ones(3, 5, 4),
        "keypoints": torch.ones(0, 17, 3),
        "meta": {"i": 1},
        "heatmaps": [torch.zeros(17, 2, 2)],
        "n": 2,
    }
    batch = collate([a, b])
    assert batch["image"].shape == (2, 3, 5, 6)
    assert batch["image"][0, :, 4:].abs().sum() == 0 and batch["image"][0, :, :4, :6].all()
    assert batch["image_shape"].tolist() == [[3, 4, 6], [3, 5, 4]]
    assert batch["keypoints"].shape == (2, 2, 17, 3) and batch["keypoints"][1].sum() == 0
    assert batch["keypoints_shape"][:, 0].tolist() == [2, 0]
    assert batch["meta"] == [{"i": 0}, {"i": 1}]
    assert batch["heatmaps"][0].shape == (2, 17, 2, 2)
    assert batch["n"].tolist() == [1, 2]


def test_dataloader_with_collate(coco_dir):
    ds = CocoBottomUpDataset(
        coco_dir / "test_coco.json", coco_dir, None, train=True, rng=np.random.default_rng(0)
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["image"].shape == (2, 3, 512, 512)


# ------------------------------------------------------------------------------ with the real codecs


def test_top_down_with_real_codec_decodes_back_to_the_annotation(coco_dir):
    codecs = pytest.importorskip("fusepose.codecs")
    codec = codecs.TopDownHeatmapCodec(input_size=(256, 192), heatmap_size=(64, 48), sigma=2.0)
    ds = CocoTopDownDataset(coco_dir / "test_coco.json", coco_dir, codec, train=False)
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch["heatmaps"].shape == (14, 17, 64, 48)
    coords, _ = codec.decode(batch["heatmaps"])
    checked = 0
    for b, meta in enumerate(batch["meta"]):
        w = batch["target_weight"][b].numpy() > 0
        orig = T.affine_points(coords[b], cv2.invertAffineTransform(meta["matrix"]))
        gt = ds.entries[b]["keypoints"]
        # GT -> targets -> decode -> original frame: within a fraction of a heatmap pixel
        # (one heatmap pixel = 4 input px = 4 / scale original px)
        tol = 4 * meta["scale"][0] / 192 * 0.5
        if w.any():  # two GT people have no labelled keypoints
            checked += 1
            assert np.abs(orig[w] - gt[w, :2]).max() < tol
    assert checked == 12


def test_bottom_up_with_real_codec_targets(coco_dir):
    codecs = pytest.importorskip("fusepose.codecs")
    codec = codecs.AssociativeEmbeddingCodec(17, 512, flip_index=COCO17.flip_index)
    ds = CocoBottomUpDataset(
        coco_dir / "test_coco.json", coco_dir, codec, train=True, rng=np.random.default_rng(0)
    )
    s = ds[0]
    assert [tuple(h.shape) for h in s["heatmaps"]] == [(17, 128, 128), (17, 256, 256)]
    assert [tuple(m.shape) for m in s["masks"]] == [(128, 128), (256, 256)]
    assert tuple(s["tag_joints"].shape) == (30, 17, 2)
    # every labelled in-frame keypoint has its heatmap peak at keypoint / 2 on the 1/2 map
    kp = s["keypoints"].numpy()
    hm = s["heatmaps"][1].numpy()
    for person in kp:
        for k, (x, y, v) in enumerate(person):
            if v > 0 and 4 <= x < 508 and 4 <= y < 508:
                cx, cy = int(round(x / 2)), int(round(y / 2))
                assert hm[k, cy - 1 : cy + 2, cx - 1 : cx + 2].max() > 0.5


def test_crowd_region_uncompressed_rle_is_ignored_like_pycocotools(tmp_path, coco_dir):
    d = json.loads((coco_dir / "test_coco.json").read_text())
    im = d["images"][0]  # 640 x 425
    h, w = im["height"], im["width"]
    m = np.zeros((h, w), np.uint8)
    m[40:90, 500:620] = 1
    flat = m.ravel(order="F")  # COCO RLE runs are column-major, starting with zeros
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    crowd = {
        "id": 1,
        "image_id": im["id"],
        "category_id": 1,
        "iscrowd": 1,
        "segmentation": {"counts": runs, "size": [h, w]},
        "area": 6000.0,
        "bbox": [500, 40, 120, 50],
        "num_keypoints": 0,
        "keypoints": [0] * 51,
    }
    d["annotations"].append(crowd)
    ann = tmp_path / "crowd.json"
    ann.write_text(json.dumps(d))
    ds = CocoBottomUpDataset(ann, coco_dir, None, train=False)
    raw = ds.load_raw(ds.image_ids.index(im["id"]))
    coco = COCO(str(ann))
    ref = np.zeros((h, w), bool)
    for a in coco.loadAnns(coco.getAnnIds(imgIds=im["id"])):
        if a["iscrowd"] or a["num_keypoints"] == 0:
            ref |= coco.annToMask(a).astype(bool)
    assert ref[40:90, 500:620].all()
    np.testing.assert_array_equal(raw["mask"] == 0, ref)
    assert raw["keypoints"].shape[0] == 1  # the crowd region is not a person
    # top-down never uses crowd boxes
    assert len(CocoTopDownDataset(ann, coco_dir, None, train=False)) == 14
