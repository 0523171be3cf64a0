"""``fusepose inspect FILE [--json]``: what a checkpoint or an exported ONNX file is.

Prints the model, its keypoints, the input geometry it runs with, its test-time settings and
its best validation result. ``--json`` prints one object with the keys ``model``,
``num_keypoints``, ``skeleton``, ``input_size`` ([H, W]), ``resize``, ``val_AP`` (best
validation AP, or null), and more (``kind``, ``val``, ``flip``, ``scales``, ``nms_thr``,
``score_thr``, ``kpt_thr``, ``codec``, ``overrides``, ``keypoints``, ``file``, ``format``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fusepose.files import dumps_json
from fusepose.modelfile import describe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="checkpoint (.pth) or exported .onnx file")
    parser.add_argument("--model", help="registered name, for bare state dicts")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    desc = describe(path, args.model)
    info = {**desc.summary(), "file": str(path),
            "format": "onnx" if path.suffix.lower() == ".onnx" else "checkpoint"}  # fmt: skip
    if args.json:
        print(dumps_json(info, indent=2))  # strict JSON: a NaN stored in the file is null
        return 0
    val = desc.val or {}
    lines = [
        f"{path}: {info['format']} of {desc.model} ({desc.kind.replace('_', '-')}, "
        f"{desc.num_keypoints} keypoints, skeleton {desc.skeleton.name})",
        f"  input       {desc.geometry.describe()}",
        f"  test        flip {'on' if desc.test.flip else 'off'}, scales "
        f"{list(desc.test.scales)}, OKS-NMS {desc.test.nms_thr or 'off'}, person score >= "
        f"{desc.test.score_thr}, joints drawn >= {desc.test.kpt_thr}",
        f"  codec       {desc.codec['type']} {desc.codec.get('kwargs') or {}}",
    ]
    if desc.overrides:
        lines.append(f"  overrides   {desc.overrides}")
    if val:
        where = f" on {val.get('ann')}" if val.get("ann") else ""
        epoch = f" (epoch {val['epoch']})" if val.get("epoch") else ""
        value = val.get("value")  # a number, or null in a file that stored NaN
        shown = f"{value:.4f}" if isinstance(value, int | float) else "none"
        lines.append(f"  validation  {val.get('metric', 'AP')} {shown}{where}{epoch}")
    else:
        lines.append("  validation  none recorded")
    print("\n".join(lines))
    return 0
