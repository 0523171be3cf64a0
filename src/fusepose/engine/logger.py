"""Training logs: console (``logging``), a CSV file and, if installed, TensorBoard."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MetricLogger:
    """Append rows of scalars to ``run_dir/<name>.csv`` and TensorBoard (rank 0 only).

    Columns are fixed by the first row written to each CSV; later unknown keys are dropped
    with a warning (the CSV stays rectangular). Resuming appends to the existing files.
    """

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._fields: dict[str, list[str]] = {}
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
            except Exception as e:  # tensorboard is optional
                log.info("TensorBoard logging off (%s)", e)

    def log(self, name: str, row: Mapping[str, Any], step: int) -> None:
        """Write ``row`` (scalars) to ``<name>.csv`` and as ``<name>/<key>`` in TensorBoard."""
        if not self.enabled:
            return
        row = {k: _scalar(v) for k, v in row.items()}
        path = self.run_dir / f"{name}.csv"
        fields = self._fields.get(name)
        if fields is None:
            if path.is_file() and path.stat().st_size > 0:
                with open(path, newline="") as f:
                    fields = next(csv.reader(f), None)
            if not fields:
                fields = list(row)
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerow(fields)
            self._fields[name] = fields
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=fields, extrasaction="ignore").writerow(row)
        if self._tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step") and math.isfinite(v):
                    self._tb.add_scalar(f"{name}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def _scalar(v: Any) -> Any:
    if hasattr(v, "item"):
        try:
            return v.item()
        except (ValueError, RuntimeError):
            return v
    return v
