"""The Predictor's option objects: a small constructor, each option checked when built, and the
old flat keywords giving the same people as the objects they are sorted into."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

import fusepose
from fusepose.errors import ConfigError, FusePoseError
from fusepose.inference.options import BoxOptions, OptionError, RunOptions, TestOptions
from fusepose.inference.predictor import Predictor

IMAGE = "000000196141.jpg"  # three people


def same_people(a, b) -> None:
    """Two results hold the same people, in the same order, to the last bit; and they are
    not degenerate (people found, keypoints spread over the image)."""
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.keypoints, y.keypoints)
        np.testing.assert_array_equal(x.keypoint_scores, y.keypoint_scores)
        assert x.score == y.score
    spread = np.concatenate([p.keypoints for p in a]).std(axis=0)
    assert np.all(spread > 1.0), spread


def test_the_constructor_takes_at_most_nine_parameters():
    params = inspect.signature(fusepose.Predictor.__init__).parameters
    assert len(params) <= 9, list(params)
    # the option objects are public names, loaded lazily like the Predictor
    assert fusepose.RunOptions is RunOptions and fusepose.TestOptions is TestOptions
    assert fusepose.BoxOptions is BoxOptions and fusepose.ResultWriter is not None


@pytest.mark.parametrize(
    ("cls", "values", "expect"),
    [
        (RunOptions, {"backend": "tflite"}, "backend 'tflite'"),
        (RunOptions, {"precision": "fp16"}, "precision 'fp16'"),
        (RunOptions, {"int8_scope": "half"}, "int8 scope 'half'"),
        (RunOptions, {"num_threads": 0}, "threads 0"),
        (RunOptions, {"device": "tpu"}, "device 'tpu'"),
        (RunOptions, {"calibration": "one.jpg"}, "calibration 'one.jpg'"),
        (TestOptions, {"scales": (1.0, 0.0)}, "scale 0.0"),
        (TestOptions, {"score_thr": 2.0}, "score_thr 2.0"),
        (TestOptions, {"kpt_thr": -1.0}, "kpt_thr -1.0"),
        (TestOptions, {"nms_thr": 5.0}, "nms_thr 5.0"),
        (TestOptions, {"input_size": 0}, "input_size 0"),
        (TestOptions, {"input_size": (64, 64, 64)}, "input_size (64, 64, 64)"),
        (TestOptions, {"resize": "stretch"}, "resize 'stretch'"),
        (TestOptions, {"batch_size": 0}, "batch_size 0"),
        (TestOptions, {"codec_kwargs": ["refine"]}, "codec_kwargs ['refine']"),
        (BoxOptions, {"det_thr": 1.5}, "det_thr 1.5"),
    ],
)
def test_each_option_is_checked_when_built(cls, values, expect):
    """A bad value is a one-line ConfigError that starts with the field and the value."""
    with pytest.raises(ConfigError) as info:
        cls(**values)
    msg = str(info.value)
    assert msg.startswith(expect) and "\n" not in msg, msg
    # the same mistake given to the Predictor as a flat keyword fails the same way, before
    # any model is looked up
    with pytest.raises(ConfigError) as info:
        Predictor("no_such_model", **values)
    assert str(info.value) == msg


def test_options_are_frozen_and_normalised():
    run = RunOptions(num_threads=2, calibration=["a.jpg"])
    test = TestOptions(scales=[1, 0.5], input_size=[128])
    assert run.calibration == ("a.jpg",) and test.scales == (1.0, 0.5) and test.input_size == 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.num_threads = 4  # type: ignore[misc]


def test_an_unknown_keyword_names_the_closest_valid_one(caplog):
    with caplog.at_level("WARNING"), pytest.raises(OptionError) as info:
        Predictor("lmfnet_lite", allow_random_weights=True, flp=False)
    msg = str(info.value)
    assert "'flp'" in msg and "did you mean 'flip'?" in msg and "\n" not in msg
    assert isinstance(info.value, TypeError) and isinstance(info.value, FusePoseError)
    assert "RANDOM WEIGHTS" not in caplog.text  # refused before any model was built
    with pytest.raises(OptionError, match="did you mean 'num_threads'"):
        Predictor("lmfnet_lite", allow_random_weights=True, num_thread=1)
    with pytest.raises(OptionError, match="expected a RunOptions"):
        Predictor("lmfnet_lite", allow_random_weights=True, run=TestOptions())


def test_old_keywords_and_option_objects_give_the_same_people_bottom_up(coco_dir):
    # random weights are drawn from a fixed seed: both Predictors get the same network
    old = Predictor("lmfnet_lite", allow_random_weights=True, input_size=128, flip=True,
                    score_thr=0, num_threads=1, optimize=False)  # fmt: skip
    new = Predictor("lmfnet_lite", allow_random_weights=True,
                    run=RunOptions(num_threads=1, optimize=False),
                    test=TestOptions(input_size=128, flip=True, score_thr=0))  # fmt: skip
    assert old.description == new.description and old.flip
    same_people(old(coco_dir / IMAGE), new(coco_dir / IMAGE))


def test_old_keywords_and_option_objects_give_the_same_people_top_down(coco_dir):
    dets = coco_dir / "test_coco_det_AP_H_56.json"
    image_id = int(Path(IMAGE).stem)
    want = [d for d in json.loads(dets.read_text()) if d["image_id"] == image_id]
    # random weights are drawn from a fixed seed: both Predictors get the same network
    old = Predictor("sfm_coco", allow_random_weights=True, det_file=dets, det_thr=0.3,
                    nms_thr=0, score_thr=0, batch_size=2, input_size=(128, 96))  # fmt: skip
    new = Predictor("sfm_coco", allow_random_weights=True,
                    boxes=BoxOptions(det_file=dets, det_thr=0.3),
                    test=TestOptions(nms_thr=0, score_thr=0, batch_size=2,
                                     input_size=(128, 96)))  # fmt: skip
    assert old.description.test.nms_thr is None and new.pipeline_batch == 2
    a, b = old(coco_dir / IMAGE, image_id=image_id), new(coco_dir / IMAGE, image_id=image_id)
    assert len(a) == sum(d["score"] >= 0.3 for d in want)
    same_people(a, b)


def test_keywords_set_fields_over_the_objects_given():
    test = TestOptions(flip=False, input_size=128, score_thr=0.2)
    pred = Predictor("lmfnet_lite", allow_random_weights=True, test=test, flip=True,
                     run=RunOptions(num_threads=1))  # fmt: skip
    assert pred.test_options == TestOptions(flip=True, input_size=128, score_thr=0.2)
    assert pred.flip and pred.description.test.score_thr == 0.2
    assert pred.input_size == (128, 128)
    assert test.flip is False  # the caller's object is left as it was


def test_a_detector_by_name_runs_with_the_run_options_device_and_threads():
    pred = Predictor("test_sfm", allow_random_weights=True, run=RunOptions(num_threads=1),
                     boxes=BoxOptions(detector="test_lmfnet"))  # fmt: skip
    det = pred.detector
    assert det is not None and det.kind == "bottom_up"
    assert det.run_options == RunOptions(device="cpu", num_threads=1)
    assert det.pipeline.codec.do_refine is False  # the detector runs without the AE refine step
