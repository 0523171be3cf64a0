"""A run SIGKILLed mid-epoch and resumed with ``resume="auto"`` ends with the same weights,
optimiser state and EMA as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fusepose.engine.checkpoint import load_checkpoint

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from toy_training import Toy, ToyData
    from fusepose.engine.config import load_config
    from fusepose.engine.trainer import Trainer

    class KillingTrainer(Trainer):
        def save(self, path):
            super().save(path)
            if self.state.global_step == int(os.environ.get("KILL_AT", "-1")):
                os.kill(os.getpid(), signal.SIGKILL)

    import logging
    logging.basicConfig(level=logging.INFO)
    run_dir, workers = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    torch.manual_seed(0)  # same initial weights in every run
    cfg = load_config(None, ["train.epochs=3", "train.batch_size=4", "optim.lr=0.01",
                             "train.checkpoint_interval_steps=3", "train.ema_decay=0.9",
                             "schedule.name=cosine", "schedule.warmup_iters=3",
                             "eval.interval=0", "runtime.progress=false",
                             "runtime.tensorboard=false", f"data.num_workers={workers}"])
    # 14 samples: 4 steps per epoch, the last one a partial batch
    t = KillingTrainer(cfg, run_dir=run_dir, model=Toy(), train_set=ToyData(14, people=1))
    t.resume("auto")
    t.fit()
    """
)


def _run(script: Path, run_dir: Path, workers: int, kill_at: int | None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parent))
    if kill_at is not None:
        env["KILL_AT"] = str(kill_at)
    return subprocess.run(
        [sys.executable, str(script), str(run_dir), str(workers)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    script = tmp_path / "toy_train.py"
    script.write_text(SCRIPT)
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"

    ref = _run(script, ref_dir, 0, None)
    assert ref.returncode == 0, ref.stderr

    # global step 6 = epoch 2, step 2 of 4: a mid-epoch checkpoint, then SIGKILL
    killed = _run(script, run_dir, 2, kill_at=6)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    mid = load_checkpoint(run_dir / "last.pth")
    assert (mid["epoch"], mid["step"], mid["global_step"]) == (1, 2, 6)

    resumed = _run(script, run_dir, 0, None)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr

    a = load_checkpoint(ref_dir / "last.pth")
    b = load_checkpoint(run_dir / "last.pth")
    assert a["global_step"] == b["global_step"] == 12 and b["epoch"] == 3
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=1e-6, msg=k)
    for k, v in a["ema"]["state_dict"].items():
        torch.testing.assert_close(b["ema"]["state_dict"][k], v, rtol=0, atol=1e-6, msg=k)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for i in sa:
        torch.testing.assert_close(sb[i]["exp_avg_sq"], sa[i]["exp_avg_sq"], rtol=0, atol=1e-9)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 12
    # and the resumption really mattered: the weights moved after the kill point
    assert not torch.equal(mid["state_dict"]["q.weight"], b["state_dict"]["q.weight"])
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))
