"""Limits on what a user, a file or a request may ask for, and the one checker of numbers.

The same limits hold for the command line, the Python API and the server
(:mod:`fusepose.serve`), so a value that one refuses no other path accepts:

- an image is decoded only when its header says it is at most :data:`MAX_IMAGE_PIXELS`
  pixels and :data:`MAX_IMAGE_SIDE` per side (a decompression bomb is never decoded);
- a network input is at most :data:`MAX_INPUT_SIDE` per side, and a whole-image (bottom-up)
  input at most :data:`MAX_INPUT_FACTOR` times the model's input area (a 2 x 3000 strip under
  the short-side resize would otherwise become a 64 x 96000 input needing tens of GB).

:func:`check_number` is the one test of a number from outside (a flag, a stored file, a
request): a real number, finite, of the right kind and inside its range, or a one-line
:class:`~fusepose.errors.ConfigError` that names it and states the range.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from fusepose.errors import ConfigError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MAX_INPUT_FACTOR",
    "MAX_INPUT_SIDE",
    "MAX_THREADS",
    "NumberRange",
    "check_number",
]

MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_SIDE = 20_000
MAX_INPUT_SIDE = 4096
MAX_INPUT_FACTOR = 16
MAX_THREADS = 1024


class NumberRange:
    """An allowed range: ``lo`` / ``hi`` bounds (None: open-ended), ``lo_open`` excludes
    ``lo`` itself, ``integer`` asks for a whole number."""

    def __init__(
        self,
        lo: float | None = None,
        hi: float | None = None,
        *,
        integer: bool = False,
        lo_open: bool = False,
    ) -> None:
        self.lo, self.hi, self.integer, self.lo_open = lo, hi, bool(integer), bool(lo_open)

    def describe(self) -> str:
        """``"an integer in [1, 1024]"``, ``"a finite number in (0, 1]"``, ..."""
        kind = "an integer" if self.integer else "a finite number"
        if self.integer and self.lo in (0, 1) and not self.lo_open:
            kind = "a positive integer" if self.lo == 1 else "a non-negative integer"
        if self.lo is None and self.hi is None:
            return kind
        lo = "-inf" if self.lo is None else _fmt(self.lo)
        hi = "inf" if self.hi is None else _fmt(self.hi)
        left = "(" if self.lo_open or self.lo is None else "["
        right = ")" if self.hi is None else "]"
        return f"{kind} in {left}{lo}, {hi}{right}"

    def check(self, value: Any, name: str) -> int | float:
        """``value`` as an int (``integer``) or a float, or ConfigError naming ``name``."""
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok:
            value = float(value) if not isinstance(value, numbers.Integral) else int(value)
            ok = math.isfinite(value)
        if ok and self.integer:
            ok = float(value).is_integer()
            if ok:
                value = int(value)
        if ok and self.lo is not None:
            ok = value > self.lo if self.lo_open else value >= self.lo
        if ok and self.hi is not None:
            ok = value <= self.hi
        if not ok:
            raise ConfigError(f"{name} {_show(value)}: must be {self.describe()}")
        return value


def check_number(
    value: Any,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    integer: bool = False,
    lo_open: bool = False,
) -> int | float:
    """``value`` checked against :class:`NumberRange` ``(lo, hi, integer, lo_open)``:
    ``check_number(n, "--threads", 1, 1024, integer=True)``."""
    return NumberRange(lo, hi, integer=integer, lo_open=lo_open).check(value, name)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
