"""PoseTracker (ids across frames), the One-Euro filter, and ``fusepose predict --track``."""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict

import cv2
import numpy as np
import pytest
from cli_helpers import CliRun, run_cli

import fusepose
from fusepose.errors import ConfigError
from fusepose.geometry import affine_points, invert_points
from fusepose.inference import PoseTracker, Predictor
from fusepose.inference.smoothing import OneEuroFilter
from fusepose.inference.tracking import box_iou
from fusepose.structures import PoseInstance, PoseResult
from fusepose.visualization.skeleton import draw_poses, track_color

# A standing COCO-17 person, feet at y = 0, about 165 px tall (x right, y down, pixels).
TEMPLATE = np.array([
    [0, -160], [-4, -164], [4, -164], [-9, -161], [9, -161], [-20, -135], [20, -135],
    [-26, -100], [26, -100], [-28, -68], [28, -68], [-12, -85], [12, -85], [-13, -44],
    [13, -44], [-14, -2], [14, -2],
], dtype=np.float64)  # fmt: skip


def person(x: float, ground: float, scale: float, rng, noise: float = 1.5) -> PoseInstance:
    """The template at ``x`` standing on ``ground``, ``scale`` times its size, joints jittered
    by N(0, noise) pixels, every joint scored 0.9."""
    kpts = TEMPLATE * scale + [x, ground] + rng.normal(0, noise, TEMPLATE.shape)
    return PoseInstance(kpts, np.full(17, 0.9), 0.9)


def crossing(tracker: PoseTracker, hidden: range, frames: int = 70, seed: int = 0) -> dict:
    """Two people cross paths: A (far: smaller, higher) walks right at 6 px / frame, B (near)
    walks left at 6 px / frame; they overlap around frame 35. A is missing from the frames in
    ``hidden``. Returns ``{"A": [(frame, id)], "B": [...]}``."""
    rng = np.random.default_rng(seed)
    ids: dict[str, list[tuple[int, int]]] = {"A": [], "B": []}
    for f in range(frames):
        people, who = [], []
        if f not in hidden:
            people.append(person(100 + 6 * f, 220, 0.75, rng))
            who.append("A")
        people.append(person(520 - 6 * f, 280, 1.0, rng))
        who.append("B")
        out = tracker.update(PoseResult(people, (480, 640)))
        assert len(out) == len(people)
        for w, p in zip(who, out.instances, strict=True):
            ids[w].append((f, p.track_id))
    return ids


def switches(seq: list[tuple[int, int]]) -> int:
    """Times a person's id changes between consecutive sightings."""
    return sum(a[1] != b[1] for a, b in zip(seq, seq[1:], strict=False))


def test_two_people_cross_and_the_hidden_one_keeps_its_id():
    """A is hidden for 14 frames (26..39) while it passes behind B: zero id switches, and A comes
    back with the id it had before; with the motion model off the same scene gives A a new id
    (so the scene needs the prediction, the test can fail)."""
    ids = crossing(PoseTracker(), hidden=range(26, 40))
    assert switches(ids["A"]) == 0 and switches(ids["B"]) == 0
    before = [i for f, i in ids["A"] if f < 26]
    after = [i for f, i in ids["A"] if f >= 40]
    assert set(before) == set(after) == {1}
    assert {i for _, i in ids["B"]} == {2}

    still = crossing(PoseTracker(motion=False), hidden=range(26, 40))
    assert switches(still["A"]) >= 1


def test_crossing_in_plain_view_has_no_switch():
    ids = crossing(PoseTracker(), hidden=range(0))
    assert switches(ids["A"]) == switches(ids["B"]) == 0
    assert {i for _, i in ids["A"]} != {i for _, i in ids["B"]}


def test_patience_bounds_how_long_a_lost_id_waits():
    """Hidden for 14 frames with patience 10: the track has died, A gets a new id (3)."""
    tracker = PoseTracker(patience=10)
    ids = crossing(tracker, hidden=range(26, 40))
    assert [i for f, i in ids["A"] if f >= 40] == [3] * 30
    assert sorted(t.track_id for t in tracker.tracks) == [2, 3]  # track 1 was dropped


