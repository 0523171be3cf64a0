"""Training to a time budget: the plan from measured speeds, the schedule over it, the run
that follows it, and resume keeping it."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from toy_training import Toy, ToyData

from fusepose.engine.budget import (
    MARGIN,
    PROBE_SHARE,
    VAL_SHARE,
    BudgetPlan,
    RunLength,
    plan_budget,
    seconds_per_step,
)
from fusepose.engine.checkpoint import load_checkpoint
from fusepose.engine.config import load_config
from fusepose.engine.optim import lr_factor
from fusepose.engine.trainer import Trainer


def test_seconds_per_step_leaves_out_the_first_tenth():
    # start at 0; the first two steps slow (3 s, 2 s), then 0.5 s each (20 steps in all)
    stamps = [0.0, 3.0, 5.0] + [5.0 + 0.5 * i for i in range(1, 19)]
    assert seconds_per_step(stamps) == pytest.approx(0.5)  # steps 3..20 (skip = 2)
    assert seconds_per_step([0.0, 4.0]) == pytest.approx(4.0)  # one step: all there is


def test_plan_by_hand():
    """10 minutes, 100 steps per epoch; the probe (epoch 1) took 55 s + a 5 s validation.
    Validations: ceil(600 / 120) = 5 (within 8 % of 600 s: at most 9), 4 still to come.
    Steps: 0.97 * 600 - 60 - 4 * 5 = 502 s left -> 1004 more steps -> 1104 steps, 12 epochs;
    validation after epoch 1 and at 12 - round(i * 11 / 4) = 12, 9, 6, 4."""
    p = plan_budget(10, steps_per_epoch=100, steps_done=100, seconds_spent=60.0,
                    step_seconds=0.5, val_seconds=5.0, validate=True, validated=(1,))  # fmt: skip
    assert p.total_steps == 1104 and p.epochs == 12
    assert p.val_epochs == (1, 4, 6, 9, 12)
    steps_s = p.total_steps * p.step_seconds
    assert steps_s + len(p.val_epochs) * p.val_seconds <= MARGIN * 600 + 5  # the 5: probe's val
    assert steps_s / 600 >= 0.8  # the budget goes to training steps
    assert BudgetPlan.from_dict(p.to_dict()) == p


def _probe_and_plan(minutes: float, step_s: float, spe: int = 135, val_s: float = 8.0):
    """What the trainer does on a machine of ``step_s`` seconds per step: the first epoch,
    cut at a quarter of the budget, validated (and timed) when it ends on its end."""
    budget = 60 * minutes
    done = min(spe, int(PROBE_SHARE * budget / step_s))
    whole = done == spe
    return plan_budget(minutes, steps_per_epoch=spe, steps_done=done,
                       seconds_spent=done * step_s + (val_s if whole else 0.0),
                       step_seconds=step_s, val_seconds=val_s if whole else 0.0,
                       validate=True, validated=(1,) if whole else ())  # fmt: skip


@pytest.mark.parametrize("step_s", [0.02, 0.2, 0.37, 1.0])
@pytest.mark.parametrize("minutes", [2.0, 9.0, 30.0])
def test_plans_fill_the_budget_at_every_speed(minutes, step_s):
    """Steps and validations (8 s each) fit the budget; steps use >= 80 % of it; a twice
    faster machine plans about twice the steps; validations grow with the budget, <= 8 %."""
    val_s, budget = 8.0, 60 * minutes
    p = _probe_and_plan(minutes, step_s, val_s=val_s)
    used = p.total_steps * step_s + len(p.val_epochs) * val_s
    assert used <= MARGIN * budget + step_s
    assert p.total_steps * step_s >= 0.8 * budget
    assert len(p.val_epochs) * val_s <= VAL_SHARE * budget + val_s  # + the probe's
    assert p.val_epochs[-1] == p.epochs  # the last weights are validated
    faster = _probe_and_plan(minutes, step_s / 2, val_s=val_s)
    assert faster.total_steps == pytest.approx(2 * p.total_steps, rel=0.1)


def test_validations_scale_with_the_budget():
    counts = []
    for minutes in (2, 4, 9, 20):
        p = plan_budget(minutes, steps_per_epoch=10, steps_done=10, seconds_spent=2.0,
                        step_seconds=0.1, val_seconds=0.5, validate=True, validated=(1,))  # fmt: skip
        counts.append(len(p.val_epochs))
    assert counts == [2, 2, 5, 10]  # ceil(minutes * 60 / 120), at least the probe's + the last


def test_a_probe_cut_mid_epoch_keeps_the_validation_share_for_the_final_one():
    p = plan_budget(4, steps_per_epoch=1000, steps_done=120, seconds_spent=60.0,
                    step_seconds=0.5, val_seconds=0.0, validate=True)  # fmt: skip
    # 0.97 * 240 - 60 - 0.08 * 240 = 153.6 s -> 307 more steps
    assert p.total_steps == 427 and p.val_epochs == (1,) and p.epochs == 1
    assert plan_budget(4, steps_per_epoch=1000, steps_done=120, seconds_spent=60.0,
                       step_seconds=0.5, validate=False).val_epochs == ()  # fmt: skip


def _budget_cfg(*extra: str):
    return load_config(None, [
        "train.epochs=3", "train.batch_size=4", "optim.lr=1.0", "schedule.name=cosine",
        "schedule.warmup_iters=4", "schedule.warmup_factor=0.5", "schedule.min_lr=0.1",
        "train.time_budget_minutes=1", "eval.interval=0", "runtime.progress=false",
        "runtime.tensorboard=false", "data.num_workers=0", *extra])  # fmt: skip


def test_schedule_holds_during_the_probe_then_cosines_over_the_plan():
    cfg = _budget_cfg()
    assert lr_factor(0, cfg, 10, None, budgeted=True) == pytest.approx(0.5)  # warm-up
    assert lr_factor(6, cfg, 10, None, budgeted=True) == 1.0  # the probe: no decay yet
    assert lr_factor(500, cfg, 10, None, budgeted=True) == 1.0
    plan = BudgetPlan(1.0, 10, probe_steps=10, probe_seconds=5.0, step_seconds=0.1,
                      val_seconds=0.0, total_steps=110)  # fmt: skip
    assert lr_factor(10, cfg, 10, plan, budgeted=True) == pytest.approx(1.0)  # continuous
    assert lr_factor(60, cfg, 10, plan, budgeted=True) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(110, cfg, 10, plan, budgeted=True) == pytest.approx(0.1)
    # multistep: milestones at the same fractions of the planned steps as of train.epochs
    ms = _budget_cfg("schedule.name=multistep", "schedule.milestones=[1,2]", "schedule.gamma=0.1",
                     "schedule.warmup_iters=0")  # fmt: skip
    assert [lr_factor(it, ms, 10, plan, budgeted=True) for it in (36, 37, 72, 73)] == (
        pytest.approx([1.0, 0.1, 0.1, 0.01])  # round(110 / 3) = 37, round(220 / 3) = 73
    )
    # without a budget: the fixed-epoch schedule, whatever plan is passed
    assert lr_factor(15, cfg, 10, plan) == lr_factor(15, cfg, 10)


def test_run_length_epochs_and_validation_points():
    fixed = RunLength(epochs=5, steps_per_epoch=10, eval_interval=2)
    assert [d for d in range(1, 6) if fixed.validates_after(d, 0)] == [2, 4, 5]
    assert fixed.finished(5, 0) and not fixed.finished(4, 999) and fixed.label() == "5"
    budget = RunLength(epochs=5, steps_per_epoch=10, minutes=1.0, eval_interval=2)
    assert budget.probing and budget.label() == "?" and budget.validates_after(1, 10)
    budget.restore(BudgetPlan(1.0, 10, 10, 6.0, 0.1, 1.0, total_steps=25, val_epochs=(1, 3)))
    assert [budget.epoch_steps(e) for e in range(4)] == [10, 10, 5, 0]  # the last epoch partial
    assert budget.label() == "3" and not budget.validates_after(2, 20)
    assert budget.validates_after(3, 25) and budget.finished(3, 25) and not budget.finished(2, 20)


class _Stop(Exception):
    pass


class _StoppingTrainer(Trainer):
    """Stops (as a kill would) right after the first checkpoint written past the probe."""

    def save(self, path):
        super().save(path)
        if self.plan is not None and self.state.global_step > self.plan.probe_steps:
            raise _Stop


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_a_budget_run_follows_its_plan_and_resume_keeps_it(tmp_path):
    """A 0.03-minute budget on the toy model: the first epoch (4 steps) is the probe, the plan
    fixes the steps; stopped mid-run and resumed with another budget in the config, the run
    keeps the checkpoint's plan and ends with the weights of an uninterrupted run on that plan."""
    torch.set_num_threads(1)
    cfg = _budget_cfg("train.time_budget_minutes=0.03", "train.checkpoint_interval_steps=3",
                      "optim.lr=0.01", "schedule.min_lr=0.0001", "train.log_interval=1")  # fmt: skip
    torch.manual_seed(0)
    first = _StoppingTrainer(cfg, run_dir=tmp_path / "run", model=Toy(),
                             train_set=ToyData(14, people=1))  # fmt: skip
    with pytest.raises(_Stop):
        first.fit()
    plan = first.plan
    assert plan is not None and plan.probe_steps == 4 and plan.total_steps > 6
    mid = load_checkpoint(tmp_path / "run" / "last.pth")
    assert BudgetPlan.from_dict(mid["budget"]) == plan and mid["global_step"] == 6

    torch.manual_seed(0)
    other = _budget_cfg("train.time_budget_minutes=5", "train.checkpoint_interval_steps=3",
                        "optim.lr=0.01", "schedule.min_lr=0.0001", "train.log_interval=1")  # fmt: skip
    resumed = Trainer(other, run_dir=tmp_path / "run", model=Toy(), train_set=ToyData(14, people=1))
    assert resumed.resume("auto") and resumed.plan == plan
    out = resumed.fit()
    assert out["steps"] == plan.total_steps and out["budget"] == plan.to_dict()
    assert resumed.state.images == _images(plan.total_steps, 14, 4)  # both processes' images
    rows = list(csv.DictReader(open(tmp_path / "run" / "train.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, plan.epochs + 1))
    lrs = [float(r["lr"]) for r in csv.DictReader(open(tmp_path / "run" / "train_steps.csv"))]
    assert lrs[-1] == pytest.approx(0.0001)  # the cosine ends at min_lr on the last step

    torch.manual_seed(0)
    whole = Trainer(cfg, run_dir=tmp_path / "whole", model=Toy(), train_set=ToyData(14, people=1))
    whole.length.restore(plan)  # the same plan from the start: the same LR at every step
    whole.fit()
    for k, v in _weights(whole).items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0, msg=k)


def _images(total_steps: int, n: int, batch: int) -> int:
    """Images seen in ``total_steps`` steps over epochs of ``n`` samples in batches of
    ``batch`` (the last batch of an epoch partial)."""
    per_epoch = math.ceil(n / batch)
    full, rest = divmod(total_steps, per_epoch)
    return full * n + min(rest * batch, n)


@pytest.mark.slow
def test_cli_train_to_a_budget_through_a_pipe_then_resume_keeps_the_plan(tmp_path):
    """`fusepose train --set train.time_budget_minutes=...`: the run ends on its plan's last
    step, the log through a pipe is plain short lines; resumed with another budget, the run
    keeps the checkpoint's plan (finished: no step more)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from fusepose.data.synth import generate_synthetic
    from fusepose.progress import MAX_LINE

    paths = generate_synthetic(tmp_path / "synth", 12, seed=0, size=64, val_fraction=0.25)
    config = Path(__file__).resolve().parents[1] / "configs" / "lmfnet_synth-128_1xb8-9e.yaml"
    common = ["train", str(config), "--out", str(tmp_path / "run"),
              *(x for k in ("train", "val") for x in (
                  "--set", f"data.{k}_ann={paths[k]}", "--set", f"data.{k}_images={paths['images']}")),
              "--set", "data.input_size=[64,64]", "--set", "train.batch_size=2",
              "--set", "eval.interval=1", "--set", "train.log_interval=1"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def cli(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fusepose.cli.main", *common, *extra],
                              capture_output=True, text=True, timeout=600, env=env)  # fmt: skip

    r = cli("--set", "train.time_budget_minutes=0.3")
    assert r.returncode == 0, r.stderr[-3000:]
    ck = load_checkpoint(tmp_path / "run" / "last.pth")
    plan = ck["budget"]
    assert plan["minutes"] == 0.3 and ck["global_step"] == plan["total_steps"] >= 1
    assert ck["images_seen"] >= ck["global_step"] and ck["train_seconds"] > 0
    log = r.stdout + r.stderr
    assert "\r" not in log and max(len(line) for line in log.splitlines()) < MAX_LINE
    assert "time budget 0.3 min" in log

    r = cli("--set", "train.time_budget_minutes=2", "--resume", "auto")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "continuing its time budget's plan (0.3 min" in r.stderr
    again = load_checkpoint(tmp_path / "run" / "last.pth")
    assert again["budget"] == plan and again["global_step"] == ck["global_step"]
