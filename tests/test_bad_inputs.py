"""Bad-input corpus, generated in tmp_path: every case raises DataError naming the file and the
problem (never a numpy / json / OpenCV traceback), and skip_bad skips and counts."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import scipy.io

from fusepose.data.coco import (
    CocoBottomUpDataset,
    CocoTopDownDataset,
    load_coco_keypoints,
    load_detections,
)
from fusepose.data.io import read_image
from fusepose.data.mpii import MpiiDataset, load_mpii
from fusepose.errors import DataError, FusePoseError


@pytest.fixture(scope="module")
def coco_json(coco_dir):
    return json.loads((coco_dir / "test_coco.json").read_text())


def _write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _raises(fn, path, *words):
    with pytest.raises(DataError) as exc:
        fn(path)
    msg = str(exc.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    assert isinstance(exc.value, FusePoseError)
    return msg


# ------------------------------------------------------------------------------ images


def test_truncated_jpeg(tmp_path, coco_dir):
    data = (coco_dir / "000000000785.jpg").read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    _raises(read_image, p, "truncated JPEG")


def test_text_file_named_jpg(tmp_path):
    p = _write(tmp_path, "notes.jpg", "this is not an image\n")
    _raises(read_image, p, "not a decodable image", "text")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    _raises(read_image, p, "empty image file (0 bytes)")


def test_missing_image_and_directory(tmp_path):
    _raises(read_image, tmp_path / "nope.jpg", "not found")
    _raises(read_image, tmp_path, "directory")


def test_truncated_png(tmp_path, coco_dir):
    import cv2

    img = cv2.imread(str(coco_dir / "000000040083.jpg"))
    ok, buf = cv2.imencode(".png", img)
    assert ok
    p = tmp_path / "cut.png"
    p.write_bytes(buf.tobytes()[:5000])
    _raises(read_image, p, "truncated PNG")


def test_good_image_reads(coco_dir):
    img = read_image(coco_dir / "000000040083.jpg")
    assert img.shape == (333, 500, 3) and img.dtype == np.uint8


# ------------------------------------------------------------------------------ annotation JSON


def test_malformed_json(tmp_path):
    p = _write(tmp_path, "bad.json", '{"images": [1, 2,,]}')
    _raises(load_coco_keypoints, p, "malformed JSON", "line 1")


def test_unreadable_and_empty_json(tmp_path):
    _raises(load_coco_keypoints, tmp_path / "missing.json", "not found")
    _raises(load_coco_keypoints, _write(tmp_path, "blank.json", "  \n"), "empty")
    _raises(load_coco_keypoints, _write(tmp_path, "list.json", "[]"), "expected a JSON object")


@pytest.mark.parametrize("key", ["images", "annotations"])
def test_missing_top_level_key(tmp_path, coco_json, key):
    d = copy.deepcopy(coco_json)
    del d[key]
    _raises(load_coco_keypoints, _write(tmp_path, "a.json", d), f"missing required key '{key}'")


@pytest.mark.parametrize("key", ["id", "file_name"])
def test_image_missing_key(tmp_path, coco_json, key):
    d = copy.deepcopy(coco_json)
    del d["images"][2][key]
    _raises(
        load_coco_keypoints,
        _write(tmp_path, "a.json", d),
        "images[2]",
        f"missing required key '{key}'",
    )


@pytest.mark.parametrize("key", ["keypoints", "bbox", "image_id"])
def test_annotation_missing_key(tmp_path, coco_json, key):
    d = copy.deepcopy(coco_json)
    del d["annotations"][5][key]
    _raises(
        load_coco_keypoints,
        _write(tmp_path, "a.json", d),
        "annotations[5]",
        f"missing required key '{key}'",
    )


def test_wrong_keypoint_count(tmp_path, coco_json):
    d = copy.deepcopy(coco_json)
    d["annotations"][3]["keypoints"] = d["annotations"][3]["keypoints"][:-1]  # 50 values
    _raises(
        load_coco_keypoints,
        _write(tmp_path, "a.json", d),
        "annotations[3]",
        "50 values, expected 51",
        "keypoint count mismatch",
    )


def test_keypoint_count_differs_from_expected_or_skeleton(tmp_path, coco_dir, shared_data):
    p = coco_dir / "test_coco.json"
    _raises(lambda f: load_coco_keypoints(f, num_keypoints=14), p, "17 keypoint names", "14")
    cp = shared_data / "mmpose_crowdpose"
    _raises(
        lambda f: CocoBottomUpDataset(f, cp, None, skeleton="coco"),
        cp / "test_crowdpose.json",
        "14 keypoints per person",
        "'coco' has 17",
    )
    # category names that disagree with the annotations (no categories -> inferred)
    d = json.loads(p.read_text())
    d["categories"][0]["keypoints"] = d["categories"][0]["keypoints"][:16]
    _raises(load_coco_keypoints, _write(tmp_path, "a.json", d), "expected 48")


def test_negative_and_degenerate_box(tmp_path, coco_json):
    d = copy.deepcopy(coco_json)
    d["annotations"][1]["bbox"][2] = -12.5
    _raises(
        load_coco_keypoints,
        _write(tmp_path, "neg.json", d),
        "annotations[1]",
        "negative box size w=-12.5",
    )
    d = copy.deepcopy(coco_json)
    d["annotations"][1]["bbox"][3] = 0
    _raises(load_coco_keypoints, _write(tmp_path, "zero.json", d), "degenerate box size")
    d = copy.deepcopy(coco_json)
    d["annotations"][1]["bbox"] = [1, 2, 3]
    _raises(load_coco_keypoints, _write(tmp_path, "short.json", d), "'bbox' must be 4")


def test_annotation_points_at_missing_image(tmp_path, coco_json):
    d = copy.deepcopy(coco_json)
    d["annotations"][0]["image_id"] = 999999
    _raises(
        load_coco_keypoints, _write(tmp_path, "a.json", d), "image id 999999", "not in 'images'"
    )


def test_non_numeric_keypoints_and_duplicate_images(tmp_path, coco_json):
    d = copy.deepcopy(coco_json)
    d["annotations"][0]["keypoints"][4] = "x"
    _raises(load_coco_keypoints, _write(tmp_path, "a.json", d), "finite numbers")
    d = copy.deepcopy(coco_json)
    d["images"].append(dict(d["images"][0]))
    _raises(load_coco_keypoints, _write(tmp_path, "b.json", d), "duplicate image id")


def test_bad_detection_files(tmp_path, coco_dir):
    idx = load_coco_keypoints(coco_dir / "test_coco.json")
    _raises(load_detections, _write(tmp_path, "d1.json", "[{]"), "malformed JSON")
    _raises(
        load_detections,
        _write(tmp_path, "d2.json", [{"image_id": 785, "bbox": [1, 2, 3, 4]}]),
        "missing required key 'score'",
    )
    _raises(
        lambda f: load_detections(f, idx),
        _write(tmp_path, "d3.json", [{"image_id": 5, "bbox": [1, 2, 3, 4], "score": 1}]),
        "image id 5",
    )
    _raises(load_detections, _write(tmp_path, "d4.json", {"a": 1}), "JSON list")


def test_image_size_disagrees_with_json(tmp_path, coco_dir, coco_json):
    d = copy.deepcopy(coco_json)
    d["images"][0]["width"] = 641
    ann = _write(tmp_path, "a.json", d)
    ds = CocoBottomUpDataset(ann, coco_dir, None, train=False)
    path = coco_dir / d["images"][0]["file_name"]
    _raises(lambda _: ds[0], path, "image is 640x425", str(ann), "641x425")


# ------------------------------------------------------------------------------ skip_bad


@pytest.fixture
def broken_image_dir(tmp_path, coco_dir, coco_json):
    """The 4 COCO images, with the second one truncated."""
    d = tmp_path / "images"
    d.mkdir()
    for im in coco_json["images"]:
        shutil.copy(coco_dir / im["file_name"], d / im["file_name"])
    bad = d / coco_json["images"][1]["file_name"]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    return d, bad


def test_bad_image_raises_without_skip_bad(coco_dir, broken_image_dir):
    d, bad = broken_image_dir
    ds = CocoBottomUpDataset(coco_dir / "test_coco.json", d, None, train=False)
    ds[0]
    _raises(lambda _: ds[1], bad, "truncated JPEG")


def test_skip_bad_skips_and_counts(coco_dir, broken_image_dir):
    d, bad = broken_image_dir
    ds = CocoBottomUpDataset(coco_dir / "test_coco.json", d, None, train=False, skip_bad=True)
    paths = [ds[i]["meta"]["path"] for i in range(len(ds))]
    assert ds.num_skipped == 1
    assert str(bad) not in paths and len(set(paths)) == 3
    # top-down: each person of the bad image is one skipped sample
    td = CocoTopDownDataset(coco_dir / "test_coco.json", d, None, train=False, skip_bad=True)
    n_bad = sum(e["image_id"] == ds.index.image_ids[1] for e in td.entries)
    got = [td[i]["meta"]["path"] for i in range(len(td))]
    assert td.num_skipped == n_bad == 3 and str(bad) not in got


# ------------------------------------------------------------------------------ MPII


def test_mpii_bad_json(tmp_path, shared_data):
    raw = json.loads((shared_data / "mmpose_mpii" / "test_mpii.json").read_text())
    d = copy.deepcopy(raw)
    d[1]["joints"] = d[1]["joints"][:15]
    _raises(load_mpii, _write(tmp_path, "m.json", d), "entry [1]", "(15, 2)", "expected (16, 2)")
    d = copy.deepcopy(raw)
    del d[0]["center"]
    _raises(load_mpii, _write(tmp_path, "m2.json", d), "missing required key 'center'")
    d = copy.deepcopy(raw)
    d[2]["scale"] = -1
    _raises(load_mpii, _write(tmp_path, "m3.json", d), "scale must be positive")
    _raises(load_mpii, _write(tmp_path, "m4.json", "{"), "malformed JSON")


def test_mpii_bad_mat(tmp_path):
    p = tmp_path / "garbage.mat"
    p.write_bytes(b"MATLAB 5.0 nonsense" * 3)
    _raises(load_mpii, p, "not a readable MATLAB .mat file")
    q = tmp_path / "other.mat"
    scipy.io.savemat(q, {"foo": np.zeros(3)})
    _raises(load_mpii, q, "neither 'pos_gt_src' nor 'annolist'")
    r = tmp_path / "shape.mat"
    scipy.io.savemat(r, {"pos_gt_src": np.zeros((14, 2, 3)), "jnt_missing": np.zeros((14, 3))})
    _raises(load_mpii, r, "pos_gt_src has shape (14, 2, 3)")
    _raises(load_mpii, tmp_path / "none.mat", "not found")
    _raises(load_mpii, _write(tmp_path, "x.txt", "1"), ".json or .mat")


def test_mpii_eval_mat_is_not_a_dataset(shared_data):
    ev = shared_data / "mpii_valid_eval" / "detections_our_format.mat"
    _raises(lambda f: MpiiDataset(f, shared_data, None), ev, "no image names")


def test_malformed_segmentation_names_file_and_annotation(tmp_path, coco_dir, coco_json):
    d = copy.deepcopy(coco_json)
    a = next(a for a in d["annotations"] if a["num_keypoints"] == 0)  # gets masked
    a["segmentation"] = {"counts": "@@@not-rle", "size": [3, 3]}
    ann = _write(tmp_path, "seg.json", d)
    ds = CocoBottomUpDataset(ann, coco_dir, None, train=False)
    i = ds.image_ids.index(a["image_id"])
    _raises(lambda _: ds[i], ann, f"annotation id {a['id']}")


def test_jpeg_with_trailing_bytes_after_eoi_is_not_truncated(tmp_path, coco_dir):
    data = (coco_dir / "000000000785.jpg").read_bytes()
    p = tmp_path / "trailer.jpg"
    p.write_bytes(data + b"camera-trailer" * 10)
    assert read_image(p).shape == (425, 640, 3)
    # cutting just the final EOI marker off is detected
    q = tmp_path / "noeoi.jpg"
    q.write_bytes(data[:-2])
    _raises(read_image, q, "truncated JPEG")
