"""``fusepose VERB ...`` in this process (imported as a plain module: tests/ is on sys.path).

A verb run through :func:`fusepose.cli.main.main` parses, checks and runs exactly as the
console script does, without paying a new interpreter and the torch import (~2 s) per call;
the tests that need a real process (exit codes seen by a shell, signals, the console script,
the wheel) keep ``subprocess``."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

from fusepose.cli.main import main


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: Any) -> CliRun:
    """Run ``fusepose *args``: its exit code and what it printed (argparse's exit included;
    log records go to the logging handlers, use ``caplog`` for them)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse: --help, or a usage error (exit 2)
            rc = int(e.code or 0)
    return CliRun(rc, out.getvalue(), err.getvalue())


def fusepose(*args: Any) -> str:
    """Run a verb that must succeed; its stdout (a failure shows stderr)."""
    run = run_cli(*args)
    assert run.returncode == 0, (args, run.stderr[-2000:])
    return run.stdout
