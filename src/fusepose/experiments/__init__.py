"""Experiments: the studies fusepose runs end to end and writes up, above the instruments of
:mod:`fusepose.benchmark` and the training engine.

- :mod:`~fusepose.experiments.demo` (``fusepose demo``): synthetic people, a small L-MFNet
  trained to a time budget, held-out AP by number of people, drawings and curves;
- :mod:`~fusepose.experiments.ablation` (``fusepose ablate``): a paper's ablation, every
  variant trained with one recipe, scored and timed side by side;
- :mod:`~fusepose.experiments.perf_table` (``fusepose perf``): params, MACs and the latency
  split of every model, backend and precision, interleaved.

The demo and the ablations are one orchestration with different recipes
(:mod:`~fusepose.experiments.orchestrate`): data (a synthetic set rendered once, or given
paths) -> :class:`~fusepose.engine.trainer.Trainer` (fixed epochs or a time budget; resumed
from ``last.pth`` when a run stopped half-way) -> held-out scoring through
:func:`fusepose.inference.dataset.evaluate_dataset` -> JSON and plots.
"""
