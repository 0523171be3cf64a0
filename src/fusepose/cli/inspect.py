"""``fusepose inspect FILE [--json]``: what a checkpoint, an exported ONNX file or an OpenVINO
IR is.

Prints the model, its keypoints, the input geometry it runs with, its test-time settings and
its best validation result. ``--json`` prints one object with the keys ``model``,
``num_keypoints``, ``skeleton``, ``input_size`` ([H, W]), ``resize``, ``val_AP`` (best
validation AP, or null), and more (``kind``, ``val``, ``flip``, ``scales``, ``nms_thr``,
``score_thr``, ``kpt_thr``, ``codec``, ``overrides``, ``keypoints``, ``file``, ``format``:
``checkpoint``, ``onnx`` or ``openvino``; an INT8 IR made with accuracy control adds ``int8``:
what NNCF did, what stayed in float, and the guard's verdict).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fusepose.export.metadata import read_metadata
from fusepose.files import dumps_json
from fusepose.modelfile import describe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="checkpoint (.pth), exported .onnx file or OpenVINO IR .xml")
    parser.add_argument("--model", help="registered name, for bare state dicts")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    desc = describe(path, args.model)
    fmt = {".onnx": "onnx", ".xml": "openvino"}.get(path.suffix.lower(), "checkpoint")
    info = {**desc.summary(), "file": str(path), "format": fmt}
    int8 = read_metadata(path).get("int8") if fmt == "openvino" else None
    if int8:
        info["int8"] = int8
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
    if int8:
        lines.append("  int8        " + int8_line(int8))
    print("\n".join(lines))
    return 0


def int8_line(int8: dict) -> str:
    """One line about an INT8 IR's ``fusepose.int8`` report: what stayed in float, the guard."""
    total, floats = int8.get("compute_ops", 0), int8.get("float_ops") or []
    text = (f"{int8.get('tool', 'nncf')} {int8.get('mode', '')}: {total - len(floats)} of {total} "
            f"conv ops in INT8, {len(floats)} kept in float")  # fmt: skip
    guard = int8.get("guard") or {}
    if guard:
        text += (f"; guard {'passed' if guard.get('passed') else 'FAILED'} "
                 f"({guard.get('why', '')})")  # fmt: skip
    return text
