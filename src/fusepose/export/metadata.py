"""Self-describing ONNX files: what the outputs mean and how to decode them.

The metadata is stored in the ONNX ``metadata_props`` (string key -> string value). Plain
values are stored as text, structured ones as JSON. Keys (all prefixed ``fusepose.``):

- ``format_version``: "1".
- ``model_name``, ``kind`` ("bottom_up" | "top_down"), ``num_keypoints``, ``skeleton``
  (name), ``keypoint_names`` (JSON list), ``flip_index`` (JSON list).
- ``input``: JSON ``{"name", "shape" [B, 3, H, W] (strings for dynamic axes), "layout": "NCHW",
  "color": "RGB", "scale": 1/255, "mean": [...], "std": [...]}``: the network input is
  ``(rgb / 255 - mean) / std``; images read with OpenCV must be converted BGR -> RGB first.
- ``outputs``: JSON list of ``{"name", "shape", "meaning"}``.
- ``codec``: JSON ``{"type": class name in fusepose.codecs, "kwargs": {...}}``; build the decoder
  with ``getattr(fusepose.codecs, type)(**kwargs)``.
- ``preprocess``: JSON describing the resize (bottom-up: short side -> input size, long side to a
  multiple of 64 about the centre; top-down: person box -> crop with the box's aspect padded to
  the input aspect).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fusepose.errors import CheckpointError

PREFIX = "fusepose."
FORMAT_VERSION = "1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_JSON_KEYS = ("keypoint_names", "flip_index", "input", "outputs", "codec", "preprocess",
              "input_size")  # fmt: skip


def output_spec(kind: str, num_keypoints: int, input_hw: tuple[Any, Any]) -> list[dict[str, Any]]:
    """Names, shapes and meaning of the exported outputs for a model kind."""
    h, w = input_hw
    k = num_keypoints

    def div(v: Any, s: int) -> Any:
        return v // s if isinstance(v, int) else f"{v}/{s}"

    if kind == "bottom_up":
        return [
            {
                "name": "out_q",
                "shape": ["B", 2 * k, div(h, 4), div(w, 4)],
                "meaning": f"stride-4 maps: channels 0..{k - 1} keypoint heatmaps, channels "
                f"{k}..{2 * k - 1} associative-embedding tag maps (same keypoint order)",
            },
            {
                "name": "out_h",
                "shape": ["B", k, div(h, 2), div(w, 2)],
                "meaning": "stride-2 keypoint heatmaps (higher-resolution head)",
            },
        ]
    return [
        {
            "name": "heatmaps",
            "shape": ["B", k, div(h, 4), div(w, 4)],
            "meaning": "stride-4 keypoint heatmaps of the person crop (final stage only); "
            "argmax + sub-pixel shift gives crop-input pixels",
        }
    ]


def build_metadata(
    *,
    model_name: str,
    kind: str,
    num_keypoints: int,
    input_name: str,
    input_shape: list[Any],
    outputs: list[dict[str, Any]],
    codec: dict[str, Any],
    skeleton_name: str | None = None,
    keypoint_names: list[str] | None = None,
    flip_index: list[int] | None = None,
    input_size: Any = None,
) -> dict[str, str]:
    """Assemble the ``metadata_props`` dictionary (all values strings)."""
    if kind == "bottom_up":
        pre = {
            "type": "bottom_up_warp",
            "rule": "short side -> input_size, long side scaled alike and rounded up to a "
            "multiple of 64, affine about the image centre; fixed-shape exports letterbox "
            "the image into the exported H x W instead",
        }
    else:
        pre = {
            "type": "top_down_warp",
            "rule": "person box [x, y, w, h] expanded to the input aspect ratio, padded 1.25x, "
            "affine-warped to H x W",
        }
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "kind": kind,
        "num_keypoints": str(int(num_keypoints)),
        "skeleton": skeleton_name or "",
        "keypoint_names": keypoint_names or [],
        "flip_index": flip_index or list(range(num_keypoints)),
        "input_size": input_size,
        "input": {
            "name": input_name,
            "shape": input_shape,
            "layout": "NCHW",
            "color": "RGB",
            "scale": 1.0 / 255.0,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "formula": "x = (rgb / 255 - mean) / std",
        },
        "outputs": outputs,
        "codec": codec,
        "preprocess": pre,
    }
    return {PREFIX + k: (json.dumps(v) if k in _JSON_KEYS else str(v)) for k, v in meta.items()}


def parse_metadata(props: dict[str, str], source: str = "<onnx>") -> dict[str, Any]:
    """Inverse of :func:`build_metadata`: strip the prefix and decode JSON values."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not key.startswith(PREFIX):
            continue
        k = key[len(PREFIX) :]
        if k in _JSON_KEYS:
            try:
                out[k] = json.loads(value)
            except json.JSONDecodeError as e:
                raise CheckpointError(
                    f"{source}: metadata {key!r} is not valid JSON ({e})"
                ) from None
        else:
            out[k] = value
    if not out:
        raise CheckpointError(
            f"{source}: no fusepose metadata in the ONNX file (export it with `fusepose export`)"
        )
    if "num_keypoints" in out:
        out["num_keypoints"] = int(out["num_keypoints"])
    return out


def write_metadata(path: str | Path, props: dict[str, str]) -> None:
    """Add ``props`` to the ``metadata_props`` of an ONNX file in place (replacing equal keys)."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded fusepose metadata of an ONNX file (CheckpointError if absent)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf errors vary
        raise CheckpointError(f"{path}: not a readable ONNX file ({e})") from None
    return parse_metadata({p.key: p.value for p in model.metadata_props}, str(path))
