"""Corpus, class "model files": a checkpoint or an exported file from elsewhere is data.

Each case edits one field of a tiny model file the way a corrupt, foreign or hostile file
would, and states what every verb does with it: exit 2, exactly one error line naming the file
and the problem (never a traceback, an internal error or advice to load it as code), and the
file itself unchanged. ``inspect`` is held to what ``predict`` runs: it checks the same things.
"""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch
from hostile_helpers import (
    REPO,
    SHARED,
    TINY_SFM,
    checkpoint_with,
    cli,
    onnx_with,
    refused,
    sha256,
    tiny_files,
)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_files(tmp_path_factory)


def _desc(**fields):
    """An edit of the stored description's fields."""
    return lambda ck: ck["description"].update(fields)


def _sub(key, **fields):
    """An edit inside one section of the stored description (``overrides``, ``test``, ...)."""
    return lambda ck: ck["description"][key].update(fields)


def _top_down(model, **fields):
    """The file turned into a top-down one of ``model`` (geometry and codec too)."""
    edit = _desc(model=model, kind="top_down", geometry={"mode": "crop", "size": [64, 48]},
                 codec={"type": "TopDownHeatmapCodec", "kwargs": {}}, **fields)  # fmt: skip
    return lambda ck: (edit(ck), ck.update(model_name=model))


def _state(change):
    return lambda ck: ck.update(state_dict=change(ck["state_dict"]))


def _widen(sd):
    k = next(iter(sd))
    return {**sd, k: torch.zeros(*[s + 1 for s in sd[k].shape])}


