"""SIGTERM handled like Ctrl-C, the one way (the command line and the prediction loops).

``kill``, a container stop, a job scheduler and torchrun (when a rank fails) send SIGTERM; a
run that died on it would lose every finished result. Within :func:`sigterm_as_interrupt`,
SIGTERM raises :class:`Terminated`, a :class:`KeyboardInterrupt`, so every ``finally`` and
interrupt path that keeps results runs as it does for Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Terminated", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM received: the current item is finished or dropped and what is done is written."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread; only the main
    thread can install signal handlers (elsewhere the block runs as it was). Nested blocks
    restore the outer handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
