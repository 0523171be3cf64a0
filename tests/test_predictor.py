"""Predictor: real COCO images, GT-rendered round trips, sources, detections, ONNX parity."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import fusepose
from fusepose.errors import CheckpointError, ConfigError, DataError, SourceError
from fusepose.geometry import affine_points, letterbox_matrix, top_down_warp
from fusepose.inference.gt_outputs import bottom_up_gt_hook, top_down_gt_hook
from fusepose.inference.predictor import ImageIds, Predictor
from fusepose.inference.sources import iter_frames

K = 17


@pytest.fixture(scope="module")
def coco_gt(coco_dir: Path) -> dict:
    return json.loads((coco_dir / "test_coco.json").read_text())


def people(gt: dict, image: dict) -> tuple[np.ndarray, np.ndarray]:
    """GT keypoints (N, K, 3) and boxes (N, 4) of the labelled people of one image."""
    anns = [a for a in gt["annotations"] if a["image_id"] == image["id"] and a["num_keypoints"]]
    kp = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, K, 3)
    return kp, np.array([a["bbox"] for a in anns], dtype=np.float64)


def zero_bottom_up(x: np.ndarray) -> list[np.ndarray]:
    """Stand-in network: right shapes, no content (the GT hook supplies the maps)."""
    b, _, h, w = x.shape
    return [np.zeros((b, 2 * K, h // 4, w // 4), np.float32),
            np.zeros((b, K, h // 2, w // 2), np.float32)]  # fmt: skip


def zero_top_down(x: np.ndarray) -> list[np.ndarray]:
    b, _, h, w = x.shape
    return [np.zeros((b, K, h // 4, w // 4), np.float32)]


def randomized(name: str, **overrides) -> torch.nn.Module:
    """A zoo model whose zero-initialised tensors (e.g. final layers) get random values, so its
    random-weight outputs are not identically zero."""
    torch.manual_seed(0)
    model = fusepose.create_model(name, **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() == 0:
                p.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def bu_module() -> torch.nn.Module:
    # a shallow L-MFNet (1 HR module per stage, 1 block per branch): same layers, fast export
    return randomized("lmfnet_lite", modules=(1, 1, 1), blocks_per_branch=1)


# ------------------------------------------------------------------------------ weights


def test_weights_required_unless_random_allowed(caplog):
    with pytest.raises(CheckpointError, match="no weights"):
        Predictor("sfm_coco")
    with caplog.at_level("WARNING"):
        Predictor("sfm_coco", allow_random_weights=True)
    assert "RANDOM WEIGHTS" in caplog.text


def test_unknown_model_and_bad_backend():
    with pytest.raises(ConfigError, match="unknown model"):
        Predictor("no_such_model", allow_random_weights=True)
    with pytest.raises(ConfigError, match="backend"):
        Predictor("sfm_coco", backend="tflite", allow_random_weights=True)


# ------------------------------------------------------------------------------ real images


def test_random_weights_results_are_well_formed_and_evaluate(coco_dir, coco_gt, bu_module):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    pred = Predictor(bu_module, input_size=128, score_thr=0)
    ids = ImageIds(coco_dir / "test_coco.json")
    results = []
    for res in pred.stream(coco_dir, image_ids=ids):
        h, w = res.image_size
        m, (w_in, h_in) = pred.warp_matrix((h, w))
        # the region the network saw, in original pixels (input pixels 0..W_in, plus one)
        lo = affine_points(np.array([-1.0, -1.0]), cv2.invertAffineTransform(m))
        hi = affine_points(np.array([w_in + 1.0, h_in + 1.0]), cv2.invertAffineTransform(m))
        assert lo[0] <= 0 and lo[1] <= 0 and hi[0] >= w - 1 and hi[1] >= h - 1
        assert len(res) > 0
        for inst in res:
            assert inst.keypoints.shape == (K, 2) and inst.keypoint_scores.shape == (K,)
            assert np.all(np.isfinite(inst.keypoints)) and np.all(inst.keypoint_scores >= 0)
            assert np.all(inst.keypoints >= lo) and np.all(inst.keypoints <= hi)
            assert 0 <= inst.score <= 1
        results += res.to_coco()
    assert {r["image_id"] for r in results} == {im["id"] for im in coco_gt["images"]}
    gt = COCO(str(coco_dir / "test_coco.json"))
    ev = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert 0.0 <= ev.stats[0] <= 1.0


# ------------------------------------------------------------------------------ round trips


def test_bottom_up_gt_round_trip_on_real_images(coco_dir, coco_gt):
    """GT -> warp with the Predictor's affine -> codec-encoded maps + ideal tags -> decode ->
    inverse affine lands on the GT in original pixels (official resize, input 512)."""
    pred = Predictor(fusepose.create_model("lmfnet_lite"))
    pred._net = zero_bottom_up
    for image in coco_gt["images"]:
        kp, _ = people(coco_gt, image)
        pred.output_hook = bottom_up_gt_hook(pred, kp)
        res = pred(coco_dir / image["file_name"])
        assert len(res) == len(kp)
        for person in kp:
            vis = person[:, 2] > 0
            err = [np.abs(i.keypoints[vis] - person[vis, :2]).max() for i in res]
            assert min(err) < 2.0, (image["file_name"], err)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"flip": True, "input_size": 256},
        {"scales": (1.0, 0.5), "input_size": 256},
        # fixed-size letterbox input (as a fixed-shape ONNX file)
        {"input_size": (256, 320), "resize": "letterbox"},
    ],
)
def test_bottom_up_flip_multiscale_letterbox_round_trip(coco_dir, coco_gt, kwargs):
    """Flip (un-flip + permute + concatenated tags), a second scale and the letterbox warp
    all keep every GT person on its keypoints.

    Tolerance in input pixels: 1.5 (stride-4 truncation of the targets + the 0.25 adjust);
    2.0 with the 0.5 scale, whose targets are truncated at 8 base-input pixels and whose
    bilinear projection to the base size adds the official half-pixel offset."""
    image = coco_gt["images"][1]
    kp, _ = people(coco_gt, image)
    pred = Predictor(fusepose.create_model("lmfnet_lite"), **kwargs)
    pred._net = zero_bottom_up
    pred.output_hook = bottom_up_gt_hook(pred, kp)
    res = pred(coco_dir / image["file_name"])
    m, _size = pred.warp_matrix((image["height"], image["width"]))
    px = 1.0 / m[0, 0]  # original pixels per input pixel
    for person in kp:
        vis = person[:, 2] > 0
        err = [np.abs(i.keypoints[vis] - person[vis, :2]).max() for i in res]
        assert min(err) < (2.0 if "scales" in kwargs else 1.5) * px, (kwargs, err)


@pytest.mark.parametrize("flip", [False, True])
def test_top_down_gt_round_trip_on_real_images(coco_dir, coco_gt, flip):
    """GT boxes -> crops -> encoded GT heatmaps -> decode (quarter-pixel) -> inverse crop
    affine: within a quarter heatmap pixel of the GT, in original pixels."""
    pred = Predictor(fusepose.create_model("sfm_coco"), flip=flip, batch_size=3)
    pred._net = zero_top_down
    h_in, w_in = pred.input_size
    stride = (w_in - 1) / (w_in // 4 - 1)  # UDP: input pixels per heatmap pixel
    for image in coco_gt["images"]:
        kp, boxes = people(coco_gt, image)
        pred.output_hook = top_down_gt_hook(pred, boxes, kp)
        res = pred(coco_dir / image["file_name"], boxes=boxes)
        assert len(res) == len(kp)
        by_box = {tuple(i.box): i for i in res}  # people come best first, not in box order
        for person, box in zip(kp, boxes, strict=True):
            inst = by_box[tuple(box)]
            m, _c, scale_wh = top_down_warp(box, (h_in, w_in))
            crop = affine_points(person[:, :2], m)
            ok = (person[:, 2] > 0) & np.all((crop >= 0) & (crop <= [w_in - 1, h_in - 1]), 1)
            tol = 0.25 * stride * scale_wh[0] / w_in + 1e-6
            assert np.abs(inst.keypoints[ok] - person[ok, :2]).max() <= tol


def test_top_down_with_bottom_up_detector(coco_dir, coco_gt):
    """detector=<bottom-up Predictor>: its people's keypoint boxes, grown 1.2x about their
    centre (keypoints understate a person's extent), become the crops."""
    image = coco_gt["images"][2]
    kp, _ = people(coco_gt, image)
    det = Predictor(fusepose.create_model("lmfnet_lite"))
    det._net = zero_bottom_up
    det.output_hook = bottom_up_gt_hook(det, kp)
    pred = Predictor(fusepose.create_model("sfm_coco"), detector=det, score_thr=0)
    pred._net = zero_top_down
    res = pred(coco_dir / image["file_name"])
    assert len(res) == len(kp)
    h, w = image["height"], image["width"]
    for person in kp:
        vis = person[:, 2] > 0
        lo, hi = person[vis, :2].min(0), person[vis, :2].max(0)
        c, half = (lo + hi) / 2, (hi - lo) * 1.2 / 2
        lo, hi = np.clip(c - half, 0, [w - 1, h - 1]), np.clip(c + half, 0, [w - 1, h - 1])
        d = [np.abs(i.box - [*lo, *(hi - lo)]).max() for i in res]
        assert min(d) < 3.0


def test_detector_by_name_must_be_bottom_up():
    pred = Predictor("test_sfm", allow_random_weights=True, detector="test_lmfnet")
    assert pred.detector is not None and pred.detector.kind == "bottom_up"
    with pytest.raises(ConfigError, match="bottom-up"):
        Predictor("test_sfm", allow_random_weights=True, detector="test_sfm")
    with pytest.raises(CheckpointError, match="no weights"):
        Predictor("test_sfm", allow_random_weights=False, detector="test_lmfnet")


def test_det_file_boxes_by_image_id(coco_dir, coco_gt):
    dets = json.loads((coco_dir / "test_coco_det_AP_H_56.json").read_text())
    image = coco_gt["images"][0]
    want = [d for d in dets if d["image_id"] == image["id"] and d["score"] >= 0.5]
    pred = Predictor("sfm_coco", allow_random_weights=True,
                     det_file=coco_dir / "test_coco_det_AP_H_56.json", det_thr=0.5,
                     score_thr=0, nms_thr=0)  # fmt: skip
    pred._net = zero_top_down
    res = pred(coco_dir / image["file_name"], image_id=image["id"])
    assert len(res) == len(want) > 0
    got = sorted(tuple(np.round(i.box, 3)) for i in res)
    assert got == sorted(tuple(np.round(d["bbox"], 3)) for d in want)


def test_top_down_without_boxes_is_an_error(coco_dir):
    pred = Predictor("sfm_coco", allow_random_weights=True)
    with pytest.raises(ConfigError, match="person boxes"):
        pred(coco_dir / "000000000785.jpg")


def test_top_down_nms_drops_a_duplicate_box_only(coco_dir, coco_gt):
    """The pipeline's OKS-NMS (HRNet's 0.9, the description's default) removes a second box on
    the same person and keeps the others; nms_thr=0 turns it off."""
    image = coco_gt["images"][2]
    kp, boxes = people(coco_gt, image)
    dup = np.concatenate([boxes, boxes[:1] + [1.0, 1.0, 0.0, 0.0]])
    scores = np.r_[np.ones(len(boxes)), 0.5]
    kps = np.concatenate([kp, kp[:1]])
    for nms_thr, expect in ((None, len(boxes)), (0, len(boxes) + 1)):
        pred = Predictor(fusepose.create_model("sfm_coco"), nms_thr=nms_thr)
        pred._net = zero_top_down
        pred.output_hook = top_down_gt_hook(pred, dup, kps)
        res = pred(coco_dir / image["file_name"], boxes=dup, box_scores=scores)
        assert len(res) == expect
        assert [round(i.score, 6) for i in res] == sorted((round(i.score, 6) for i in res),
                                                          reverse=True)


def test_boxes_are_checked_before_any_work(coco_dir):
    pred = Predictor("sfm_coco", allow_random_weights=True)
    for bad in ([[0, 0, 0, 10]], [[0, 0, np.nan, 10]], [[1, 2, 3]]):
        with pytest.raises(DataError, match="box"):
            pred(coco_dir / "000000000785.jpg", boxes=np.array(bad, dtype=float))


# ------------------------------------------------------------------------------ sources


def test_letterbox_keeps_image_inside_fixed_input():
    m = letterbox_matrix((429, 640), (256, 256))
    corners = affine_points(np.array([[0.0, 0.0], [640.0, 429.0]]), m)
    np.testing.assert_allclose(corners[0, 0], 0.0)
    np.testing.assert_allclose(corners[1, 0], 256.0)
    assert 0 < corners[0, 1] < corners[1, 1] < 256


def test_bad_sources_raise_source_error(tmp_path):
    pred = Predictor("sfm_coco", allow_random_weights=True)
    with pytest.raises(SourceError, match="no such file"):
        pred(tmp_path / "missing.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        pred.stream(tmp_path / "empty")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(SourceError, match="not a readable video"):
        pred.stream(bad)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\x00\x01garbage")
    with pytest.raises(DataError, match="not a decodable image"):
        pred(junk, boxes=np.zeros((0, 4)))
    with pytest.raises(SourceError, match="webcam"):
        pred.stream(97)


def test_video_stream_yields_every_frame(tmp_path, coco_dir):
    path = tmp_path / "clip.mp4"
    img = cv2.imread(str(coco_dir / "000000196141.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (320, 216))
    for i in range(3):
        writer.write(cv2.resize(np.roll(img, 20 * i, axis=1), (320, 216)))
    writer.release()
    frames = list(iter_frames(path))
    assert len(frames) == 3 and frames[0].image.shape == (216, 320, 3)
    pred = Predictor("sfm_coco", allow_random_weights=True, score_thr=0)
    pred._net = zero_top_down
    box = np.array([[10.0, 10.0, 100.0, 180.0]])
    results = [pred.predict_frame(f, boxes=box) for f in iter_frames(path)]
    assert [r.source for r in results] == [f"{path}:frame:{i}" for i in range(3)]
    assert all(r.image_size == (216, 320) and len(r) == 1 for r in results)


def test_image_ids_from_ann_then_numeric_names_then_sequential(coco_dir, tmp_path):
    names = sorted(p.name for p in coco_dir.glob("*.jpg"))
    ids = ImageIds(coco_dir / "test_coco.json")
    got = [ids(f) for f in iter_frames(coco_dir)]
    gt = json.loads((coco_dir / "test_coco.json").read_text())
    assert got == [next(i["id"] for i in gt["images"] if i["file_name"] == n) for n in names]
    plain = ImageIds()
    assert plain(next(iter_frames(coco_dir / "000000040083.jpg"))) == 40083
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.jpg"), np.zeros((8, 8, 3), np.uint8))
    assert [plain(f) for f in iter_frames(tmp_path)] == [0, 1]


# ------------------------------------------------------------------------------ onnx


def _onnx_vs_torch(model, tmp_path, hw, dynamic, image, **call):
    from fusepose.export.package import export_model

    path = tmp_path / "m.onnx"
    export_model(model, path, hw, dynamic=dynamic)
    size = min(hw) if (model.info.kind == "bottom_up" and dynamic) else hw
    pt = Predictor(model, input_size=size, score_thr=0)
    po = Predictor(backend="onnx", onnx_path=path, input_size=size, score_thr=0)
    assert po.kind == model.info.kind and po.model_name == model.info.name
    a, b = pt(image, **call), po(image, **call)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert np.abs(x.keypoints - y.keypoints).max() <= 0.5
        assert abs(x.score - y.score) < 1e-3


def test_onnx_backend_matches_torch_top_down(tmp_path, coco_dir, coco_gt):
    _, boxes = people(coco_gt, coco_gt["images"][2])
    _onnx_vs_torch(randomized("sfm_coco"), tmp_path, (256, 192), False,
                   coco_dir / "000000196141.jpg", boxes=boxes)  # fmt: skip


def test_onnx_backend_matches_torch_bottom_up(tmp_path, coco_dir, bu_module):
    _onnx_vs_torch(bu_module, tmp_path, (128, 128), True, coco_dir / "000000196141.jpg")


def test_oracle_ap_separates_what_the_network_and_the_decoder_contribute(coco_dir):
    """Random weights on the 4 COCO images: the network alone finds nobody right (AP ~ 0);
    with every output ideal the decoder recovers the ground truth (AP ~ 1, whatever the
    network); ideal heatmaps with random tags group some people right, so lie in between."""
    from fusepose.inference.gt_outputs import oracle_ap

    pred = Predictor("test_lmfnet", allow_random_weights=True, input_size=256, num_threads=1)
    ann = coco_dir / "test_coco.json"
    ap = {part: oracle_ap(pred, ann, coco_dir, part)["AP"] for part in
          ("none", "heatmaps", "both")}  # fmt: skip
    assert ap["none"] < 0.05 and ap["both"] > 0.95, ap
    assert ap["none"] < ap["heatmaps"] < ap["both"], ap
    assert pred.output_hook is None  # the Predictor is left as it was
    with pytest.raises(ConfigError, match="replace"):
        oracle_ap(pred, ann, coco_dir, "everything")
