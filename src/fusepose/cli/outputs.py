"""Output paths are checked before a verb does any work: each is created (folders) or its
folder created and tested writable (files); a path that cannot be written is a one-line
error naming the flag, not a traceback after the work is done.

No output may destroy an input (``git`` never destroys work without a flag that says so):
every output path is compared with every input path of the same command, and an output that
is an input file, is or lies inside an input folder, or is a drawings folder holding the
source image it would redraw under the same name, is refused with one line, before anything
is written.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

from fusepose.errors import ConfigError

__all__ = [
    "INPUTS",
    "OUTPUT_DIRS",
    "OUTPUT_FILES",
    "check_not_inputs",
    "check_output_dir",
    "check_output_file",
    "check_outputs",
]

# Argument names (argparse dests) that name something a verb writes.
OUTPUT_FILES = ("save_json", "json", "report", "save_results", "markdown", "output")
OUTPUT_DIRS = ("save_vis", "out", "out_dir")
# ... and the ones that name something it reads (files or folders; values that are not an
# existing path, such as a registered model name or a webcam index, are ignored).
INPUTS = ("model", "weights", "onnx", "source", "ann", "gt", "results", "data", "images",
          "det_file", "detector", "detector_weights", "calibration", "config", "resume",
          "image", "file", "compare", "compare_onnx", "train_ann", "val_ann", "train_images",
          "val_images", "int8_checkpoint")  # fmt: skip


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


def _flag(dest: str) -> str:
    return "OUT_DIR" if dest == "out_dir" else "--" + dest.replace("_", "-")


def _paths(args: argparse.Namespace, dests: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    """``(flag, path)`` of every non-empty path value of ``dests`` (lists give one each)."""
    for dest in dests:
        value = getattr(args, dest, None)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str | Path) and str(item):
                yield _flag(dest), Path(item)


def _same(a: Path, b: Path) -> bool:
    """One file or folder (a link, a relative path, a hard link, another spelling)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def check_not_inputs(args: argparse.Namespace) -> None:
    """Refuse (ConfigError, one line) an output path that would overwrite or write into
    an input of the same command: the same file or folder, a path inside an input folder,
    or a ``--save-vis`` folder holding the ``--source`` image (drawings keep its name)."""
    inputs = [(flag, p) for flag, p in _paths(args, INPUTS)
              if p.exists() and not (flag == "--source" and str(p).isdigit())]  # fmt: skip
    outputs = list(_paths(args, OUTPUT_FILES)) + list(_paths(args, OUTPUT_DIRS))
    for out_flag, out in outputs:
        for in_flag, inp in inputs:
            if _same(out, inp):
                raise ConfigError(f"{out_flag} {out}: is the {in_flag} input; writing it would "
                                  "destroy it (choose another path)")  # fmt: skip
            if inp.is_dir() and _inside(out, inp):
                raise ConfigError(f"{out_flag} {out}: lies inside the {in_flag} folder {inp}; "
                                  "write outputs outside the inputs")  # fmt: skip
            if (out_flag == "--save-vis" and in_flag == "--source" and inp.is_file()
                    and _same(inp.parent, out)):  # fmt: skip
                raise ConfigError(f"--save-vis {out}: holds the --source image {inp.name}, "
                                  "which its drawing would overwrite")  # fmt: skip


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that are inputs (:func:`check_not_inputs`), then create / check every
    output path of a verb's arguments (:data:`OUTPUT_FILES`, :data:`OUTPUT_DIRS`); a one-line
    ConfigError names the flag and the problem."""
    check_not_inputs(args)
    for flag, path in _paths(args, OUTPUT_FILES):
        check_output_file(str(path), flag)
    for flag, path in _paths(args, OUTPUT_DIRS):
        check_output_dir(str(path), flag)
