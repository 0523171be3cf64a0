"""Progress that fits where it goes: a live bar on a terminal, plain lines in a log.

On a terminal (the stream's ``isatty()``) :class:`Progress` draws a ``tqdm`` bar. On a pipe or a
file a bar's carriage-return redraws pile up into one endless line, so there it writes one plain
line each time another ``every_percent`` % is done (not more often than every ``min_seconds``
seconds), at least every ``every_seconds`` seconds while running, and a last one at the end;
every line is shorter than :data:`MAX_LINE` characters::

    epoch 3/9: 40% 54/135 steps [0:21 < 0:32, 2.6 steps/s] loss=0.00212 lr=4.1e-03

``FUSEPOSE_PROGRESS=bar|plain|off`` overrides the choice. Every long verb (train, pretrain, demo,
ablate, perf, synth, eval, predict) reports through this one class.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO, TypeVar

__all__ = ["MAX_LINE", "Progress", "progress_mode", "short_lines", "track", "wrap_prose"]

MAX_LINE = 300  # characters: no line a progress display writes is this long
MODES = ("bar", "plain", "off")

T = TypeVar("T")


def progress_mode(stream: TextIO | None = None) -> str:
    """``bar`` on a terminal, ``plain`` elsewhere; ``FUSEPOSE_PROGRESS`` overrides."""
    env = os.environ.get("FUSEPOSE_PROGRESS", "").strip().lower()
    if env in MODES:
        return env
    stream = stream if stream is not None else sys.stderr
    try:
        return "bar" if stream.isatty() else "plain"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "plain"


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0.0))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if 1e-3 <= abs(v) < 1e4 or v == 0 else f"{v:.2e}"
    return str(v)


def _clip(line: str) -> str:
    return line if len(line) < MAX_LINE else line[: MAX_LINE - 5] + " ..."


class Progress:
    """Progress of a loop of ``total`` items (None: unknown), as a bar or as plain lines.

    ``update(n)`` after each item (or batch); ``set_postfix(key=value)`` adds figures (loss,
    lr) to the bar and to the plain lines; ``close()`` (or the ``with`` block's end) writes the
    final line. ``enabled=False`` shows nothing. ``clock`` is for tests (seconds, monotonic).
    """

    def __init__(
        self,
        total: int | None = None,
        desc: str = "",
        *,
        unit: str = "it",
        initial: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
        every_percent: float = 10.0,
        min_seconds: float = 5.0,
        every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mode = progress_mode(self.stream) if enabled else "off"
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start = int(initial)
        self.postfix: dict[str, Any] = {}
        self.every_percent, self.min_seconds = float(every_percent), float(min_seconds)
        self.every_seconds = float(every_seconds)
        self._clock = clock
        self._t0 = self._last_line = clock()
        self._last_percent = self._percent()
        self._last_n = self.n  # the count the last plain line showed
        self._closed = False
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream,
                             dynamic_ncols=True, leave=False)  # fmt: skip

    # ----------------------------------------------------------------------------- feeding

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "plain":
            self._maybe_line()

    def set_total(self, total: int | None) -> None:
        if total == self.total:
            return
        self.total = total
        if self._last_percent is None:  # the total arrives after the start: lines from here
            pct = self._percent()
            self._last_percent = None if pct is None else pct - pct % self.every_percent
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = {k: _value(v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "plain" and self.n != self._last_n:
            self._write()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ plain lines

    def _percent(self) -> float | None:
        return 100.0 * self.n / self.total if self.total else None

    def _maybe_line(self) -> None:
        now = self._clock()
        since = now - self._last_line
        pct = self._percent()
        due = since >= self.every_seconds
        if pct is not None and since >= self.min_seconds:
            due = due or pct >= self._last_percent + self.every_percent
        if due:
            self._write(now)

    def line(self, now: float | None = None) -> str:
        """The plain line for the current state (also what the log gets)."""
        now = self._clock() if now is None else now
        elapsed = now - self._t0
        done = self.n - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            left = (self.total - self.n) / rate if rate > 0 else 0.0
            pct = 100.0 * self.n / self.total
            head += f"{pct:3.0f}% {self.n}/{self.total} {self.unit} "
            timing = f"[{_clock(elapsed)} < {_clock(left)}, {rate:.3g} {self.unit}/s]"
        else:
            head += f"{self.n} {self.unit} "
            timing = f"[{_clock(elapsed)}, {rate:.3g} {self.unit}/s]"
        extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return _clip(head + timing + (f" {extra}" if extra else ""))

    def _write(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        self.stream.write(self.line(now) + "\n")
        self.stream.flush()
        self._last_line, self._last_n = now, self.n
        pct = self._percent()
        if pct is not None:  # the next line at the next multiple of every_percent
            self._last_percent = pct - pct % self.every_percent


def track(iterable: Iterable[T], total: int | None = None, desc: str = "", **kwargs: Any
          ) -> Iterator[T]:  # fmt: skip
    """Iterate ``iterable`` with a :class:`Progress` (``total`` defaults to its ``len``)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def short_lines(head: str, items: Iterable[str], width: int = 160) -> list[str]:
    """``head`` followed by ``items`` joined with ``", "``, wrapped into lines of at most
    ``width`` characters (continuation lines indented), for log messages that list many
    figures."""
    lines: list[str] = []
    line = head
    for item in items:
        sep = "" if line == head else ", "
        if line != head and len(line) + len(sep) + len(item) > width:
            lines.append(line + ",")
            line, sep = "    ", ""
        line += sep + item
    lines.append(line)
    return [_clip(s) for s in lines]


def wrap_prose(lines: Iterable[str], width: int = 100) -> str:
    """Markdown ``lines`` joined, each prose line wrapped at ``width`` characters (markdown
    joins a paragraph's lines; words and hyphenated words kept whole); table rows (``|``) and
    headings (``#``) stay one line each, so a printed report reads well in a terminal or log."""
    return "\n".join(
        x if x.startswith(("|", "#")) else textwrap.fill(x, width, break_long_words=False,
                                                         break_on_hyphens=False)
        for x in lines
    )  # fmt: skip
