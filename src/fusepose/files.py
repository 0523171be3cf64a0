"""Reading JSON with one-line errors, and writing output files atomically: a crash or a full
disk leaves the previous file (or none), never half of one."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from fusepose.errors import DataError

__all__ = ["json_safe", "read_json", "write_json_atomic", "write_text_atomic"]


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then
    ``os.replace``; the parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_safe(obj: Any) -> Any:
    """A strict-JSON copy: numpy arrays / scalars -> lists / numbers, NaN and inf -> null."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """:func:`write_text_atomic` of ``json.dumps(json_safe(obj))``."""
    return write_text_atomic(path, json.dumps(json_safe(obj), indent=indent) + "\n")


def read_json(path: str | Path, what: str = "annotation file") -> Any:
    """Parse a JSON file; :class:`DataError` naming the file for I/O and syntax errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: {what} is not UTF-8 text (binary file?)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    if not text.strip():
        raise DataError(f"{path}: {what} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: malformed JSON in {what} at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
