"""The training CSV keeps every column: validation metrics that first appear on a later epoch
(``eval.interval`` > 1) widen the file instead of being dropped."""

from __future__ import annotations

import csv

from fusepose.engine.logger import MetricLogger


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_later_row_with_new_keys_widens_the_csv(tmp_path):
    log = MetricLogger(tmp_path, tensorboard=False)
    log.log("train", {"epoch": 1, "loss": 0.5}, 1)
    log.log("train", {"epoch": 2, "loss": 0.25, "val_AP": 0.125}, 2)
    log.log("train", {"epoch": 3, "loss": 0.125}, 3)
    rows = _rows(tmp_path / "train.csv")
    assert list(rows[0]) == ["epoch", "loss", "val_AP"]
    assert [r["val_AP"] for r in rows] == ["", "0.125", ""]
    assert [r["loss"] for r in rows] == ["0.5", "0.25", "0.125"]
    # a resumed run's logger reads the widened header and appends under it
    MetricLogger(tmp_path, tensorboard=False).log("train", {"epoch": 4, "val_AP": 0.5}, 4)
    rows = _rows(tmp_path / "train.csv")
    assert len(rows) == 4 and rows[3]["val_AP"] == "0.5" and rows[3]["loss"] == ""
