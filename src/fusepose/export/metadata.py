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
- ``description``: JSON of the :class:`~fusepose.description.ModelDescription` (geometry,
  skeleton, codec, test settings, validation result): the same object a checkpoint carries.
  Files exported before it existed are described from the keys above
  (:func:`description_from_metadata`).
- ``int8`` (INT8 files made with accuracy control, :mod:`fusepose.export.nncf_int8`): JSON of
  how it was quantized and what stayed in float.

An OpenVINO IR (``FILE.xml``) carries the same keys in its runtime info
(:mod:`fusepose.export.ir`); :func:`read_metadata` and :func:`read_description` read both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusepose.description import MAX_KEYPOINTS, ModelDescription, TestSettings
from fusepose.errors import CheckpointError, ConfigError, FusePoseError
from fusepose.export.ir import IR_SUFFIX, read_ir
from fusepose.family import Family, get_family
from fusepose.files import dumps_json
from fusepose.geometry import IMAGENET_MEAN, IMAGENET_STD, InputGeometry
from fusepose.limits import check_number
from fusepose.modelcheck import check_description, check_outputs
from fusepose.skeletons import SKELETONS, Skeleton

PREFIX = "fusepose."
FORMAT_VERSION = "2"

_JSON_KEYS = ("keypoint_names", "flip_index", "input", "outputs", "codec", "preprocess",
              "input_size", "description", "int8")  # fmt: skip


def output_spec(
    kind: str | Family, num_keypoints: int, input_hw: tuple[Any, Any]
) -> list[dict[str, Any]]:
    """Names, shapes and meaning of the exported outputs of a model family
    (:attr:`fusepose.family.Family.outputs`)."""
    return [
        {"name": o.name, "shape": o.shape(num_keypoints, input_hw),
         "meaning": o.describe(num_keypoints)}
        for o in get_family(kind).outputs
    ]  # fmt: skip


def build_metadata(
    desc: ModelDescription, *, input_name: str, input_shape: list[Any], codec: dict[str, Any]
) -> dict[str, str]:
    """The ``metadata_props`` dictionary (all values strings) of an export of ``desc``.

    codec: the full ``{"type", "kwargs"}`` of the built codec (for readers without fusepose).
    """
    kind, k = desc.kind, int(desc.num_keypoints)
    h, w = input_shape[2], input_shape[3]
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_name": desc.model,
        "kind": kind,
        "num_keypoints": str(k),
        "skeleton": desc.skeleton.name,
        "keypoint_names": list(desc.skeleton.keypoints),
        "flip_index": desc.flip_index,
        "input_size": list(desc.geometry.size),
        "input": {
            "name": input_name,
            "shape": input_shape,
            "layout": "NCHW",
            "color": "RGB",
            "scale": 1.0 / 255.0,
            "mean": IMAGENET_MEAN.tolist(),
            "std": IMAGENET_STD.tolist(),
            "formula": "x = (rgb / 255 - mean) / std",
        },
        "outputs": output_spec(kind, k, (h, w)),
        "codec": codec,
        "preprocess": dict(desc.family.preprocess),
        "description": desc.to_dict(),
    }
    return {PREFIX + k: (dumps_json(v) if k in _JSON_KEYS else str(v)) for k, v in meta.items()}


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
            except (json.JSONDecodeError, RecursionError) as e:
                raise CheckpointError(
                    f"{source}: metadata {key!r} is not valid JSON ({type(e).__name__})"
                ) from None
        else:
            out[k] = value
    if not out:
        raise CheckpointError(
            f"{source}: no fusepose metadata in the exported file (export it with `fusepose "
            "export`)"
        )
    try:  # metadata from elsewhere is data: typed and range-checked
        version = check_number(_number(out.get("format_version", "1")), "format_version", 1,
                               integer=True)  # fmt: skip
        if version > int(FORMAT_VERSION):
            raise CheckpointError(f"{source}: metadata format {version} is newer than this "
                                  f"fusepose reads ({FORMAT_VERSION}); upgrade fusepose")  # fmt: skip
        if "num_keypoints" in out:
            out["num_keypoints"] = check_number(_number(out["num_keypoints"]), "num_keypoints",
                                                1, MAX_KEYPOINTS, integer=True)  # fmt: skip
    except ConfigError as e:
        raise CheckpointError(f"{source}: metadata {e}") from None
    return out


def _number(text: Any) -> Any:
    """A metadata string as a number when it is one (else unchanged, for the checker's
    message)."""
    try:
        return float(text) if "." in str(text) or "e" in str(text).lower() else int(text)
    except (TypeError, ValueError):
        return text


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