CHECKPOINT_CASES = [
    ("format_version text", lambda ck: ck.update(format_version="two"), "format_version"),
    ("format_version 99", lambda ck: ck.update(format_version=99), "newer"),
    ("format_version 2.5", lambda ck: ck.update(format_version=2.5), "format_version"),
    ("format_version None", lambda ck: ck.update(format_version=None), "format_version"),
    ("format_version -1", lambda ck: ck.update(format_version=-1), "format_version"),
    ("model_name a number", lambda ck: ck.update(model_name=42), "model_name"),
    ("state dict a list", _state(lambda sd: list(sd.values())), "not a mapping"),
    ("state dict of strings", _state(lambda sd: {k: "w" for k in sd}), "not a tensor"),
    ("state dict empty", _state(lambda sd: {}), "missing"),
    ("a tensor of another shape", _state(_widen), "another shape"),
    ("an extra tensor", _state(lambda sd: {**sd, "evil.weight": torch.zeros(1)}), "unexpected"),
    ("a tensor missing", _state(lambda sd: dict(list(sd.items())[1:])), "missing"),
    ("description a string", lambda ck: ck.update(description="lmfnet"), "not a mapping"),
    ("description lacks keys", lambda ck: ck["description"].pop("geometry"), "lacks"),
    ("description version text", _desc(version="v1"), "version"),
    ("description version 99", _desc(version=99), "newer"),
    ("num_keypoints text", _desc(num_keypoints="seventeen"), "num_keypoints"),
    ("num_keypoints 1e9", _desc(num_keypoints=10**9), "num_keypoints"),
    ("num_keypoints -3", _desc(num_keypoints=-3), "num_keypoints"),
    ("kind unknown", _desc(kind="sideways"), "kind"),
    (
        "model unknown",
        lambda ck: (ck.update(model_name="nope_net"), ck["description"].update(model="nope_net")),
        "unknown model",
    ),
    ("model name not text", _desc(model=["lmfnet"]), "model"),
    (
        "model_name and description disagree",
        lambda ck: ck.update(model_name="sfm_coco"),
        "sfm_coco",
    ),
    ("family edited to top-down", _top_down("lmfnet"), "bottom-up"),
    ("another architecture described", _top_down("sfm_coco", overrides=TINY_SFM), "do not fit"),
    ("overrides a list", _desc(overrides=[1, 2]), "overrides"),
    ("overrides negative width", _sub("overrides", widths=[-8, 16, 24, 32]), "overrides.widths"),
    ("overrides absurd width", _sub("overrides", widths=[100000, 16, 24, 32]), "parameters"),
    ("overrides unknown option", _sub("overrides", wings=3), "cannot build"),
    ("overrides nested list", _sub("overrides", widths=[[8], 16, 24, 32]), "nested"),
    ("overrides NaN", _sub("overrides", ghost_kernel_size=float("nan")), "overrides"),
    ("overrides key not a name", _sub("overrides", **{"a b": 1}), "option name"),
    ("overrides other widths", _sub("overrides", widths=[16, 16, 24, 32]), "do not fit"),
    ("geometry size 0", _sub("geometry", size=[0, 64]), "input size"),
    ("geometry size 100000", _sub("geometry", size=[100000, 100000]), "at most 4096"),
    ("geometry size text", _sub("geometry", size="big"), "input size"),
    ("geometry mode unknown", _sub("geometry", mode="fisheye"), "geometry mode"),
    ("geometry of the other family", _sub("geometry", mode="crop"), "geometry"),
    ("codec unknown", _desc(codec={"type": "EvilCodec", "kwargs": {}}), "codec"),
    ("codec of the other family", _desc(codec={"type": "TopDownHeatmapCodec"}), "does not decode"),
    ("codec sigma -1", _sub("codec", kwargs={"sigma": -1.0}), "sigma"),
    ("codec sigma NaN", _sub("codec", kwargs={"sigma": float("nan")}), "sigma"),
    ("codec max_people 1e9", _sub("codec", kwargs={"max_people": 10**9}), "max_people"),
    ("codec unknown parameter", _sub("codec", kwargs={"evil": 1}), "codec"),
    ("codec kwargs a list", _sub("codec", kwargs=[1]), "codec"),
    ("test scales 1e9", _sub("test", scales=[1e9]), "scale"),
    ("test scales text", _sub("test", scales="big"), "scales"),
    ("test flip text", _sub("test", flip="yes"), "flip"),
    ("test nms_thr 5", _sub("test", nms_thr=5), "nms_thr"),
    ("test score_thr NaN", _sub("test", score_thr=float("nan")), "score_thr"),
    ("val not a mapping", _desc(val="high"), "val"),
    ("val value text", _desc(val={"metric": "AP", "value": "great"}), "val.value"),
    ("skeleton not a mapping", _desc(skeleton="coco"), "skeleton"),
    ("skeleton sigmas count", _sub("skeleton", sigmas=[0.1]), "sigmas"),
    ("skeleton flip pair out of range", _sub("skeleton", flip_pairs=[[0, 99]]), "flip pair"),
    (
        "legacy config malformed",
        lambda ck: (
            ck.pop("description"),
            ck.update(format_version=1, config={"model": {"name": "lmfnet", "num_keypoints": "x"}}),
        ),
        "training config",
    ),
    (
        "legacy model_config absurd width",
        lambda ck: (
            ck.pop("description"),
            ck.update(format_version=1, model_config={"overrides": {"widths": [100000, 8, 8, 8]}}),
        ),
        "parameters",
    ),
]


@pytest.mark.parametrize("change,expect", [c[1:] for c in CHECKPOINT_CASES],
                         ids=[c[0] for c in CHECKPOINT_CASES])  # fmt: skip
def test_inspect_refuses_a_hostile_checkpoint(tiny, tmp_path, capsys, change, expect):
    path = checkpoint_with(tiny, tmp_path / "m.pth", change)
    before = sha256(path)
    refused(["inspect", path, "--json"], capsys, str(path), expect)
    assert sha256(path) == before


