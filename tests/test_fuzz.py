"""Property-based tests (hypothesis): the codecs, the geometry, results validation and the
Predictor's array input, fed NaN, inf, empty, huge, degenerate and random inputs, either raise
a ``FusePoseError`` (one line, naming the problem) or return a valid result: finite numbers in
the frames their docstrings promise. Anything else (a bare ValueError, IndexError, NaN in a
result) fails."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fusepose.codecs import AssociativeEmbeddingCodec, TopDownHeatmapCodec
from fusepose.errors import FusePoseError
from fusepose.evaluation.results import validate_results
from fusepose.geometry import InputGeometry, affine_points, invert_points
from fusepose.skeletons import COCO17

K = 17
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


def _valid_or_fusepose_error(fn, *args, **kwargs):
    """Call ``fn``; a FusePoseError is a valid answer to bad input (returns None)."""
    try:
        return fn(*args, **kwargs)
    except FusePoseError as e:
        assert "\n" not in str(e) and str(e)
        return None


# ------------------------------------------------------------------------------ codecs


@FAST
@given(arrays(np.float32, st.tuples(st.integers(1, 3), st.just(K), st.integers(1, 12),
                                    st.integers(1, 12)), elements=floats))  # fmt: skip
def test_top_down_decode_never_returns_nonfinite(heatmaps):
    out = _valid_or_fusepose_error(
        lambda: TopDownHeatmapCodec((48, 48), heatmaps.shape[2:]).decode(heatmaps)
    )
    if out is not None:
        coords, scores = out
        assert coords.shape == (len(heatmaps), K, 2) and scores.shape == (len(heatmaps), K)
        assert np.isfinite(coords).all() and np.isfinite(scores).all()


@FAST
@given(arrays(np.float32, (2 * K, 8, 8), elements=floats),
       arrays(np.float32, (K, 16, 16), elements=floats))  # fmt: skip
def test_bottom_up_decode_never_returns_nonfinite(out_q, out_h):
    codec = AssociativeEmbeddingCodec(K, 32, flip_index=COCO17.flip_index)
    out = _valid_or_fusepose_error(codec.decode, out_q, out_h)
    if out is not None:
        poses, scores = out
        assert poses.shape[1:] == (K, 3) and len(scores) == len(poses)
        assert np.isfinite(poses).all() and np.isfinite(scores).all()


def test_bottom_up_scores_of_huge_finite_heatmaps_stay_finite():
    """The case hypothesis found: every heatmap value 4.0e37 (finite float32), so each joint
    scores 2.0e37 and a float32 sum over 17 joints overflows; the person's score is the mean."""
    codec = AssociativeEmbeddingCodec(K, 32, flip_index=COCO17.flip_index)
    q = np.zeros((2 * K, 8, 8), np.float32)
    poses, scores = codec.decode(q, np.full((K, 16, 16), 4.003322e37, np.float32))
    assert len(poses) == 1 and np.isfinite(poses).all()
    assert scores[0] == pytest.approx(np.float32(4.003322e37) / 2, rel=1e-6)


@FAST
@given(arrays(np.float64, st.tuples(st.integers(0, 4), st.just(K), st.just(3)), elements=floats))
def test_bottom_up_encode_takes_any_keypoints(kp):
    codec = AssociativeEmbeddingCodec(K, 64, flip_index=COCO17.flip_index)
    out = _valid_or_fusepose_error(codec.encode, kp)
    if out is not None:
        for hm in out["heatmaps"]:
            assert np.isfinite(hm).all() and hm.min() >= 0 and hm.max() <= 1
        assert (out["tag_joints"][..., 0] >= 0).all()


@FAST
@given(arrays(np.float64, (K, 3), elements=floats))
def test_top_down_encode_takes_any_keypoints(kp):
    codec = TopDownHeatmapCodec((64, 48), (16, 12))
    out = _valid_or_fusepose_error(codec.encode, kp)
    if out is not None:
        hm, w = out["heatmaps"], out["target_weight"]
        assert np.isfinite(hm).all() and set(np.unique(w)) <= {0.0, 1.0}


# ------------------------------------------------------------------------------ geometry


@FAST
@given(st.integers(-5, 5000), st.integers(-5, 5000), st.sampled_from(["short_side", "letterbox"]),
       st.integers(-64, 1024), st.integers(-64, 1024))  # fmt: skip
def test_whole_image_warps_are_finite_and_invertible(h, w, mode, ih, iw):
    def warp():
        geo = InputGeometry(mode, (ih, ih) if mode == "short_side" else (ih, iw))
        return geo.warp((h, w))

    out = _valid_or_fusepose_error(warp)
    if out is not None:
        m, (w_in, h_in) = out
        assert np.isfinite(m).all() and w_in > 0 and h_in > 0
        corners = np.array([[0.0, 0.0], [w - 1.0, h - 1.0]])
        np.testing.assert_allclose(invert_points(affine_points(corners, m), m), corners,
                                   atol=1e-6 * max(h, w, 1))  # fmt: skip


# ------------------------------------------------------------------------------ results


GT = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 900.0,
                     "bbox": [10, 10, 30, 30], "num_keypoints": 1,
                     "keypoints": [20, 20, 2] + [0, 0, 0] * 16}],  # fmt: skip
    "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.keypoints)}],
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=5),  # fmt: skip
    max_leaves=20,
)
result_entry = st.fixed_dictionaries(
    {"image_id": st.sampled_from([1, 2, "1", None]), "category_id": st.sampled_from([1, 3]),
     "keypoints": st.lists(floats, min_size=0, max_size=60), "score": floats},
)  # fmt: skip


@FAST
@given(st.lists(result_entry | json_values, max_size=6) | json_values)
def test_results_validation_names_the_problem_or_accepts(results):
    out = _valid_or_fusepose_error(validate_results, results, GT)
    if out is not None:  # accepted: a list of well-formed entries of known images
        for r in out:
            kp = np.asarray(r["keypoints"], dtype=np.float64)
            assert kp.shape == (3 * K,) and np.isfinite(kp).all() and r["image_id"] == 1


# ------------------------------------------------------------------------------ predictor


@pytest.fixture(scope="module")
def predictors():
    import fusepose

    small = {"modules": (1, 1, 1), "blocks_per_branch": 1, "head_num_blocks": 1}
    bu = fusepose.Predictor(fusepose.create_model("lmfnet_lite", **small), input_size=64,
                            score_thr=0)  # fmt: skip
    td = fusepose.Predictor(fusepose.create_model("sfm_coco"), input_size=(64, 48), score_thr=0)
    return bu, td


image_arrays = arrays(
    st.sampled_from([np.uint8, np.float32, np.int64]),
    st.tuples(st.integers(0, 40), st.integers(0, 40)) | st.tuples(
        st.integers(0, 40), st.integers(0, 40), st.integers(1, 4)),
)  # fmt: skip
boxes = arrays(np.float64, st.tuples(st.integers(0, 3), st.sampled_from([3, 4])), elements=floats)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(image_arrays, boxes)
def test_predictor_array_input(predictors, image, box):
    for pred in predictors:
        res = _valid_or_fusepose_error(pred.predict_frame, image, boxes=box)
        if res is not None:
            assert res.image_size == image.shape[:2]
            for inst in res:
                assert np.isfinite(inst.keypoints).all() and np.isfinite(inst.score)
                assert (inst.keypoint_scores >= 0).all()
