"""Helpers of the misuse / fault / hostile-input corpus (tests/test_hostile_*.py).

Tiny model files (an L-MFNet and an SFM of a few thousand parameters, an ONNX export) are
made once per session (:func:`tiny_files`, behind each module's ``tiny`` fixture); :func:`cli`
runs a verb in-process the way the console script does and returns ``(exit code, stdout,
stderr lines)``; :func:`refused` asserts the one-line exit-2 contract; :func:`sha256`
fingerprints an input that must stay untouched. Imported as a plain module (tests/ is on
sys.path).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

import fusepose
from fusepose.geometry import InputGeometry
from fusepose.modelfile import default_description, save_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmpose_coco"
REPO = Path(__file__).resolve().parents[1]

# a few thousand parameters: built and run in milliseconds
TINY_LMFNET = {"stem_width": 16, "stage1_planes": 8, "stage1_blocks": 1, "widths": [8, 16, 24, 32],
               "modules": [1, 1, 1], "blocks_per_branch": 1, "head_num_blocks": 1,
               "head_deconv_channels": 8}  # fmt: skip
TINY_SFM = {"widths": [8, 8, 8, 8], "depths": [1, 1, 1, 1], "stem_width": 8, "num_pyramids": 1}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    """``fusepose ARGV`` in-process: (exit code, stdout, non-empty stderr lines)."""
    from fusepose.cli.main import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capsys.readouterr()
    return int(rc or 0), out, [line for line in err.splitlines() if line.strip()]


def refused(argv: list[str], capsys, *expect: str) -> str:
    """Assert the verb ends in exit 2 with exactly one error line on stderr containing every
    ``expect`` text (case-insensitive) and no traceback; returns the line."""
    rc, _out, err = cli(argv, capsys)
    errors = [line for line in err if "error:" in line]
    assert rc == 2, (rc, err[-5:])
    assert len(errors) == 1, err
    assert not any("Traceback" in line or "internal error" in line for line in err), err
    for text in expect:
        assert text.lower() in errors[0].lower(), (text, errors[0])
    return errors[0]


def _tiny_lmfnet(seed: int = 0):
    torch.manual_seed(seed)
    model = fusepose.create_model("lmfnet", **TINY_LMFNET)
    with torch.no_grad():  # outputs well away from zero (the official init gives ~1e-17)
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


_TINY: dict[str, Path] = {}


def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """``{"lm", "sfm"}`` checkpoints, ``"lm_onnx"`` (fixed 64x64 letterbox export of "lm"),
    ``"image"`` (a COCO photo copied) and ``"ann"`` (its COCO keypoints JSON copied); made
    once per session (process)."""
    if not _TINY:
        _TINY.update(_make_tiny(tmp_path_factory.mktemp("tiny")))
    return dict(_TINY)


def _make_tiny(root: Path) -> dict[str, Path]:
    lm = _tiny_lmfnet()
    desc = default_description("lmfnet", overrides=TINY_LMFNET,
                               geometry=InputGeometry("letterbox", (64, 64)))  # fmt: skip
    files = {"lm": save_checkpoint(root / "lm.pth", {
        "model_name": "lmfnet", "state_dict": lm.state_dict(), "description": desc.to_dict()})}
    sfm = fusepose.create_model("sfm_coco", **TINY_SFM)
    sdesc = default_description("sfm_coco", overrides=TINY_SFM,
                                geometry=InputGeometry("crop", (64, 48)))  # fmt: skip
    files["sfm"] = save_checkpoint(root / "sfm.pth", {
        "model_name": "sfm_coco", "state_dict": sfm.state_dict(), "description": sdesc.to_dict()})
    from fusepose.export.package import export_model

    files["lm_onnx"] = root / "lm.onnx"
    export_model(lm, files["lm_onnx"], (64, 64), desc=desc)
    files["image"] = root / "000000000785.jpg"
    shutil.copy(SHARED / "000000000785.jpg", files["image"])
    files["ann"] = root / "ann.json"
    shutil.copy(SHARED / "test_coco.json", files["ann"])
    return files


def checkpoint_with(tiny: dict[str, Path], dst: Path, change) -> Path:
    """A copy of the tiny L-MFNet checkpoint whose loaded dict ``change(ckpt)`` edited."""
    ckpt = torch.load(tiny["lm"], weights_only=True)
    change(ckpt)
    torch.save(ckpt, dst)
    return dst


def onnx_with(tiny: dict[str, Path], dst: Path, change) -> Path:
    """A copy of the tiny ONNX export whose metadata ``change(props)`` edited (a dict of the
    ``fusepose.*`` keys, JSON values decoded)."""
    import onnx

    model = onnx.load(str(tiny["lm_onnx"]))
    props = {p.key: p.value for p in model.metadata_props}
    decoded = {}
    for k, v in props.items():
        try:
            decoded[k] = json.loads(v)
        except json.JSONDecodeError:
            decoded[k] = v
    change(decoded)
    del model.metadata_props[:]
    for k, v in decoded.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.save(model, str(dst))
    return dst