Outputs = list[tuple[str, list[Any]]]


def read_onnx(path: Path) -> tuple[dict[str, str], Outputs]:
    """An ONNX file's ``metadata_props`` and graph outputs ``(name, shape)`` (a dimension an
    int, or its symbolic name); CheckpointError when the file is not a readable ONNX file."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf errors vary
        raise CheckpointError(f"{path}: not a readable ONNX file ({e})") from None
    outputs = [(o.name, [d.dim_value if d.HasField("dim_value") else d.dim_param
                         for d in o.type.tensor_type.shape.dim])
               for o in model.graph.output]  # fmt: skip
    return {p.key: p.value for p in model.metadata_props}, outputs


# Exported-file readers by suffix: ``reader(path) -> (metadata props, outputs)``; another
# format (e.g. OpenVINO IR) is one more function here, and gets every check below.
READERS: dict[str, Callable[[Path], tuple[dict[str, str], Outputs]]] = {
    ".onnx": read_onnx, IR_SUFFIX: read_ir,
}


def _read(path: str | Path) -> tuple[dict[str, str], Outputs]:
    path = Path(path)
    reader = READERS.get(path.suffix.lower(), read_onnx)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: {path.suffix.lstrip('.').upper() or 'model'} file not found"
        )
    return reader(path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded fusepose metadata of an exported file (CheckpointError if absent)."""
    return parse_metadata(_read(path)[0], str(path))


def description_from_metadata(meta: dict[str, Any], source: str = "<onnx>") -> ModelDescription:
    """The model description of parsed metadata; files exported before descriptions existed
    are described from their keys (a fixed-shape bottom-up export letterboxes into its size,
    a dynamic one uses the HigherHRNet short-side resize)."""
    if "description" in meta:
        return ModelDescription.from_dict(meta["description"], source)
    try:
        return _legacy_description(meta, source)
    except FusePoseError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{source}: incomplete or malformed fusepose metadata "
                              f"({type(e).__name__}: {e})") from None  # fmt: skip


def _legacy_description(meta: dict[str, Any], source: str) -> ModelDescription:
    """The description of a file exported before descriptions existed, from its keys."""
    kind, k = str(meta["kind"]), int(meta["num_keypoints"])
    codec = dict(meta.get("codec") or {})
    fam = get_family(kind)  # ConfigError for an unknown kind
    skel = SKELETONS.get(str(meta.get("skeleton") or ""))
    if skel is None or skel.num_keypoints != k:
        names = meta.get("keypoint_names") or [f"kpt{i}" for i in range(k)]
        flip = meta.get("flip_index") or list(range(k))
        pairs = sorted({tuple(sorted((i, int(j)))) for i, j in enumerate(flip) if i != int(j)})
        skel = Skeleton(str(meta.get("skeleton") or "custom"), tuple(map(str, names)),
                        tuple(pairs), (), (0.05,) * k).validate(source)  # fmt: skip
    size = meta.get("input_size") or []
    shape = (meta.get("input") or {}).get("shape") or []
    fixed = len(shape) == 4 and all(isinstance(v, int) for v in shape[2:])
    if len(fam.geometry_modes) == 1:  # one warp (top-down crops) at the stored size
        geometry = fam.fixed_geometry(tuple(size or shape[2:]))
    elif fixed:
        geometry = fam.fixed_geometry((shape[2], shape[3]))
    else:
        geometry = InputGeometry.of_mode(fam.default_mode, int(min(size or (512,))))
    kwargs = {key: v for key, v in (codec.get("kwargs") or {}).items()
              if key not in ("num_keypoints", "flip_index", "input_size", "heatmap_size")}  # fmt: skip
    return ModelDescription(
        model=str(meta.get("model_name") or ""), kind=kind, num_keypoints=k, skeleton=skel,
        geometry=geometry, codec={"type": codec.get("type", ""), "kwargs": kwargs},
        test=TestSettings(nms_thr=fam.nms_thr),
    )  # fmt: skip


def read_description(path: str | Path) -> ModelDescription:
    """The :class:`~fusepose.description.ModelDescription` of an exported file, checked as
    data (:mod:`fusepose.modelcheck`): its model and codec, and the network's outputs against
    the family the metadata names."""
    props, outputs = _read(path)
    source = str(path)
    meta = parse_metadata(props, source)
    try:
        desc = description_from_metadata(meta, source)
    except FusePoseError as e:
        raise CheckpointError(f"{source}: {e}" if source not in str(e) else str(e)) from None
    check_description(desc, source, exported=True)
    check_outputs(desc, outputs, source)
    return desc
