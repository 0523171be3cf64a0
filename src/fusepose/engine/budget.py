"""Training to a time budget (``train.time_budget_minutes``): measure first, then fix the run.

The trainer starts as usual. The first epoch is the *probe* (cut short once it has taken
:data:`PROBE_SHARE` of the budget): its steps are timed, and when it ends on the epoch's end a
validation runs and is timed too. :func:`plan_budget` then fixes, once, what fills the rest of
the budget: the number of optimiser steps, the epochs after which validation runs (about one
per :data:`VAL_EVERY_S` seconds of budget, at most :data:`VAL_SHARE` of it, always after the
last step) and so the learning-rate schedule over those steps
(:func:`fusepose.engine.optim.lr_factor`). The plan is stored in every checkpoint under
``budget``: ``--resume`` continues the same schedule, whatever the speed of the machine it
resumes on. The budget covers training steps and validations (wall time); building the model
and reading the data come before it. With the budget off (``0``) the run is the fixed
``train.epochs`` schedule, and the same seed gives the same weights.

    plan = plan_budget(9.0, steps_per_epoch=135, steps_done=135, seconds_spent=52.0,
                       step_seconds=0.37, val_seconds=9.5, validate=True, validated=(1,))
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fusepose.errors import CheckpointError

log = logging.getLogger(__name__)

__all__ = [
    "MARGIN",
    "PROBE_SHARE",
    "VAL_EVERY_S",
    "VAL_SHARE",
    "BudgetPlan",
    "RunLength",
    "plan_budget",
    "seconds_per_step",
]

PROBE_SHARE = 0.25  # the probe (the first epoch) stops after this share of the budget
VAL_EVERY_S = 120.0  # about one validation per this many seconds of budget
VAL_SHARE = 0.08  # validations take at most this share of the budget
MARGIN = 0.97  # the plan fills this share: epoch-end checkpoints, log lines and jitter


@dataclass(frozen=True)
class BudgetPlan:
    """The run a time budget buys, fixed after the probe.

    ``minutes``: the budget (training steps and validations, wall time); ``probe_steps`` /
    ``probe_seconds``: steps done and seconds spent when the plan was made (validation
    included); ``step_seconds`` / ``val_seconds``: the measured cost of one optimiser step and
    of one validation (0: not measured); ``total_steps``: optimiser steps of the whole run;
    ``val_epochs``: the 1-based epochs after which validation runs (the last one, possibly
    partial, always among them when validation is on); ``steps_per_epoch``: full epochs'.
    """

    minutes: float
    steps_per_epoch: int
    probe_steps: int
    probe_seconds: float
    step_seconds: float
    val_seconds: float
    total_steps: int
    val_epochs: tuple[int, ...] = ()

    @property
    def epochs(self) -> int:
        """Epochs of the run, the last one possibly partial."""
        return max(1, math.ceil(self.total_steps / max(self.steps_per_epoch, 1)))

    def to_dict(self) -> dict[str, Any]:
        """The fields, and ``epochs`` for readers of the JSON."""
        return {**dataclasses.asdict(self), "val_epochs": list(self.val_epochs),
                "epochs": self.epochs}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "checkpoint") -> BudgetPlan:
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            fields = {k: v for k, v in data.items() if k in names}
            return cls(**{**fields, "val_epochs": tuple(int(e) for e in data["val_epochs"])})
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{source}: malformed time-budget plan ({e})") from None


def seconds_per_step(stamps: Sequence[float]) -> float:
    """Seconds per optimiser step from ``stamps``: the start time, then the end time of each
    step (seconds). The first tenth of the steps (at least one) is left out: the first steps
    pay one-off costs (allocations, kernel selection, the data loader's start)."""
    n = len(stamps) - 1
    if n < 1:
        raise ValueError("need the start and at least one step")
    skip = min(max(1, n // 10), n - 1)
    return (stamps[-1] - stamps[skip]) / (n - skip)


def _val_count(budget_s: float, val_seconds: float) -> int:
    """Validations for a budget: one per VAL_EVERY_S seconds, within VAL_SHARE of it."""
    count = max(1, math.ceil(budget_s / VAL_EVERY_S))
    if val_seconds > 0:
        count = min(count, max(1, int(VAL_SHARE * budget_s / val_seconds)))
    return count


def _spread(first: int, last: int, count: int) -> list[int]:
    """``count`` epochs among ``first..last``, evenly spaced, ending at ``last``."""
    count = max(1, min(count, last - first + 1))
    return sorted({last - round(i * (last - first + 1) / count) for i in range(count)})


def plan_budget(
    minutes: float,
    *,
    steps_per_epoch: int,
    steps_done: int,
    seconds_spent: float,
    step_seconds: float,
    val_seconds: float = 0.0,
    validate: bool = True,
    validated: Sequence[int] = (),
) -> BudgetPlan:
    """Fix the run that fills ``minutes`` of training (steps and validations).

    ``steps_done`` / ``seconds_spent``: where the probe left the run; ``step_seconds`` /
    ``val_seconds``: the measured costs (``val_seconds`` 0 when no validation was timed: then
    only the final validation runs, with ``VAL_SHARE`` of the budget kept for it);
    ``validate``: whether validation is on; ``validated``: epochs already validated.

    The steps fill ``MARGIN`` of the budget less the validations still to come; the run is
    never shorter than the steps already done.
    """
    if minutes <= 0 or steps_per_epoch < 1 or step_seconds <= 0:
        raise ValueError("a budget needs minutes > 0, steps_per_epoch >= 1, step_seconds > 0")
    budget_s = minutes * 60.0
    epoch_done = steps_done // steps_per_epoch  # full epochs behind the plan
    if not validate:
        rest = 0
    elif val_seconds > 0:
        rest = max(1, _val_count(budget_s, val_seconds) - len(validated))
    else:
        rest = 1  # the final one, its cost unknown: it gets the validations' share
    val_cost = val_seconds if val_seconds > 0 or not validate else VAL_SHARE * budget_s
    total = steps_done
    for _ in range(2):  # fewer epochs than planned validations: budget fewer, plan again
        free = MARGIN * budget_s - seconds_spent - rest * val_cost
        total = steps_done + max(0, math.floor(free / step_seconds))
        epochs = max(1, math.ceil(total / steps_per_epoch))
        if not validate or rest <= epochs - epoch_done:
            break
        rest = max(1, epochs - epoch_done)
    total = max(total, steps_done, 1)
    epochs = max(1, math.ceil(total / steps_per_epoch))
    vals: set[int] = set()
    if validate:
        vals = {e for e in validated if e <= epochs}
        vals.update(_spread(min(epoch_done + 1, epochs), epochs, rest))
    return BudgetPlan(
        minutes=float(minutes),
        steps_per_epoch=int(steps_per_epoch),
        probe_steps=int(steps_done),
        probe_seconds=float(seconds_spent),
        step_seconds=float(step_seconds),
        val_seconds=float(val_seconds),
        total_steps=int(total),
        val_epochs=tuple(sorted(vals)),
    )


class RunLength:
    """How long a run lasts and when it validates: ``epochs`` epochs of ``steps_per_epoch``
    steps, validated every ``eval_interval`` epochs and after the last; or, with ``minutes`` >
    0, a time budget: the probe (the first epoch, timed), then the :class:`BudgetPlan`.

    ``plan`` is None until :meth:`make_plan` (or a resumed checkpoint) sets it. ``agree(x)``
    returns the main process's ``x`` on every process (decisions that rest on each process's
    own clock must agree under DDP); the default is the identity.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, minutes: float = 0.0,
                 eval_interval: int = 1, agree: Callable[[Any], Any] | None = None) -> None:  # fmt: skip
        self.epochs, self.steps_per_epoch = int(epochs), int(steps_per_epoch)
        self.minutes, self.eval_interval = float(minutes), int(eval_interval)
        self.agree = agree or (lambda x: x)
        self.budgeted = self.minutes > 0
        self.plan: BudgetPlan | None = None
        self.stamps: list[float] = []  # the probe's start and step end times (seconds)

    @property
    def probing(self) -> bool:
        return self.budgeted and self.plan is None

    def restore(self, plan: BudgetPlan) -> None:
        """A resumed run keeps its plan, whatever the speed of this machine."""
        self.plan, self.budgeted = plan, True

    def epoch_steps(self, epoch: int) -> int:
        """Steps of epoch ``epoch`` (0-based): a full epoch, or what the plan leaves of it."""
        if self.plan is None:
            return self.steps_per_epoch
        rest = self.plan.total_steps - epoch * self.steps_per_epoch
        return max(0, min(self.steps_per_epoch, rest))

    def label(self) -> str:
        """The run's epochs for ``epoch 3/N`` (``?`` while the probe runs)."""
        if not self.budgeted:
            return str(self.epochs)
        return str(self.plan.epochs) if self.plan is not None else "?"

    def finished(self, epoch: int, global_step: int) -> bool:
        """``epoch``: epochs done; ``global_step``: steps done."""
        if not self.budgeted:
            return epoch >= self.epochs
        return self.plan is not None and global_step >= self.plan.total_steps

    def validates_after(self, done: int, global_step: int) -> bool:
        """Whether validation runs after epoch ``done`` (1-based): every ``eval_interval``-th
        and the last; with a budget, after the probe's epoch and the plan's epochs."""
        if self.eval_interval <= 0:
            return False
        if not self.budgeted:
            return done % self.eval_interval == 0 or done == self.epochs
        if self.plan is None:
            return True  # the probe's end: its cost goes into the plan
        return done in self.plan.val_epochs or self.finished(done, global_step)

    def cut_probe(self, now: float, spent: float, epoch: int, step: int, validate: bool) -> bool:
        """After a probe step ending at ``now`` (seconds, the clock of :attr:`stamps`), with
        ``spent`` seconds of the budget gone: once the probe has taken its share of the budget
        and epoch ``epoch`` (0-based) goes on past ``step``, plan the run from here (no
        validation timed) and return True. An epoch that ends here is planned at its end."""
        self.stamps.append(now)
        cut = self.agree(spent >= PROBE_SHARE * 60.0 * self.minutes)
        if not cut or step >= self.epoch_steps(epoch):
            return False
        done = epoch * self.steps_per_epoch + step
        self.make_plan(done, spent, val_seconds=0.0, validate=validate, validated=())
        return True

    def make_plan(self, steps_done: int, seconds_spent: float, *, val_seconds: float,
                  validate: bool, validated: tuple[int, ...]) -> BudgetPlan:  # fmt: skip
        """Fix the run from the probe's step times (:attr:`stamps`) and ``val_seconds`` (the
        main process's plan on every process)."""
        plan = plan_budget(
            self.minutes,
            steps_per_epoch=self.steps_per_epoch,
            steps_done=steps_done,
            seconds_spent=seconds_spent,
            step_seconds=seconds_per_step(self.stamps),
            val_seconds=val_seconds,
            validate=validate,
            validated=validated,
        )
        self.plan = p = self.agree(plan)
        log.info("time budget %.4g min: %.3f s per step, %.1f s per validation; the run: %d steps "
                 "(%d epochs), validating after epochs %s", p.minutes, p.step_seconds,
                 p.val_seconds, p.total_steps, p.epochs, list(p.val_epochs) or "none")  # fmt: skip
        return p
