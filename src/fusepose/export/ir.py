"""OpenVINO IR files (``FILE.xml`` + ``FILE.bin``) that describe themselves like the ONNX file.

The fusepose metadata (:mod:`fusepose.export.metadata`: the same keys and values as the ONNX
``metadata_props``) lives in the IR's runtime info, section ``fusepose``
(``<rt_info><fusepose><KEY value="..."/></fusepose></rt_info>`` in the XML, without the
``fusepose.`` prefix). It is read back from the XML alone (no OpenVINO needed, as ``fusepose
inspect`` reads an ONNX file without ONNX Runtime). Both files are written under temporary
names and renamed when complete (the ``.bin`` first), so a crash never leaves an IR whose
XML points at half a weights file.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from fusepose.errors import CheckpointError, ConfigError, FusePoseError

logger = logging.getLogger(__name__)

__all__ = ["EXPORT_SUFFIXES", "IR_SECTION", "IR_SUFFIX", "is_exported", "is_ir", "ir_op_types",
           "read_ir",
           "onnx_to_ir", "openvino_module", "read_ir_props", "write_ir"]  # fmt: skip

IR_SUFFIX = ".xml"
# the files every verb runs like an ONNX file (Predictor, eval --onnx, predict, bench, serve)
EXPORT_SUFFIXES = (".onnx", IR_SUFFIX)
IR_SECTION = "fusepose"
_PREFIX = "fusepose."  # the metadata keys' prefix (fusepose.export.metadata.PREFIX)
INSTALL = "pip install 'fusepose[openvino]'"


def is_ir(path: str | Path) -> bool:
    """Whether ``path`` names an OpenVINO IR (by its ``.xml`` suffix)."""
    return Path(path).suffix.lower() == IR_SUFFIX


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` names an exported network (``.onnx`` or an OpenVINO ``.xml``)."""
    return Path(path).suffix.lower() in EXPORT_SUFFIXES


def openvino_module(what: str = "the openvino format") -> Any:
    """``import openvino``, or a one-line ConfigError naming the extra to install."""
    try:
        import openvino as ov
    except ImportError:
        raise ConfigError(f"{what} needs the openvino package ({INSTALL})") from None
    return ov


def write_ir(model: Any, xml_path: str | Path, props: dict[str, str] | None = None) -> Path:
    """Save the ``openvino.Model`` as ``xml_path`` + its ``.bin`` (fp32 weights kept as they
    are), with ``props`` (``fusepose.``-prefixed metadata, as ONNX ``metadata_props``) in the
    runtime info; atomic (temporary names, then ``.bin`` and ``.xml`` renamed). Returns the
    XML path."""
    ov = openvino_module()
    xml_path = Path(xml_path)
    if not is_ir(xml_path):
        raise ConfigError(f"{xml_path}: an OpenVINO IR is written as FILE.xml (+ FILE.bin)")
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    for key, value in (props or {}).items():
        model.set_rt_info(str(value), [IR_SECTION, key.removeprefix(_PREFIX)])
    fd, tmp = tempfile.mkstemp(prefix=f".{xml_path.stem}.", suffix=IR_SUFFIX, dir=xml_path.parent)
    os.close(fd)
    tmp_xml = Path(tmp)
    tmp_bin = tmp_xml.with_suffix(".bin")
    try:
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        mode = 0o666 & ~_umask()  # mkstemp made the XML private; give it a new file's mode
        for f in (tmp_xml, tmp_bin):
            f.chmod(mode)
        os.replace(tmp_bin, xml_path.with_suffix(".bin"))
        os.replace(tmp_xml, xml_path)
    finally:
        tmp_xml.unlink(missing_ok=True)
        tmp_bin.unlink(missing_ok=True)
    return xml_path


def onnx_to_ir(onnx_path: str | Path, xml_path: str | Path,
               props: dict[str, str] | None = None) -> Path:  # fmt: skip
    """Convert an exported ONNX file to an IR with OpenVINO's own converter; the metadata is
    the ONNX file's fusepose ``metadata_props`` updated with ``props``. Returns the XML path."""
    import onnx

    ov = openvino_module()
    onnx_path = Path(onnx_path)
    proto = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props if p.key.startswith(_PREFIX)}
    meta.update(props or {})
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:  # noqa: BLE001 - the converter raises its own error types
        raise CheckpointError(f"{onnx_path}: OpenVINO cannot convert it ({e})") from None
    return write_ir(model, xml_path, meta)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@functools.lru_cache(maxsize=16)
def _scan(
    path: str, mtime_ns: int, size: int
) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    """(layer types, fusepose runtime-info items) of an IR's XML (cached per file version)."""
    types: set[str] = set()
    props: list[tuple[str, str]] = []
    stack: list[str] = []
    try:
        for event, el in ET.iterparse(path, events=("start", "end")):
            if event == "start":
                stack.append(el.tag)
                continue
            stack.pop()
            if el.tag == "layer":
                types.add(el.get("type", ""))
                el.clear()
            elif (
                stack[-2:] == ["rt_info", IR_SECTION]
                and stack[:1] == ["net"]
                and "value" in el.attrib
            ):
                props.append((_PREFIX + el.tag, el.attrib["value"]))
    except ET.ParseError as e:
        raise CheckpointError(f"{path}: not a readable OpenVINO IR ({e})") from None
    return frozenset(types), tuple(props)


def _scanned(path: str | Path) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: OpenVINO IR not found")
    if not path.with_suffix(".bin").is_file():
        raise CheckpointError(f"{path}: its weights {path.with_suffix('.bin').name} are missing")
    st = path.stat()
    return _scan(str(path), st.st_mtime_ns, st.st_size)


def read_ir_props(path: str | Path) -> dict[str, str]:
    """The ``fusepose.``-prefixed metadata of an IR (empty when it has none)."""
    return dict(_scanned(path)[1])


def read_ir(path: str | Path) -> tuple[dict[str, str], list[tuple[str, list[Any]]]]:
    """An IR's fusepose metadata and its outputs ``(name, shape)`` (a dimension an int, or its
    text when dynamic): the exported-file reader of :data:`fusepose.export.metadata.READERS`.
    The outputs come from OpenVINO's reader (only when the file has fusepose metadata)."""
    props = read_ir_props(path)
    if not props:
        return props, []
    try:
        model = openvino_module().Core().read_model(str(path))
    except FusePoseError:
        raise
    except Exception as e:  # noqa: BLE001 - OpenVINO raises its own runtime errors
        raise CheckpointError(f"{path}: not a readable OpenVINO IR ({e})") from None
    outputs = [(o.get_any_name(), [d.get_length() if d.is_static else str(d)
                                   for d in o.get_partial_shape()])
               for o in model.outputs]  # fmt: skip
    return props, outputs


def ir_op_types(path: str | Path) -> frozenset[str]:
    """The operator types of an IR's layers (e.g. ``FakeQuantize`` in an INT8 IR)."""
    return _scanned(path)[0]
