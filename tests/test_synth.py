"""Synthetic COCO-format people: determinism, format, visibility, CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusepose.data.synth import (
    SynthConfig,
    generate_synthetic,
    mirror_person,
    person_keypoints,
    random_person,
    render_image,
    render_people,
)
from fusepose.data.transforms import RandomFlip
from fusepose.errors import DataError
from fusepose.skeletons import COCO17


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_synthetic(out, 24, seed=3, size=256, val_fraction=0.25)
    return out


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic_for_a_seed(tmp_path, synth_dir):
    generate_synthetic(tmp_path / "a", 24, seed=3, size=256, val_fraction=0.25)
    assert _digest(tmp_path / "a") == _digest(synth_dir)
    generate_synthetic(tmp_path / "b", 24, seed=4, size=256, val_fraction=0.25)
    assert _digest(tmp_path / "b") != _digest(synth_dir)


def test_loads_with_pycocotools_and_is_consistent(synth_dir):
    from pycocotools.coco import COCO

    train, val = COCO(str(synth_dir / "train.json")), COCO(str(synth_dir / "val.json"))
    assert len(train.getImgIds()) == 18 and len(val.getImgIds()) == 6
    assert not set(train.getImgIds()) & set(val.getImgIds())
    cat = train.loadCats(1)[0]
    assert cat["keypoints"] == list(COCO17.keypoints)
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in COCO17.limbs]
    n_occluded = n_outside = n_crowd = 0
    for coco in (train, val):
        for img in coco.loadImgs(coco.getImgIds()):
            pixels = cv2.imread(str(synth_dir / "images" / img["file_name"]))
            assert pixels.shape == (img["height"], img["width"], 3) == (256, 256, 3)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
                kp = np.array(ann["keypoints"]).reshape(17, 3)
                assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
                assert ann["iscrowd"] in (0, 1) and ann["category_id"] == 1
                if ann["iscrowd"]:  # a crowd region: pixels, no keypoints
                    assert ann["num_keypoints"] == 0 and ann["area"] > 0
                    n_crowd += 1
                lab = kp[kp[:, 2] > 0]
                assert ((lab[:, :2] >= -0.5) & (lab[:, :2] < 256)).all()  # labelled = in frame
                assert (kp[kp[:, 2] == 0, :2] == 0).all()
                # the segmentation mask agrees with area and bbox
                m = coco.annToMask(ann)
                assert m.sum() == ann["area"] > 0
                x, y, w, h = ann["bbox"]
                ys, xs = np.nonzero(m)
                assert (
                    xs.min() >= x - 1
                    and xs.max() <= x + w
                    and ys.min() >= y - 1
                    and ys.max() <= y + h
                )
                # a visible joint sits on this person's visible pixels
                for jx, jy, v in kp:
                    if v == 2:
                        assert m[max(0, int(round(jy)) - 1) : int(round(jy)) + 2,
                                 max(0, int(round(jx)) - 1) : int(round(jx)) + 2].any()  # fmt: skip
                n_occluded += int((kp[:, 2] == 1).sum())
                n_outside += int((kp[:, 2] == 0).sum())
    assert n_occluded > 0 and n_outside > 0
    assert n_crowd > 0  # 24 images at iscrowd_prob 0.1: P(none) = 0.9 ** 24 = 8 %; seed 3 has


def test_render_occlusion_marks_covered_joints():
    """v = 1 where another person (drawn later, nearer) covers the joint, or where another
    part of the same body does (the far side of a side view); the masks are disjoint."""
    cfg = SynthConfig(size=256, min_people=4, max_people=6, crowd_prob=0.0)
    by_other = by_self = 0
    for i in range(30):
        img, anns = render_image(np.random.default_rng([7, i]), cfg)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        masks = [a["mask"] for a in anns]
        for j, a in enumerate(anns):
            for x, y, v in a["keypoints"]:
                xi, yi = int(round(x)), int(round(y))
                if v == 2:  # on its own pixels, or a pixel off its edge no one nearer covers
                    near = masks[j][max(0, yi - 1) : yi + 2, max(0, xi - 1) : xi + 2]
                    assert near.any() and not any(m[yi, xi] for m in masks[j + 1 :])
                elif v == 1:
                    owners = [m for m, mask in enumerate(masks) if mask[yi, xi]]
                    if owners == [j]:
                        by_self += 1
                    elif owners:
                        assert owners[0] > j  # drawn after j: nearer
                        by_other += 1
        total = np.sum(masks, axis=0)
        assert total.max() <= 1
    assert by_other > 0 and by_self > 0


def _person(seed: int, yaw: float, center=(80.0, 90.0), torso: float = 40.0):
    p = random_person(np.random.default_rng(seed), center, torso)
    return dataclasses.replace(p, yaw=float(yaw))


def test_views_put_left_and_right_where_a_person_has_them():
    """Front view: the person's left shoulder and hip on the image right; back view: on the
    image left; face points only where the head faces the camera; side view: the far side
    (the person's left when facing image right) hidden more often than the near side."""
    L, R = COCO17.keypoints.index("left_shoulder"), COCO17.keypoints.index("right_shoulder")
    LH, RH = COCO17.keypoints.index("left_hip"), COCO17.keypoints.index("right_hip")
    for seed in range(10):
        front = dataclasses.replace(_person(seed, 0.0), lean=0.0)
        back = dataclasses.replace(_person(seed, 180.0), lean=0.0)
        xy_f, _, lab_f = person_keypoints(front)
        xy_b, _, lab_b = person_keypoints(back)
        assert xy_f[L, 0] > xy_f[R, 0] and xy_f[LH, 0] > xy_f[RH, 0]
        assert xy_b[L, 0] < xy_b[R, 0] and xy_b[LH, 0] < xy_b[RH, 0]
        # |head yaw| <= 40: the nose and eyes face the camera from the front, not from behind
        assert lab_f[:3].all() and not lab_b[:3].any()
    far = near = 0
    bg = np.full((180, 160, 3), 128, np.uint8)
    for seed in range(20):
        _img, anns = render_people([_person(seed, 90.0)], bg)
        v = anns[0]["keypoints"][:, 2]
        far += int((v[5::2] == 1).sum())  # left joints 5, 7, ..., 15: the far side
        near += int((v[6::2] == 1).sum())
    assert far > near


def test_flip_keeps_keypoint_semantics():
    """A left wrist stays a left wrist: mark a rendered person's left wrist, flip the sample
    with the datasets' RandomFlip and the COCO flip pairs, and the label on the mark is the
    right wrist, because the flipped image is the mirrored person (whose right wrist that
    physical wrist is). Rendering :func:`mirror_person` directly gives the same pixels and
    the same labels, so a flipped sample is a sample of the renderer: flip is a valid
    augmentation. (A renderer with a side-dependent cue, like a lighter left side, fails the
    pixel comparison.)"""
    LW, RW = COCO17.keypoints.index("left_wrist"), COCO17.keypoints.index("right_wrist")
    S = 160
    bg = np.full((S, S, 3), 128, np.uint8)
    checked = 0
    for seed, yaw in ((1, 15.0), (2, 170.0), (3, 80.0), (4, -100.0), (5, -30.0), (6, 200.0)):
        person = _person(seed, yaw)
        img, anns = render_people([person], bg)
        kp = anns[0]["keypoints"]
        if kp[LW, 2] == 0:
            continue
        marked = img.copy()
        x, y = int(round(kp[LW, 0])), int(round(kp[LW, 1]))
        marked[y - 1 : y + 2, x - 1 : x + 2] = (0, 255, 0)
        sample = {"image": marked, "keypoints": kp[None].copy(), "matrix": np.eye(3)[:2]}
        out = RandomFlip(COCO17.flip_index, prob=1.0).apply(sample)
        ys, xs = np.nonzero(np.all(out["image"] == (0, 255, 0), axis=-1))
        assert len(xs) == 9
        flipped_kp = out["keypoints"][0]
        labelled = flipped_kp[:, 2] > 0
        dist = np.hypot(flipped_kp[:, 0] - xs.mean(), flipped_kp[:, 1] - ys.mean())
        dist[~labelled] = np.inf
        assert int(np.argmin(dist)) == RW and dist[RW] < 0.75

        m_img, m_anns = render_people([mirror_person(person, S)], bg)
        m_kp = m_anns[0]["keypoints"]
        assert ((m_kp[:, 2] > 0) == labelled).all()
        np.testing.assert_allclose(m_kp[labelled, :2], flipped_kp[labelled, :2], atol=1e-6)
        # the mirrored person's own right wrist is on the mark, its left wrist is not
        assert np.hypot(*(m_kp[RW, :2] - (xs.mean(), ys.mean()))) < 0.75
        assert m_kp[LW, 2] == 0 or np.hypot(*(m_kp[LW, :2] - (xs.mean(), ys.mean()))) > 2
        # same pixels up to rasterisation at edges
        differ = np.any(cv2.flip(img, 1).astype(int) - m_img.astype(int) != 0, axis=-1)
        assert differ.mean() < 0.01, differ.mean()
        checked += 1
    assert checked >= 4


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="--images"):
        generate_synthetic(tmp_path, 0)
    with pytest.raises(DataError, match="--val-fraction"):
        generate_synthetic(tmp_path, 4, val_fraction=1.5)