def _evil_pickles(tmp_path):
    """Files whose unpickling would run code: a checkpoint dict holding one, a bare one, one
    in a zip (torch's format) and one disguised as a state dict value."""
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    files = []
    for i, obj in enumerate([{"format_version": 2, "model_name": "lmfnet", "state_dict": Evil()},
                             Evil(), {"state_dict": {"w": Evil()}}]):  # fmt: skip
        torch.save(obj, tmp_path / f"evil{i}.pth")
        files.append(tmp_path / f"evil{i}.pth")
    with open(tmp_path / "evil_raw.pth", "wb") as f:
        pickle.dump(Evil(), f)
    return [*files, tmp_path / "evil_raw.pth"], marker


@pytest.mark.parametrize("verb", ["inspect", "predict", "export"])
def test_a_pickle_that_runs_code_is_refused_as_data(tiny, tmp_path, capsys, verb):
    """No code runs, and the refusal never suggests ``weights_only=False``."""
    files, marker = _evil_pickles(tmp_path)
    for path in files:
        argv = {"inspect": ["inspect", path],
                "predict": ["predict", path, "--source", tiny["image"]],
                "export": ["export", path, "-o", tmp_path / "o.onnx"]}[verb]  # fmt: skip
        line = refused(argv, capsys, str(path))
        assert "weights_only" not in line and "trust" not in line
    assert not marker.exists()


def _verb_argv(verb, path, tiny, tmp_path):
    img, ann = tiny["image"], tiny["ann"]
    return {
        "predict": ["predict", path, "--source", img, "--save-json", tmp_path / "r.json"],
        "export": ["export", path, "-o", tmp_path / "o.onnx"],
        "eval": ["eval", "--model", path, "--data", ann, "--images", SHARED],
        "visualize": ["visualize", path, "--image", img, "--out", tmp_path / "vis"],
        "bench": ["bench", path, "--runs", "1", "--warmup", "0"],
        "serve": ["serve", path, "--port", "0"],
    }[verb]


VERB_CASES = [
    ("negative width", _sub("overrides", widths=[-8, 16, 24, 32]), "overrides.widths"),
    ("family edited", _top_down("lmfnet"), "bottom-up"),
    ("state dict a list", _state(lambda sd: list(sd.values())), "not a mapping"),
]


@pytest.mark.parametrize("verb", ["predict", "export", "eval", "visualize", "bench", "serve"])
@pytest.mark.parametrize("change,expect", [c[1:] for c in VERB_CASES],
                         ids=[c[0] for c in VERB_CASES])  # fmt: skip
def test_every_verb_refuses_it_before_building(tiny, tmp_path, capsys, verb, change, expect):
    path = checkpoint_with(tiny, tmp_path / "m.pth", change)
    before = sha256(path)
    refused(_verb_argv(verb, path, tiny, tmp_path), capsys, str(path), expect)
    assert sha256(path) == before
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "o.onnx").exists()


def _meta(key, value):
    return lambda props: props.__setitem__(f"fusepose.{key}", value)


def _meta_desc(**fields):
    return lambda props: props["fusepose.description"].update(fields)


ONNX_CASES = [
    (
        "family edited, known model",
        _meta_desc(
            kind="top_down",
            geometry={"mode": "crop", "size": [64, 48]},
            codec={"type": "TopDownHeatmapCodec", "kwargs": {}},
        ),
        "bottom-up",
    ),
    (
        "family edited, unknown model",
        _meta_desc(
            model="mystery",
            kind="top_down",
            geometry={"mode": "crop", "size": [64, 48]},
            codec={"type": "TopDownHeatmapCodec", "kwargs": {}},
        ),
        "not those of a top-down model",
    ),
    (
        "keypoints edited",
        _meta_desc(
            num_keypoints=5,
            skeleton={"name": "five", "keypoints": list("abcde"), "sigmas": [0.1] * 5},
        ),
        "channels",
    ),
    ("format 99", _meta("format_version", "99"), "newer"),
    ("format text", _meta("format_version", "abc"), "format_version"),
    ("description text", _meta("description", '"lmfnet"'), "not a mapping"),
    (
        "description size 100000",
        _meta_desc(geometry={"mode": "letterbox", "size": [100000, 100000]}),
        "4096",
    ),
    ("num_keypoints text", _meta("num_keypoints", "many"), "num_keypoints"),
    (
        "codec sigma NaN",
        _meta_desc(codec={"type": "AssociativeEmbeddingCodec", "kwargs": {"sigma": float("nan")}}),
        "sigma",
    ),
    ("no fusepose metadata", lambda props: props.clear(), "no fusepose metadata"),
    (
        "legacy keys malformed",
        lambda props: (
            props.pop("fusepose.description"),
            props.update({"fusepose.keypoint_names": 7, "fusepose.skeleton": "custom"}),
        ),
        "metadata",
    ),
]


