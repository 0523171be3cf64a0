"""One table per model family (fusepose.family), the codec protocol (fusepose.codecs.base) and
datasets that take the InputGeometry value: hand-written facts for both families, a round trip
per codec through the common interface, the issue's grep for family-name comparisons, and
datasets built from a geometry equal to the ones the older keywords built."""

from __future__ import annotations

import dataclasses
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import overfit_config
from torch import nn

from fusepose.codecs.base import KeypointCodec
from fusepose.codecs.pipelines import CODECS, PIPELINES, build_codec, build_pipeline
from fusepose.data.coco import COCO_DATASETS, CocoBottomUpDataset, CocoTopDownDataset
from fusepose.data.mpii import MpiiDataset
from fusepose.description import ModelDescription
from fusepose.engine.config import load_config
from fusepose.engine.data import build_dataset, target_codec
from fusepose.engine.validate import run_description
from fusepose.errors import ConfigError
from fusepose.export.metadata import output_spec
from fusepose.family import BOTTOM_UP, FAMILIES, TOP_DOWN, get_family
from fusepose.geometry import InputGeometry
from fusepose.losses import LOSSES, BottomUpLoss, TopDownLoss, build_loss, loss_options
from fusepose.modelfile import default_description
from fusepose.models import InferenceWrapper, get_model_info, list_models
from fusepose.models.registry import ModelInfo
from fusepose.skeletons import COCO17

SRC = Path(__file__).resolve().parents[1] / "src" / "fusepose"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


# ------------------------------------------------------------------------------ the table


def test_bottom_up_family_answers_what_the_modules_ask():
    f = BOTTOM_UP
    assert f.name == "bottom_up" and f.output_names == ("out_q", "out_h")
    assert not f.staged and f.tags and not f.needs_boxes and f.input_multiple == 32
    # data.resize "crop" (square random crop) validates with HigherHRNet's short-side resize
    assert f.geometry((512, 512), "crop") == InputGeometry("short_side", (512, 512))
    assert f.geometry((512, 512)) == InputGeometry("short_side", (512, 512))
    assert f.geometry((256, 384), "letterbox") == InputGeometry("letterbox", (256, 384))
    assert f.fixed_geometry((256, 384)) == InputGeometry("letterbox", (256, 384))
    assert f.codec == "AssociativeEmbeddingCodec" and f.nms_thr is None
    assert dict(f.codec_defaults) == {"sigma": 2.0, "max_people": 30}
    assert f.preprocess["type"] == "bottom_up_warp"


def test_top_down_family_answers_what_the_modules_ask():
    f = TOP_DOWN
    assert f.name == "top_down" and f.output_names == ("heatmaps",)
    assert f.staged and not f.tags and f.needs_boxes and f.input_multiple == 4
    # one geometry whatever the training resize says
    for resize in (None, "crop", "letterbox"):
        assert f.geometry((256, 192), resize) == InputGeometry("crop", (256, 192))
    assert f.fixed_geometry((128, 96)) == InputGeometry("crop", (128, 96))
    assert f.codec == "TopDownHeatmapCodec" and f.nms_thr == 0.9
    assert dict(f.codec_defaults) == {"sigma": 2.0}
    assert f.preprocess["type"] == "top_down_warp"


def test_every_higher_layer_table_covers_both_families():
    families = set(FAMILIES.values())
    for table in (PIPELINES, LOSSES, COCO_DATASETS):
        assert set(table) == families
    assert PIPELINES[BOTTOM_UP].family is BOTTOM_UP and PIPELINES[TOP_DOWN].family is TOP_DOWN
    assert LOSSES[BOTTOM_UP] is BottomUpLoss and LOSSES[TOP_DOWN] is TopDownLoss
    assert COCO_DATASETS[BOTTOM_UP] is CocoBottomUpDataset
    assert COCO_DATASETS[TOP_DOWN] is CocoTopDownDataset
    for fam in families:  # the family's default codec is a registered one
        assert fam.codec in CODECS


def test_the_name_is_parsed_once_and_survives_pickling():
    assert get_family("bottom_up") is BOTTOM_UP and get_family(TOP_DOWN) is TOP_DOWN
    with pytest.raises(ConfigError, match="model kind 'sideways'") as e:
        get_family("sideways")
    assert "\n" not in str(e.value)
    # DataLoader workers unpickle datasets and pipelines: the tables keyed by family still hold
    assert pickle.loads(pickle.dumps(BOTTOM_UP)) is BOTTOM_UP
    assert LOSSES[pickle.loads(pickle.dumps(TOP_DOWN))] is TopDownLoss


