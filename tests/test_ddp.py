"""2-process DDP (torchrun, Gloo on CPU) ends with the same weights as 1 process with the same
global batch.

Why this can hold exactly (up to float summation order): the per-rank loss is a mean over the
rank's images, DDP averages the gradients over the 2 ranks, so with equal per-rank batch sizes
the update equals the 1-process update on the union batch; :class:`EpochSampler` gives rank r
the positions ``r::2`` of the same seeded permutation, so global batch j of the 1-process run
holds exactly the samples of the ranks' batch j; and augmentation randomness is seeded per
(seed, epoch, sample), not per process. BatchNorm would break this (batch statistics over 4
vs 8 images), so the run uses ``train.freeze_bn=true`` (BN in eval mode: a fixed per-channel
affine, per-sample equivalent). On GPUs the same holds with ``train.sync_bn=true``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fusepose.engine.checkpoint import load_checkpoint

SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from toy_training import Toy, ToyData
    from fusepose.engine.config import load_config
    from fusepose.engine.trainer import train

    run_dir, batch = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = load_config(None, ["train.epochs=2", f"train.batch_size={batch}", "optim.lr=0.01",
                             "optim.name=adamw", "optim.weight_decay=0.01",
                             "train.freeze_bn=true", "eval.interval=0", "data.num_workers=0",
                             "runtime.progress=false", "runtime.tensorboard=false"])
    train(cfg, run_dir=run_dir, model=Toy(), train_set=ToyData(16, people=2))
    """
)


@pytest.mark.slow
def test_two_process_gloo_equals_one_process(tmp_path):
    script = tmp_path / "toy_ddp.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parent))
    env.pop("WORLD_SIZE", None)
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one"), "8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path / "two"),
            "4",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_checkpoint(tmp_path / "one" / "last.pth")
    b = load_checkpoint(tmp_path / "two" / "last.pth")
    assert a["global_step"] == b["global_step"] == 4  # 16 samples / global batch 8, 2 epochs
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    # the weights really changed during training (the comparison is not trivially true)
    first = load_checkpoint(tmp_path / "one" / "last.pth")["optimizer"]["state"]
    moved = max(float(s["exp_avg"].abs().max()) for s in first.values())
    assert moved > 0
    # only rank 0 wrote the run folder's logs
    assert (tmp_path / "two" / "train.csv").read_text().count("\n") == 3
