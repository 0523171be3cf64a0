"""Output paths are checked before a verb does any work: each is created (folders) or its
folder created and tested writable (files); a path that cannot be written is a one-line
error naming the flag, not a traceback after the work is done."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fusepose.errors import ConfigError

__all__ = ["OUTPUT_DIRS", "OUTPUT_FILES", "check_output_dir", "check_output_file", "check_outputs"]

# Argument names (argparse dests) that name something a verb writes.
OUTPUT_FILES = ("save_json", "json", "report", "save_results", "markdown", "output")
OUTPUT_DIRS = ("save_vis", "out", "out_dir")


def check_output_file(path: str | None, flag: str) -> Path | None:
    """Create the parent folder of an output file now and check it can be written, so a bad
    path fails before any work is done."""
    if not path:
        return None
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{flag} {out}: is a folder, not a file")
    _writable_folder(out.parent, f"{flag} {out}")
    return out


def check_output_dir(path: str | None, flag: str) -> Path | None:
    """Create an output folder now (or fail with one line) and check it is writable."""
    if not path:
        return None
    out = Path(path)
    _writable_folder(out, f"{flag} {out}")
    return out


def _writable_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fusepose-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{what}: cannot write to folder {folder} ({e.strerror or e})") from None


def check_outputs(args: argparse.Namespace) -> None:
    """Create / check every output path of a verb's arguments (:data:`OUTPUT_FILES`,
    :data:`OUTPUT_DIRS`); a one-line ConfigError names the flag and the problem."""
    for dest in OUTPUT_FILES:
        value = getattr(args, dest, None)
        if isinstance(value, str | Path) and str(value):
            check_output_file(str(value), "--" + dest.replace("_", "-"))
    for dest in OUTPUT_DIRS:
        value = getattr(args, dest, None)
        if isinstance(value, str | Path) and str(value):
            check_output_dir(str(value), "--" + dest.replace("_", "-") if dest != "out_dir" else "OUT_DIR")