def test_cli(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "fusepose.cli.main", "synth", str(tmp_path), "--images", "3",
         "--size", "128", "--seed", "1", "--val-fraction", "0.34"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    val = json.loads((tmp_path / "val.json").read_text())
    train = json.loads((tmp_path / "train.json").read_text())
    assert len(val["images"]) == 1 and len(train["images"]) == 2
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 3


def test_bench_data_smoke():
    from fusepose.benchmark.dataloader import bench_data

    res = bench_data(workers=[0], images=4, input_size=256, batch_size=2, decode_repeats=2)
    kinds = {r["kind"] for r in res["loader"]}
    assert kinds == {"bottom_up", "top_down"}
    assert all(r["samples_per_s"] > 0 and r["samples"] > 0 for r in res["loader"])
    for d in res["decode"].values():
        # a perfect network's output decodes to exactly the people that have keypoints
        assert d["people_decoded"] == d["people_with_keypoints"] >= 5
        assert d["median_ms"] > 0


def test_negative_edge_keeps_torsos_inside_and_blobs_are_optional():
    """edge=-0.25: person centres in [0.25, 0.75] of the side, so with torso <= 0.2 of the
    side every shoulder and hip lies inside the image (labelled, v > 0)."""
    cfg = SynthConfig(size=128, min_people=1, max_people=2, min_torso=0.15, max_torso=0.2,
                      edge=-0.25, max_blobs=0)  # fmt: skip
    n = 0
    for i in range(20):
        _img, anns = render_image(np.random.default_rng([3, i]), cfg)
        for a in anns:
            assert np.all(a["keypoints"][[5, 6, 11, 12], 2] > 0), (i, a["keypoints"])
            n += 1
    assert n >= 20


def test_iscrowd_regions_are_ignored_by_the_bottom_up_dataset(tmp_path):
    """An iscrowd region's pixels (its RLE) are ignore pixels of the training mask, and no
    person of the region becomes a target."""
    from fusepose.data.bottom_up import CocoBottomUpDataset

    cfg = SynthConfig(size=128, min_people=1, max_people=2, iscrowd_prob=1.0, crowd_prob=0.0)
    paths = generate_synthetic(tmp_path, 3, seed=5, config=cfg, val_fraction=0.0)
    data = json.loads(paths["train"].read_text())
    crowds = [a for a in data["annotations"] if a["iscrowd"]]
    assert len(crowds) == 3
    ds = CocoBottomUpDataset(paths["train"], paths["images"], train=False)
    from pycocotools import mask as mask_utils

    for i, iid in enumerate(ds.image_ids):
        raw = ds.load_raw(i)
        people = [a for a in data["annotations"] if a["image_id"] == iid and not a["iscrowd"]]
        assert len(raw["keypoints"]) == len(people)
        for a in (a for a in crowds if a["image_id"] == iid):
            rle = {**a["segmentation"], "counts": a["segmentation"]["counts"].encode("ascii")}
            region = mask_utils.decode(rle).astype(bool)
            assert region.sum() == a["area"] and (raw["mask"][region] == 0).all()
            assert raw["mask"][~region].all() or any(p["num_keypoints"] == 0 for p in people)
