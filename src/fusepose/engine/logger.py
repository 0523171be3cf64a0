"""Training logs: console (``logging``), a CSV file and, if installed, TensorBoard."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fusepose.files import write_text_atomic
from fusepose.progress import short_lines

log = logging.getLogger(__name__)


class MetricLogger:
    """Append rows of scalars to ``run_dir/<name>.csv`` and TensorBoard (rank 0 only).

    The columns are those of the first row written to each CSV; a later row with new keys (the
    first validated epoch when validation does not run every epoch) widens the file: it is
    rewritten atomically with the new columns, earlier rows left empty there. Resuming appends
    to the existing files.
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
        new = [k for k in row if k not in fields]
        if new:
            fields = self._fields[name] = [*fields, *new]
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
            write_text_atomic(path, text.getvalue())
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=fields).writerow(row)
        if self._tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step") and math.isfinite(v):
                    self._tb.add_scalar(f"{name}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def epoch_lines(head: str, row: Mapping[str, Any]) -> list[str]:
    """An epoch's figures (the float values of ``row`` but ``lr``) as log lines of a readable
    length: ``head: loss 0.0123, ...``, then ``head validation: AP 0.159, ...`` for the
    ``val_*`` keys."""
    figures = [(k, v) for k, v in row.items() if isinstance(v, float) and k != "lr"]
    train = [f"{k} {v:.4g}" for k, v in figures if not k.startswith("val_")]
    val = [f"{k[4:]} {v:.4g}" for k, v in figures if k.startswith("val_")]
    return short_lines(f"{head}: ", train) + (
        short_lines(f"{head} validation: ", val) if val else []
    )


def _scalar(v: Any) -> Any:
    if hasattr(v, "item"):
        try:
            return v.item()
        except (ValueError, RuntimeError):
            return v
    return v
