"""``fusepose visualize MODEL --image IMG --out DIR [--what heatmaps|tags|attention|all]``.

Writes PNGs: ``poses.png`` (decoded people on the image), ``heatmaps.png`` (per-keypoint
heatmaps over the network input), ``tags.png`` (bottom-up tag maps), ``attention.png`` (one row
per CBAM / HSA module, at most 12 spread over the network; every module's row is also in
``attention/NNN_<module>.png``; HSA shows first- and second-order maps side by side).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from fusepose.cli.common import add_model_arguments, build_predictor
from fusepose.data.io import read_image
from fusepose.errors import ConfigError
from fusepose.geometry import warp_image
from fusepose.models.deploy import InferenceWrapper
from fusepose.visualization.attention import attention_panels, record_attention
from fusepose.visualization.heatmaps import heatmap_grid, tag_grid
from fusepose.visualization.skeleton import draw_poses
from fusepose.visualization.writer import write_image

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--image", required=True, help="input image")
    parser.add_argument("--out", required=True, help="output folder for the PNGs")
    parser.add_argument("--what", choices=("heatmaps", "tags", "attention", "all"), default="all")
    parser.add_argument(
        "--box",
        type=float,
        nargs=4,
        metavar=("X", "Y", "W", "H"),
        help="person box for top-down models (default: the whole image)",
    )
    parser.add_argument(
        "--input-size", type=int, nargs="+", default=None,
        help="override the stored input size: one int (short side) or H W",
    )  # fmt: skip
    parser.add_argument("--kpt-thr", type=float, default=None,
                        help="joints scored below are not drawn (default: stored, 0.3)")


def _write(path: Path, img: np.ndarray) -> None:
    write_image(path, img)
    logger.info("wrote %s", path)
    print(path)


def run(args: argparse.Namespace) -> int:
    import torch

    image = read_image(args.image, apply_exif=True)
    out_dir = Path(args.out)
    if args.box is not None and not (args.box[2] > 0 and args.box[3] > 0):
        raise ConfigError(f"--box {' '.join(map(str, args.box))}: width and height must be > 0")
    pred = build_predictor(args, backend="torch", flip=False, scales=None)
    if pred.model is None:
        raise ConfigError("visualize reads the network's inner maps: give a checkpoint, not .onnx")
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = image.shape[:2]
    box = np.array(args.box if args.box else [0, 0, w - 1, h - 1], dtype=np.float64)
    if not pred.family.needs_boxes:  # the whole image
        res = pred(image)
        m, size = pred.warp_matrix((h, w))
    else:
        res = pred(image, boxes=box[None])
        m, size = pred.crop_matrix(box), pred.input_size[::-1]
    kpt_thr = pred.description.test.kpt_thr
    _write(out_dir / "poses.png", draw_poses(image, res, pred.skeleton, kpt_thr=kpt_thr))
    warped = cv2.warpAffine(image, m, tuple(int(v) for v in size), flags=cv2.INTER_LINEAR)
    x = torch.from_numpy(warp_image(image, m, size))[None].to(pred.device)
    want = {"heatmaps", "tags", "attention"} if args.what == "all" else {args.what}
    names = list(pred.skeleton.keypoints)
    if want & {"heatmaps", "tags"}:
        with torch.inference_mode():
            out = InferenceWrapper(pred.model)(x)
        k = pred.num_keypoints
        first = out[0][0].float().cpu().numpy()
        heat, tags = (first[:k], first[k:]) if pred.family.tags else (first, None)
        if "heatmaps" in want:
            _write(out_dir / "heatmaps.png", heatmap_grid(warped, heat, names))
        if "tags" in want:
            if tags is None:
                logger.warning("%s is top-down: it has no tag maps", pred.model_name)
            else:
                _write(out_dir / "tags.png", tag_grid(warped, heat, tags, names))
    if "attention" in want:
        maps = record_attention(pred.model, x)
        if not maps:
            logger.warning("%s has no CBAM / HSA modules", pred.model_name)
        else:
            f = min(1.0, 256.0 / max(warped.shape[:2]))
            small = cv2.resize(warped, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            rows = [attention_panels(small, mm, name) for name, mm in maps.items()]
            sub = out_dir / "attention"
            sub.mkdir(exist_ok=True)
            for i, ((name, _), row) in enumerate(zip(maps.items(), rows, strict=True)):
                write_image(sub / f"{i:03d}_{name.replace('.', '_')}.png", row)
            logger.info("wrote %d attention maps to %s", len(rows), sub)
            # overview: at most 12 modules, evenly spread from first to last
            pick = sorted(
                set(np.linspace(0, len(rows) - 1, min(len(rows), 12)).round().astype(int))
            )
            rows = [rows[i] for i in pick]
            width = max(r.shape[1] for r in rows)
            rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
            _write(out_dir / "attention.png", np.concatenate(rows, axis=0))
    return 0
