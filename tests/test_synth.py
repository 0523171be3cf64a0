"""Synthetic COCO-format people: determinism, format, visibility, CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusepose.data.synth import SynthConfig, generate_synthetic, render_image
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
    n_occluded = n_outside = 0
    for coco in (train, val):
        for img in coco.loadImgs(coco.getImgIds()):
            pixels = cv2.imread(str(synth_dir / "images" / img["file_name"]))
            assert pixels.shape == (img["height"], img["width"], 3) == (256, 256, 3)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
                kp = np.array(ann["keypoints"]).reshape(17, 3)
                assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
                assert ann["iscrowd"] == 0 and ann["category_id"] == 1
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


def test_render_occlusion_marks_covered_joints():
    cfg = SynthConfig(size=256, min_people=4, max_people=6)
    found = False
    for i in range(30):
        img, anns = render_image(np.random.default_rng([7, i]), cfg)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        masks = [a["mask"] for a in anns]
        for j, a in enumerate(anns):
            kp = a["keypoints"]
            for x, y, v in kp:
                if v == 1:  # covered by someone drawn later (the masks are disjoint)
                    xi, yi = int(round(x)), int(round(y))
                    assert not masks[j][yi, xi]
                    found = True
        total = np.sum(masks, axis=0)
        assert total.max() <= 1
    assert found


def test_left_right_marks_match_the_labels():
    """Each visible ear carries its side's mark colour (left BGR (220, 160, 60), right
    (60, 60, 220)), so the left/right labels are learnable from the image."""
    checked = 0
    for i in range(10):
        img, anns = render_image(np.random.default_rng([11, i]), SynthConfig(size=256))
        for a in anns:
            for k, colour in ((3, (220, 160, 60)), (4, (60, 60, 220))):
                x, y, v = a["keypoints"][k]
                if v == 2:
                    assert tuple(img[int(round(y)), int(round(x))]) == colour
                    checked += 1
    assert checked >= 10


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