def test_birth_gives_new_ids_and_one_id_per_person_per_frame():
    rng = np.random.default_rng(1)
    tracker = PoseTracker()
    seen = []
    for f in range(12):
        people = [person(100 + 150 * j, 300, 1.0, rng) for j in range(1 + f // 4)]
        out = tracker.update(people)
        seen.append([p.track_id for p in out])
        assert len(set(seen[-1])) == len(seen[-1])
    assert seen[0] == [1] and seen[4] == [1, 2] and seen[11] == [1, 2, 3]


def test_tracked_people_keep_order_and_fields_and_smoothing_changes_only_joints():
    rng = np.random.default_rng(2)
    raw = [person(200, 300, 1.0, rng), person(450, 300, 1.0, rng)]
    res = PoseResult(raw, (480, 640), image_id=7, source="x")
    out = PoseTracker(smooth=True).update(res)
    assert (out.image_size, out.image_id, out.source) == ((480, 640), 7, "x")
    assert [p.score for p in out] == [p.score for p in raw]
    assert all(np.array_equal(a.keypoints, b.keypoints) for a, b in zip(out, raw, strict=True))
    tracker = PoseTracker(smooth=True)
    first = tracker.update(raw)
    moved = [shifted(p, 3.0) for p in raw]
    second = tracker.update(moved)
    assert [p.track_id for p in second] == [p.track_id for p in first]
    for s, m, r in zip(second, moved, raw, strict=True):
        d = s.keypoints - r.keypoints
        assert np.all((d > 0) & (d < 3.0))  # pulled towards the old joints, not past them
        assert np.array_equal(s.box, m.box)


def shifted(p: PoseInstance, d: float) -> PoseInstance:
    return PoseInstance(p.keypoints + d, p.keypoint_scores, p.score)


def test_box_iou_hand_values():
    a = np.array([0.0, 0.0, 10.0, 10.0])
    got = box_iou(a, np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 5, 5]]))
    assert np.allclose(got, [1.0, 50 / 150, 0.0, 25 / 100])


def test_bad_tracker_settings_are_config_errors():
    for kwargs in ({"patience": -1}, {"match_thr": 2}, {"det_frequency": 0},
                   {"smooth": True, "min_cutoff": 0}, {"motion_gain": 0}):  # fmt: skip
        with pytest.raises(ConfigError):
            PoseTracker(**kwargs)
    with pytest.raises(ConfigError, match="predictor"):
        PoseTracker().predict_frame(np.zeros((8, 8, 3), np.uint8))


# ------------------------------------------------------------------ top-down: boxes from poses