@pytest.mark.parametrize("change,expect", [c[1:] for c in ONNX_CASES],
                         ids=[c[0] for c in ONNX_CASES])  # fmt: skip
def test_an_edited_onnx_file_is_refused(tiny, tmp_path, capsys, change, expect):
    path = onnx_with(tiny, tmp_path / "m.onnx", change)
    before = sha256(path)
    refused(["inspect", path], capsys, str(path), expect)
    refused(["predict", path, "--source", tiny["image"]], capsys, str(path), expect)
    assert sha256(path) == before


def test_a_deeply_nested_metadata_value_is_one_line(tiny, tmp_path, capsys):
    path = onnx_with(tiny, tmp_path / "m.onnx",
                     _meta("outputs", "[" * 100000 + "]" * 100000))  # fmt: skip
    refused(["inspect", path], capsys, "not valid JSON")


def test_the_untouched_files_still_run(tiny, tmp_path, capsys):
    """The control: the same verbs accept the files the cases above were made from."""
    for path in (tiny["lm"], tiny["lm_onnx"], tiny["sfm"]):
        rc, out, err = cli(["inspect", path, "--json"], capsys)
        assert rc == 0, err
    rc, _out, err = cli(["predict", tiny["lm"], "--source", tiny["image"], "--save-json",
                         tmp_path / "r.json"], capsys)  # fmt: skip
    assert rc == 0 and (tmp_path / "r.json").is_file(), err


def _training_checkpoint(tiny, dst):
    """The tiny L-MFNet as a training checkpoint (optimiser, epoch...): resumable in form."""
    return checkpoint_with(
        tiny,
        dst,
        lambda ck: ck.update(
            optimizer={"state": {}, "param_groups": []}, scheduler={}, epoch=1, step=1
        ),
    )


def test_resume_from_another_architecture_names_the_first_misfits(tiny, tmp_path, capsys):
    """``train --resume`` of a run of other widths: refused with the tensors that differ."""
    other = _training_checkpoint(tiny, tmp_path / "other.pth")
    before = sha256(other)
    cfg = REPO / "configs" / "lmfnet_coco4-256_1xb4-150e.yaml"
    line = refused(["train", cfg, "--resume", other, "--out", tmp_path / "run",
                    "--set", f"data.train_ann={SHARED / 'test_coco.json'}",
                    "--set", f"data.train_images={SHARED}",
                    "--set", f"data.val_ann={SHARED / 'test_coco.json'}",
                    "--set", f"data.val_images={SHARED}"], capsys, str(other),
                   "do not fit", "another shape", "backbone.")  # fmt: skip
    assert "file [" in line and "model [" in line
    assert sha256(other) == before


def test_a_folder_or_text_as_weights_is_one_line(tiny, tmp_path, capsys):
    (tmp_path / "dir.pth").mkdir()
    (tmp_path / "text.pth").write_text("not a model")
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(tiny["lm"].read_bytes()[:5000])
    refused(["inspect", tmp_path / "dir.pth"], capsys, "folder")
    refused(["inspect", tmp_path / "text.pth"], capsys, "not a readable checkpoint")
    refused(["predict", trunc, "--source", tiny["image"]], capsys, "not a readable checkpoint")
    shutil.rmtree(tmp_path / "dir.pth")
