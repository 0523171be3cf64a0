"""Every numeric flag in its range, checked once for all verbs before any work.

argparse turns ``--threads 100000``, ``--max-upload-mb nan`` or ``--workers -1`` into numbers
happily; :data:`FLAG_RANGES` says what each flag (argparse dest) may be, with the same
checker the library uses (:func:`fusepose.limits.check_number`), so each mistake ends in one
line that names the flag and states its range. A flag holds the same meaning in every verb
that has it; a value that is not a number (``eval --images DIR``) is not this table's. The
thresholds (``--score-thr``, ``--kpt-thr``, ``--oks-nms``) have the ranges
:class:`fusepose.description.TestSettings` checks for every caller; here they are refused
under their flag's name, whatever the model family does with them.
"""

from __future__ import annotations

import argparse

from fusepose.description import MAX_KEYPOINTS, MAX_TEST_SCALE
from fusepose.limits import MAX_INPUT_SIDE, MAX_THREADS, NumberRange

__all__ = ["FLAG_RANGES", "check_flags"]

_COUNT = 1_000_000

FLAG_RANGES: dict[str, NumberRange] = {
    "threads": NumberRange(1, MAX_THREADS, integer=True),
    "workers": NumberRange(0, 256, integer=True),
    "runs": NumberRange(1, _COUNT, integer=True),
    "warmup": NumberRange(0, _COUNT, integer=True),
    "latency_runs": NumberRange(1, _COUNT, integer=True),
    "batch_size": NumberRange(1, 4096, integer=True),
    "images": NumberRange(1, 10 * _COUNT, integer=True),
    "per_class": NumberRange(1, _COUNT, integer=True),
    "draw": NumberRange(0, _COUNT, integer=True),
    "input_size": NumberRange(1, MAX_INPUT_SIDE, integer=True),
    "input": NumberRange(1, MAX_INPUT_SIDE, integer=True),
    "size": NumberRange(8, MAX_INPUT_SIDE, integer=True),
    "num_keypoints": NumberRange(1, MAX_KEYPOINTS, integer=True),
    "seed": NumberRange(0, 2**32 - 1, integer=True),
    "opset": NumberRange(9, 30, integer=True),
    "port": NumberRange(0, 65535, integer=True),
    "det_frequency": NumberRange(1, _COUNT, integer=True),
    "track_patience": NumberRange(0, _COUNT, integer=True),
    "scales": NumberRange(0, MAX_TEST_SCALE, lo_open=True),
    "val_fraction": NumberRange(0, 1),
    "tol": NumberRange(0, 1e6),
    "minutes": NumberRange(0, 1e6, lo_open=True),
    "max_upload_mb": NumberRange(0, 4096, lo_open=True),
    "max_megapixels": NumberRange(0, 1000, lo_open=True),
    "smooth_min_cutoff": NumberRange(0, 1e6, lo_open=True),
    "smooth_beta": NumberRange(0, 1e6),
    "box": NumberRange(-1e7, 1e7),
    "score_thr": NumberRange(0, 1),
    "kpt_thr": NumberRange(0, 1),
    "oks_nms": NumberRange(0, 1, lo_open=True),
}


def check_flags(args: argparse.Namespace) -> None:
    """ConfigError (one line: the flag, the value, the range) for the first numeric flag
    outside :data:`FLAG_RANGES`; lists (``--scales 0.5 1``) are checked item by item."""
    for dest, rng in FLAG_RANGES.items():
        value = getattr(args, dest, None)
        values = value if isinstance(value, list | tuple) else [value]
        flag = "--" + dest.replace("_", "-")
        for v in values:
            if isinstance(v, int | float) and not isinstance(v, bool):
                rng.check(v, flag)