def test_kind_stays_a_string_beside_family():
    for name in list_models():
        info = get_model_info(name)
        assert isinstance(info.kind, str) and info.family is get_family(info.kind)
        assert info.input_multiple == info.family.input_multiple
        desc = default_description(name)
        assert desc.kind == info.kind and desc.family is info.family
    # a Family given as kind is stored, and serialized, by its name
    info = ModelInfo("x", TOP_DOWN, (8, 8))
    assert info.kind == "top_down"
    desc = default_description("sfm_coco")
    again = ModelDescription.from_dict({**desc.to_dict(), "kind": "top_down"})
    assert again == desc and dataclasses.replace(desc, kind=TOP_DOWN) == desc
    assert desc.to_dict()["kind"] == "top_down"


def test_description_checks_the_geometry_against_its_family():
    desc = default_description("lmfnet")
    with pytest.raises(ConfigError, match="bottom_up model 'lmfnet' cannot use the 'crop'"):
        desc.replace(geometry=InputGeometry("crop", (256, 192)))
    sfm = default_description("sfm_coco")
    with pytest.raises(ConfigError, match="top_down model 'sfm_coco' cannot use the 'letterbox'"):
        sfm.replace(geometry=InputGeometry("letterbox", (256, 192)))


class _Staged(nn.Module):
    """Three outputs, as a top-down net returns its stages (or a bottom-up one q, h, extra)."""

    def __init__(self, kind):
        super().__init__()
        self.info = ModelInfo("staged", kind, (8, 8))

    def forward(self, x):
        return x + 1, x + 2, x + 3


def test_inference_wrapper_keeps_the_family_outputs():
    x = torch.zeros(1, 1, 2, 2)
    bu = InferenceWrapper(_Staged("bottom_up"))(x)
    assert len(bu) == 2 and bu[0].max() == 1 and bu[1].max() == 2  # out_q, out_h
    td = InferenceWrapper(_Staged("top_down"))(x)
    assert len(td) == 1 and td[0].max() == 3  # the final stage


def test_output_spec_from_the_family():
    bu = output_spec(BOTTOM_UP, 17, (512, 384))
    assert [(o["name"], o["shape"]) for o in bu] == [
        ("out_q", ["B", 34, 128, 96]),
        ("out_h", ["B", 17, 256, 192]),
    ]
    assert "channels 0..16 keypoint heatmaps, channels 17..33" in bu[0]["meaning"]
    td = output_spec("top_down", 16, ("H", "W"))
    assert [(o["name"], o["shape"]) for o in td] == [("heatmaps", ["B", 16, "H/4", "W/4"])]


def test_loss_options_pick_the_family_settings():
    cfg = load_config("lmfnet_coco4-256_1xb4-150e")
    bu = loss_options(BOTTOM_UP, cfg.loss)
    assert sorted(bu) == sorted(
        ["heatmap_weights", "push_factor", "pull_factor", "ae_type", "heatmap_fg_weight"]
    )
    assert loss_options("top_down", cfg.loss) == {"stage_weights": cfg.loss.stage_weights}
    assert isinstance(build_loss("bottom_up", 17, **bu), BottomUpLoss)
    assert isinstance(build_loss(TOP_DOWN, 17, stage_weights=[1.0, 2.0]), TopDownLoss)


# ------------------------------------------------------------------------------ the grep

# `grep -rn '== "top_down"\|== "bottom_up"\|!= "top_down"\|!= "bottom_up"' src`, both quote
# styles and either operand order
_COMPARISON = re.compile(
    r"""[=!]=\s*["'](?:top_down|bottom_up)["']|["'](?:top_down|bottom_up)["']\s*[=!]="""
)


def test_the_grep_pattern_sees_a_comparison():
    assert _COMPARISON.search('if desc.kind == "top_down":')
    assert _COMPARISON.search("if 'bottom_up' != kind:")
    assert not _COMPARISON.search('kind="bottom_up", input_size=(512, 512)')


def test_family_names_are_compared_in_at_most_two_modules():
    files = {
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if _COMPARISON.search(p.read_text(encoding="utf-8"))
    }
    assert len(files) <= 2 and files <= {"family.py", "models/registry.py"}, sorted(files)


# ------------------------------------------------------------------------------ codec protocol