def _zero_top_down(x: np.ndarray) -> list[np.ndarray]:
    return [np.zeros((x.shape[0], 17, x.shape[2] // 4, x.shape[3] // 4), np.float32)]


def test_top_down_boxes_come_from_the_previous_poses_between_detector_frames():
    """A perfect top-down network (each crop -> the encoded heatmaps of the GT person nearest
    the crop's centre) and a detector that knows the GT boxes. With det_frequency 4 the
    detector runs on frames 0, 4, 8 only; on the other frames the crops come from the tracks,
    and still every person is found within 2 px, keeps its id, and keeps its score (the
    detection's box score is carried, not multiplied frame after frame)."""
    pred = Predictor(fusepose.create_model("sfm_coco"), score_thr=0)
    pred._net = _zero_top_down
    h_in, w_in = pred.input_size
    frames, speed = 12, np.array([[7.0, 1.0], [-5.0, 0.0]])
    start = np.stack([TEMPLATE * 1.2 + [180, 400], TEMPLATE * 1.2 + [460, 420]])

    def gt(f: int) -> np.ndarray:
        return np.concatenate([start + speed[:, None] * f, np.full((2, 17, 1), 2.0)], axis=2)

    current = {"f": 0}

    def hook(outputs, matrices):
        kp = gt(current["f"])
        hms = []
        for m in matrices:
            centre = invert_points(np.array([[(w_in - 1) / 2, (h_in - 1) / 2]]), m)[0]
            who = int(np.argmin(np.linalg.norm(kp[:, :, :2].mean(1) - centre, axis=1)))
            pts = np.c_[affine_points(kp[who, :, :2], m), kp[who, :, 2]]
            hms.append(0.8 * pred.codec.encode(pts)["heatmaps"])  # peaks of 0.8: a score decay shows
        return [np.stack(hms).astype(np.float32)]

    pred.output_hook = hook
    detector_frames = []

    def detector(frame, image_id):
        detector_frames.append(current["f"])
        kp = gt(current["f"])
        lo, hi = kp[:, :, :2].min(1) - 20, kp[:, :, :2].max(1) + 20
        return np.c_[lo, hi - lo], np.array([0.9, 0.8])

    pred.find_boxes = detector
    tracker = PoseTracker(pred, det_frequency=4)
    image = np.zeros((600, 800, 3), np.uint8)
    ids, scores = [], []
    for f in range(frames):
        current["f"] = f
        res = tracker.predict_frame(image, image_id=f)
        assert len(res) == 2
        kp = gt(f)
        for p in res:
            err = np.abs(p.keypoints[None] - kp[:, :, :2]).max(axis=(1, 2))
            assert err.min() < 2.0, (f, err)
        by_person = sorted(res, key=lambda p: p.keypoints[:, 0].mean())
        ids.append([p.track_id for p in by_person])
        scores.append([p.score for p in by_person])
    assert detector_frames == [0, 4, 8]
    assert ids == [[1, 2]] * frames
    assert np.allclose(scores, scores[0], atol=0.02) and min(scores[0]) > 0.6


def test_stream_over_a_folder_gives_each_repeated_person_its_id(tmp_path, coco_dir):
    """``PoseTracker(predictor).stream(folder)``: three copies of one photo are three identical
    frames, so frames 2 and 3 repeat frame 1's people and ids exactly (random weights, every
    person kept: dozens of people to keep apart)."""
    for i in range(3):
        shutil.copy(coco_dir / "000000000785.jpg", tmp_path / f"f{i}.jpg")
    pred = Predictor("lmfnet_lite", allow_random_weights=True, input_size=64, score_thr=0)
    results = list(PoseTracker(pred).stream(tmp_path))
    assert len(results) == 3 and len(results[0]) > 10
    first = {p.track_id: p.keypoints for p in results[0]}
    assert sorted(first) == list(range(1, len(first) + 1))
    for res in results[1:]:
        assert len(res) == len(first)
        for p in res:
            assert np.array_equal(p.keypoints, first[p.track_id])


# ------------------------------------------------------------------ One-Euro


def test_one_euro_step_matches_the_formulas_by_hand():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.1, d_cutoff=2.0)
    assert f(np.array([10.0]), 0.0)[0] == 10.0
    dt = 0.1
    dx = (12.0 - 10.0) / dt  # 20 units / s
    a_d = 1 / (1 + 1 / (2 * math.pi * 2.0) / dt)
    edx = a_d * dx
    cutoff = 1.0 + 0.1 * abs(edx)
    a = 1 / (1 + 1 / (2 * math.pi * cutoff) / dt)
    assert f(np.array([12.0]), dt)[0] == pytest.approx(10.0 + a * 2.0, rel=1e-12)


def _jitter(x: np.ndarray) -> float:
    """Mean frame-to-frame displacement of the joints, pixels: x (T, K, 2)."""
    return float(np.linalg.norm(np.diff(x, axis=0), axis=-1).mean())


def test_one_euro_cuts_jitter_of_a_static_person_and_lags_little_on_a_moving_one():
    """Defaults (min_cutoff 1 Hz, beta 0.05 / px, d_cutoff 1 Hz), 30 fps, 17 joints with
    N(0, 2 px) noise, 300 frames, the first 30 left out (warm-up).

    Static person: frame-to-frame jitter 3.56 px raw -> 0.71 px filtered (5.0x less); the test
    asks for at least 3x less. Person moving 10 px / frame: mean lag along the motion 2.4 px
    (0.24 frame); the bound is 4 px. With beta = 0 (a plain 1 Hz low-pass) the lag is 47.7 px
    (the test asks for over 30): the speed term is what keeps it small."""
    rng = np.random.default_rng(0)
    n, fps, sigma = 300, 30.0, 2.0
    still = np.tile([[300.0, 200.0]], (n, 17, 1))
    noisy = still + rng.normal(0, sigma, still.shape)
    f = OneEuroFilter()
    out = np.stack([f(noisy[i], i / fps) for i in range(n)])
    raw_j, out_j = _jitter(noisy[30:]), _jitter(out[30:])
    assert raw_j / out_j > 3.0, (raw_j, out_j)
    assert np.linalg.norm(out[30:] - still[30:], axis=-1).mean() < 1.5  # no drift either

    t = np.arange(n)
    moving = still + (10.0 * t)[:, None, None] * np.array([1.0, 0.0])
    noisy = moving + rng.normal(0, sigma, moving.shape)

    def lag(**kw) -> float:
        g = OneEuroFilter(**kw)
        o = np.stack([g(noisy[i], i / fps) for i in range(n)])
        return float((moving[30:, :, 0] - o[30:, :, 0]).mean())

    assert 0 < lag() < 4.0
    assert lag(beta=0.0) > 30.0


def test_one_euro_restarts_a_joint_that_was_not_seen():
    f = OneEuroFilter(min_cutoff=0.5)
    f(np.array([[0.0, 0.0], [0.0, 0.0]]), 0.0)
    valid = np.array([[True], [False]])
    out = f(np.array([[10.0, 10.0], [50.0, 50.0]]), 1 / 30, valid)
    assert np.all(out[0] < 10.0) and np.array_equal(out[1], [50.0, 50.0])
    out = f(np.array([[10.0, 10.0], [80.0, 80.0]]), 2 / 30)
    assert np.array_equal(out[1], [80.0, 80.0])  # starts afresh, not dragged from 0 or 50


# ------------------------------------------------------------------ structures and drawing


def test_track_id_in_to_coco_and_to_dict_only_when_set():
    a = PoseInstance(np.zeros((17, 2)), np.ones(17), 0.5)
    b = PoseInstance(np.zeros((17, 2)), np.ones(17), 0.5, track_id=4)
    coco = PoseResult([a, b], (10, 10), image_id=1).to_coco()
    assert "track_id" not in coco[0] and coco[1]["track_id"] == 4
    assert "track_id" not in a.to_dict() and b.to_dict()["track_id"] == 4


def test_draw_by_track_colours_each_track_and_default_is_unchanged():
    skel = fusepose.get_skeleton("coco")
    img = np.full((480, 640, 3), 40, np.uint8)
    rng = np.random.default_rng(3)
    people = [person(200, 400, 1.5, rng, 0.0), person(450, 400, 1.5, rng, 0.0)]
    tracked = [PoseInstance(p.keypoints, p.keypoint_scores, p.score, track_id=i + 1)
               for i, p in enumerate(people)]  # fmt: skip
    assert np.array_equal(draw_poses(img, people, skel), draw_poses(img, tracked, skel))
    drawn = draw_poses(img, tracked, skel, by_track=True)
    for p in tracked:
        colour = np.array(track_color(p.track_id))
        x0, y0, w, h = (int(v) for v in p.box)
        region = drawn[y0 : y0 + h, x0 : x0 + w].reshape(-1, 3)
        assert (np.abs(region.astype(int) - colour).sum(1) == 0).sum() > 200
        label = drawn[max(y0 - 40, 0) : y0, x0 : x0 + 60].reshape(-1, 3)  # "id N" box
        assert (np.abs(label.astype(int) - colour).sum(1) == 0).sum() > 100
    assert track_color(1) != track_color(2)


# ------------------------------------------------------------------ the CLI

_THREADS = ("--threads", "1")


def _cli(*args) -> CliRun:
    return run_cli(*args, *_THREADS)


def _count_frames(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_predict_track_on_a_video_puts_track_ids_everywhere(tmp_path, coco_dir, caplog):
    """Random weights, every person kept (--score-thr 0): the plumbing. Every result has an
    int track_id, no id twice in a frame, and the drawn video has every frame."""
    caplog.set_level("INFO", logger="fusepose.cli.predict")
    src = tmp_path / "clip.mp4"
    img = cv2.imread(str(coco_dir / "000000196141.jpg"))
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (256, 172))
    for i in range(5):
        writer.write(cv2.resize(np.roll(img, 12 * i, axis=1), (256, 172)))
    writer.release()
    out = tmp_path / "r.json"
    proc = _cli("predict", "test_lmfnet", "--random-weights", "--source", src, "--input-size",
                "128", "--track", "--smooth", "--score-thr", "0", "--save-json", out,
                "--save-vis", tmp_path / "vis", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results and all(isinstance(r["track_id"], int) for r in results)
    per_frame = defaultdict(list)
    for r in results:
        per_frame[r["image_id"]].append(r["track_id"])
    assert sorted(per_frame) == list(range(5))
    assert all(len(set(v)) == len(v) for v in per_frame.values())
    assert "tracks" in caplog.text
    assert _count_frames(tmp_path / "vis" / "clip_pose.mp4") == 5


def test_predict_without_track_writes_no_track_id(tmp_path, coco_dir):
    out = tmp_path / "r.json"
    proc = _cli("predict", "test_lmfnet", "--random-weights", "--source",
                coco_dir / "000000000785.jpg", "--input-size", "128", "--score-thr", "0",
                "--save-json", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results and not any("track_id" in r for r in results)


@pytest.mark.slow
def test_predict_track_on_an_image_sequence_with_a_trained_model(
    tmp_path, coco_dir, overfit_lmfnet
):
    """A trained L-MFNet on a 10-frame image folder of COCO 197388 (5 people found) where one
    person is painted over in frames 3..5: 5 tracks, each person keeps one id (0 switches),
    the hidden one comes back with its old id, and the drawn frames show the ids. The same
    id is the same person: median joint change under 1 px (the mask moves a joint ~2 px),
    at most 2 of the 17 joints moved over 5 px (painting a neighbour over can move a joint to
    another peak: on an Intel Xeon's checkpoint one ankle jumped 263 px, a decode tie, see
    test_overfit.torch_and_onnx_give_the_same_people)."""
    img = cv2.imread(str(coco_dir / "000000197388.jpg"))
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(10):
        frame = img.copy()
        if 3 <= i < 6:
            frame[43:263, 0:90] = img.reshape(-1, 3).mean(0).astype(np.uint8)
        cv2.imwrite(str(seq / f"frame_{i:03d}.png"), frame)
    out, vis = tmp_path / "r.json", tmp_path / "vis"
    proc = _cli("predict", overfit_lmfnet["ckpt"], "--source", seq, "--track", "--save-json",
                out, "--save-vis", vis, "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    frames = defaultdict(dict)
    for r in results:
        kp = np.asarray(r["keypoints"]).reshape(-1, 3)
        frames[r["image_id"]][r["track_id"]] = kp
    ids = [sorted(frames[i]) for i in range(10)]
    full = ids[0]
    assert len(full) >= 3
    assert ids[1] == ids[2] == ids[6] == ids[9] == full
    hidden = set(full) - set(ids[4])
    assert len(hidden) == 1 and all(set(ids[i]) == set(full) - hidden for i in (3, 4, 5))
    for tid in full:  # the same person under the same id
        for i in range(10):
            if tid in frames[i]:
                d = np.linalg.norm(frames[i][tid][:, :2] - frames[0][tid][:, :2], axis=1)
                assert np.median(d) < 1.0 and np.sum(d > 5.0) <= 2, (i, tid, d)
    drawn = cv2.imread(str(vis / "frame_000.png"))
    plain = draw_poses(img, [], fusepose.get_skeleton("coco"))
    assert drawn is not None and not np.array_equal(drawn, plain)
    shutil.rmtree(seq)
