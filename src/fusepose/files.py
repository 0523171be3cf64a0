"""Reading JSON with one-line errors, and writing output files atomically: a crash, a kill or a
full disk leaves the previous file (or none), never half of one.

- :func:`atomic_write` / :func:`atomic_path`: the one way a file is written: a temporary
  name in the same folder, renamed over the final name once complete (what rsync and package
  managers do). The file gets the mode a plain ``open()`` would give it (the user's umask), or
  keeps the mode of the file it replaces. The temporary name carries the writer's process id,
  so the temporaries of a writer that was killed (SIGKILL: no cleanup ran) are removed by the
  next complete write of the same file, and a live writer's never are.
- :func:`cached_file` / :func:`verified` / :func:`write_verified`: a cache entry made once,
  with a checksum beside it; an entry whose content does not match its checksum (a kill
  mid-write, an edit) is made again, never used.
- :func:`dumps_json` / :func:`write_json_atomic`: strict JSON (NaN and inf become ``null``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fusepose.errors import DataError

__all__ = [
    "atomic_path",
    "atomic_write",
    "cached_file",
    "dumps_json",
    "file_sha256",
    "json_safe",
    "read_json",
    "verified",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
    "write_verified",
]

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the OS says it (Linux), else by
    setting and restoring it under a lock."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """The mode the written file gets: the replaced file's, else ``0o666`` less the umask
    (``tempfile.mkstemp`` creates 0600, which would hide outputs from the user's group)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable (POSIX); not possible / needed on Windows.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str = ".tmp", sweep: bool = True
) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a file name (an exporter,
    ``savefig``); when the block ends without an exception the file is fsynced and renamed to
    ``path``, else removed. The parent folder is created. ``suffix``: the temporary name's
    ending (some writers pick the format from it). ``sweep``: remove the temporaries of ``path``
    that a killed writer left (one listing of the folder per write: off for writers of many
    files into one folder, e.g. drawn frames, where it would cost a listing per frame)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix,
                                dir=path.parent)  # fmt: skip
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{tmp}: the writer left no file")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sweep:
        _remove_orphans(path)
    _fsync_dir(path.parent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_orphans(path: Path) -> None:
    """Remove the temporaries of ``path`` (``.NAME.PID.*``) whose writer process is gone: what
    a SIGKILL mid-write leaves. A process id reused by another live process keeps its file
    (left for a later write, never a wrong removal)."""
    # one dot more per level: a writer that writes through atomic_path into another's
    # temporary (an export into a cache entry) leaves ``..NAME.PID.x.tmp.PID.y``
    pattern = re.compile(rf"\.+{re.escape(path.name)}\.(\d+)\.[^/]+")
    try:
        names = [p for p in path.parent.iterdir() if p.name.startswith(".")]
    except OSError:
        return
    for stale in names:
        m = pattern.fullmatch(stale.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            stale.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", sweep: bool = True) -> Iterator[IO[Any]]:
    """``open(path, mode)`` through :func:`atomic_path` (``sweep`` as there): ``mode`` ``"w"``
    (UTF-8 text) or ``"wb"``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode {mode!r} is not 'w' or 'wb'")
    with atomic_path(path, sweep=sweep) as tmp:
        encoding = "utf-8" if mode == "w" else None
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; the parent folder is created."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, sweep: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (``sweep`` as in :func:`atomic_path`); the parent
    folder is created."""
    with atomic_write(path, "wb", sweep=sweep) as f:
        f.write(data)
    return Path(path)


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


def dumps_json(obj: Any, indent: int | None = None, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (:func:`json_safe`: NaN / inf -> null), the one way the
    project writes JSON (``allow_nan=False``: Python's default ``NaN`` is not JSON)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False, **kwargs)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """:func:`write_text_atomic` of :func:`dumps_json` of ``obj``."""
    return write_text_atomic(path, dumps_json(obj, indent=indent) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checksum_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verified(path: str | os.PathLike) -> bool:
    """True when the cache entry ``path`` and its checksum file ``<path>.sha256`` agree (an
    entry without one, or whose bytes changed, is not to be used)."""
    path = Path(path)
    check = _checksum_file(path)
    try:
        return path.is_file() and check.read_text().split()[0] == file_sha256(path)
    except (OSError, IndexError):
        return False


def write_verified(path: str | os.PathLike, make: Callable[[Path], Any]) -> Path:
    """A cache entry: ``make(tmp)`` writes it to a temporary path beside ``path``, which is
    renamed into place, then its checksum file is written (the entry is trusted only from
    then on: a kill at any point leaves no entry, or one :func:`verified` rejects)."""
    path = Path(path)
    _checksum_file(path).unlink(missing_ok=True)
    with atomic_path(path, suffix=".tmp" + path.suffix) as tmp:
        make(tmp)
    write_text_atomic(_checksum_file(path), f"{file_sha256(path)}  {path.name}\n")
    return path


def cached_file(path: str | os.PathLike, make: Callable[[Path], Any]) -> tuple[Path, bool]:
    """``(path, hit)``: the cache entry at ``path`` when :func:`verified`, else made now by
    :func:`write_verified` with ``make``."""
    if verified(path):
        return Path(path), True
    return write_verified(path, make), False


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
    except RecursionError:  # hostile nesting ([[[[...): Python's parser recurses per level
        raise DataError(f"{path}: {what}: JSON nested too deeply (corrupt or hostile)") from None