def _people(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` people of 17 labelled joints inside a 256 x 192 input, 12 px apart or more."""
    kp = np.zeros((n, 17, 3))
    kp[..., 0] = rng.uniform(20, 170, (n, 17))
    kp[..., 1] = rng.uniform(20, 230, (n, 17))
    kp[..., 2] = 2
    return kp


@pytest.mark.parametrize("fam", list(FAMILIES.values()), ids=list(FAMILIES))
def test_every_codec_round_trips_through_the_protocol(fam):
    """encode -> named targets; ideal_outputs -> decode gives the keypoints back within half a
    stride-4 heatmap pixel / one stride-2 pixel (2 input px), every person found once."""
    codec = build_codec(fam.default_codec_spec(**fam.codec_defaults), num_keypoints=17,
                        flip_index=COCO17.flip_index, input_size=(256, 192))  # fmt: skip
    assert isinstance(codec, KeypointCodec) and type(codec) is CODECS[fam.codec]
    people = _people(1 if fam.needs_boxes else 3, np.random.default_rng(0))
    sample = people[0] if fam.needs_boxes else people  # one crop's person, or the image's
    targets = codec.encode(sample)
    assert set(targets) == set(codec.target_keys)
    outputs = codec.ideal_outputs(sample)
    assert len(outputs) == len(fam.outputs)
    keypoints, scores = codec.decode(*outputs)
    assert len(keypoints) == len(people) and np.all(scores > 0.5)
    for gt in people:
        err = min(np.abs(k[:, :2] - gt[:, :2]).max() for k in keypoints)
        assert err < 2.0


def test_every_codec_subclasses_the_base_and_completes_its_arguments():
    for name, cls in CODECS.items():
        assert issubclass(cls, KeypointCodec) and cls.__name__ == name and cls.target_keys
    td = build_codec({"type": "TopDownHeatmapCodec", "kwargs": {}}, num_keypoints=17,
                     flip_index=COCO17.flip_index, input_size=(256, 192))  # fmt: skip
    assert td.input_size == (256, 192) and td.heatmap_size == (64, 48)  # stride 4 by default
    kept = build_codec({"type": "TopDownHeatmapCodec", "kwargs": {"heatmap_size": [32, 24]}},
                       num_keypoints=17, flip_index=COCO17.flip_index, input_size=(256, 192))  # fmt: skip
    assert kept.heatmap_size == (32, 24)
    ae = build_codec({"type": "AssociativeEmbeddingCodec", "kwargs": {"sigma": 3.0}},
                     num_keypoints=17, flip_index=COCO17.flip_index, input_size=(256, 384))  # fmt: skip
    assert ae.input_size == (256, 384) and ae.sigma == 3.0
    assert ae.num_keypoints == 17 and ae.flip_index == list(COCO17.flip_index)
    with pytest.raises(ConfigError, match="unknown codec 'Nope'"):
        build_codec({"type": "Nope"}, num_keypoints=17, flip_index=COCO17.flip_index,
                    input_size=(64, 64))  # fmt: skip


def test_pipelines_come_from_the_table(coco_dir):
    for name in ("lmfnet", "sfm_coco"):
        desc = default_description(name)
        pipe = build_pipeline(desc)
        assert type(pipe) is PIPELINES[desc.family] and pipe.needs_boxes == desc.family.needs_boxes


# ------------------------------------------------------------------------------ datasets


def _same_samples(a, b, n: int) -> None:
    for i in range(n):
        sa, sb = a[i], b[i]
        assert sa.keys() == sb.keys()
        for key in sa:
            if key == "meta":
                np.testing.assert_array_equal(sa[key]["matrix"], sb[key]["matrix"])
                continue
            va, vb = sa[key], sb[key]
            for x, y in zip(va if isinstance(va, list) else [va],
                            vb if isinstance(vb, list) else [vb], strict=True):  # fmt: skip
                assert torch.equal(x, y), key


def test_bottom_up_dataset_from_a_geometry_equals_the_older_keywords(coco_dir):
    ann = coco_dir / "test_coco.json"
    codec = build_codec(BOTTOM_UP.default_codec_spec(sigma=2.0), num_keypoints=17,
                        flip_index=COCO17.flip_index, input_size=(256, 384))  # fmt: skip
    for train in (True, False):
        old = CocoBottomUpDataset(ann, coco_dir, codec, input_size=(256, 384), resize="letterbox",
                                  train=train, rng=np.random.default_rng(1))  # fmt: skip
        new = CocoBottomUpDataset(ann, coco_dir, codec, train=train, rng=np.random.default_rng(1),
                                  geometry=InputGeometry("letterbox", (256, 384)))  # fmt: skip
        _same_samples(old, new, 2)
    # the letterbox matrix by hand: image 000000000785.jpg is 640 x 425 (W x H)
    s = new[0]
    scale = min(256 / 425, 384 / 640)
    assert s["image"].shape == (3, 256, 384)
    np.testing.assert_allclose(s["meta"]["matrix"], [[scale, 0, (384 - scale * 640) / 2],
                                                     [0, scale, (256 - scale * 425) / 2]])  # fmt: skip
    short = CocoBottomUpDataset(ann, coco_dir, None, geometry=InputGeometry.short_side(256),
                                train=False)  # fmt: skip
    _same_samples(CocoBottomUpDataset(ann, coco_dir, None, input_size=256, train=False), short, 2)
    assert short[0]["image"].shape[1] == 256  # the short side (H of a landscape image)
    with pytest.raises(ConfigError, match="a bottom-up dataset takes a short_side or letterbox"):
        CocoBottomUpDataset(ann, coco_dir, None, geometry=InputGeometry("crop", (256, 192)))


def test_top_down_datasets_from_a_geometry_equal_the_older_keywords(coco_dir, shared_data):
    ann = coco_dir / "test_coco.json"
    crop = InputGeometry("crop", (128, 96))
    old = CocoTopDownDataset(ann, coco_dir, None, input_size=(128, 96), train=True,
                             rng=np.random.default_rng(2))  # fmt: skip
    new = CocoTopDownDataset(ann, coco_dir, None, geometry=crop, train=True,
                             rng=np.random.default_rng(2))  # fmt: skip
    _same_samples(old, new, 3)
    assert new.input_size == (128, 96) and new[0]["image"].shape == (3, 128, 96)
    mp = shared_data / "mmpose_mpii"
    old = MpiiDataset(mp / "test_mpii.json", mp, None, input_size=(256, 256), train=False)
    new = MpiiDataset(mp / "test_mpii.json", mp, None, train=False,
                      geometry=InputGeometry("crop", (256, 256)))  # fmt: skip
    _same_samples(old, new, 2)
    with pytest.raises(ConfigError, match="a top-down dataset takes the 'crop' geometry"):
        CocoTopDownDataset(ann, coco_dir, None, geometry=InputGeometry("letterbox", (128, 96)))


def test_engine_datasets_equal_the_calls_before_geometry(coco_dir):
    """build_dataset passes the description's geometry; the samples equal those of the
    keyword calls it made before (letterbox: input_size=(H, W), resize='letterbox'; top-down:
    input_size=(H, W)), and the samples carry the codec's target keys."""
    ann = coco_dir / "test_coco.json"
    cfg = overfit_config("lmfnet_coco4-256_1xb4-150e.yaml", coco_dir)
    desc = run_description(cfg)
    assert desc.geometry == InputGeometry("letterbox", (256, 384))
    codec = target_codec(desc, cfg)
    built = build_dataset(cfg, desc, codec, train=True, rng=np.random.default_rng(0))
    before = CocoBottomUpDataset(ann, coco_dir, codec, input_size=(256, 384), resize="letterbox",
                                 skeleton=desc.skeleton, train=True, translate=0.0,
                                 flip_prob=0.0, rotation=0.0, scale_range=(1.0, 1.0),
                                 rng=np.random.default_rng(0))  # fmt: skip
    _same_samples(before, built, 2)
    assert set(codec.target_keys) <= set(built[0])
    cfg = overfit_config("sfm_coco4-128x96_1xb4-160e.yaml", coco_dir)
    desc = run_description(cfg)
    codec = target_codec(desc, cfg)
    built = build_dataset(cfg, desc, codec, train=False)
    before = CocoTopDownDataset(ann, coco_dir, codec, input_size=(128, 96), train=False,
                                skeleton=desc.skeleton, half_body_prob=0.0)  # fmt: skip
    _same_samples(before, built, 3)
    assert set(codec.target_keys) <= set(built[0])


def test_official_options_stay_bottom_up(coco_dir):
    cfg = overfit_config("sfm_coco4-128x96_1xb4-160e.yaml", coco_dir, "data.official_flip=true")
    desc = run_description(cfg)
    with pytest.raises(ConfigError, match="data.official_flip: an option of the bottom-up"):
        build_dataset(cfg, desc, None, train=True)
