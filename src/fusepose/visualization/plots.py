"""Charts as PNG files (matplotlib, headless ``Agg`` backend): training curves and the
accuracy-against-cost scatter of an ablation.

Both take plain numbers, so they draw a run's CSV logs or an ``ablation.json`` alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["plot_training_curves", "plot_tradeoff"]


def plot_training_curves(
    path: str | Path,
    loss: Mapping[str, Sequence[tuple[float, float]]],
    metrics: Mapping[str, Sequence[tuple[float, float]]],
    *,
    loss_xlabel: str = "step",
    metric_xlabel: str = "epoch",
    title: str = "",
) -> Path:
    """Two panels: loss curves (log scale) and metric curves (0..1), each a mapping
    ``label -> [(x, y), ...]``; written to ``path`` (PNG)."""
    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
    for label, pts in loss.items():
        pts = [(x, y) for x, y in pts if y is not None and y > 0]
        if pts:
            ax_l.plot(*zip(*pts, strict=True), label=label, lw=1.2)
    ax_l.set_yscale("log")
    ax_l.set_xlabel(loss_xlabel)
    ax_l.set_ylabel("loss")
    ax_l.grid(alpha=0.3)
    if ax_l.lines:
        ax_l.legend(fontsize=8)
    for label, pts in metrics.items():
        pts = [(x, y) for x, y in pts if y is not None]
        if pts:
            ax_m.plot(*zip(*pts, strict=True), marker="o", ms=3, label=label)
    ax_m.set_xlabel(metric_xlabel)
    ax_m.set_ylim(0, 1)
    ax_m.grid(alpha=0.3)
    if ax_m.lines:
        ax_m.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_tradeoff(
    path: str | Path,
    rows: Sequence[Mapping[str, Any]],
    x: str,
    y: str = "AP",
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str = "",
    label: str = "name",
) -> Path:
    """Scatter of ``row[y]`` against ``row[x]`` with each point named by ``row[label]``
    (rows missing either value are left out); written to ``path`` (PNG)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for row in rows:
        xv, yv = row.get(x), row.get(y)
        if xv is None or yv is None:
            continue
        ax.scatter([xv], [yv], s=40)
        ax.annotate(str(row.get(label, "")), (xv, yv), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)  # fmt: skip
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    logger.info("wrote %s", path)
    return path
