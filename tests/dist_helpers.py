"""Launching fusepose under ``torchrun`` from the distributed tests: 2 Gloo processes on CPU,
each with one intra-op thread, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SCRIPTS = TESTS / "dist_scripts.py"
# startup of 2 ranks (imports, rendezvous) on a loaded 2-core machine, plus the work
TIMEOUT = 300


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(*args: object, nproc: int = 2, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc-per-node", str(nproc), *map(str, args)]  # fmt: skip
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _python(*args: object, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], env=_env(), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def _cli(*args: object, nproc: int = 1, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    """``fusepose ...`` in one process (nproc 1) or under torchrun."""
    if nproc == 1:
        return _python("-m", "fusepose.cli.main", *args, timeout=timeout)
    return _torchrun("-m", "fusepose.cli.main", *args, nproc=nproc, timeout=timeout)


def _error_lines(stderr: str, verb: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"fusepose {verb}: ")]


def _user_error_exit(stderr: str) -> None:
    """torchrun's report: the first rank to stop exited 2 (a user error), none with 1 (an
    internal error); torchrun itself stops the others (SIGTERM) once one has exited."""
    codes = [line.split(":", 1)[1].split()[0] for line in stderr.splitlines()
             if line.strip().startswith("exitcode  :")]  # fmt: skip
    assert "2" in codes and set(codes) <= {"2", "-15"}, codes
    root = stderr.split("Root Cause", 1)[1]
    assert "exitcode  : 2" in root
    assert "/fusepose/" not in stderr  # no traceback of ours (torchrun prints its own)
