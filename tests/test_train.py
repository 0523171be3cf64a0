"""The training loop on a tiny fake bottom-up model and dataset (CPU, a few steps)."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from fusepose.engine.checkpoint import load_checkpoint
from fusepose.engine.config import load_config
from fusepose.engine.trainer import NonFiniteLossError, Trainer, lr_factor, train
from fusepose.registry import ModelInfo

K = 2


class ToyBottomUp(nn.Module):
    """(B,3,16,16) -> ((B,2K,4,4), (B,K,8,8)), with a BatchNorm like the real models."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Conv2d(8, 8, 3, 2, 1)
        self.q = nn.Conv2d(8, 2 * K, 1)
        self.h = nn.Conv2d(8, K, 1)
        self.info = ModelInfo(
            name="toy_bottom_up", kind="bottom_up", input_size=(16, 16), num_keypoints=K
        )

    def forward(self, x):
        f = self.stem(x)
        return self.q(self.down(f)), self.h(f)


class ToyData(Dataset):
    """Images with a bright pixel per joint; targets are one-hot heatmaps at those pixels."""

    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.pos = torch.randint(0, 4, (n, K, 2), generator=g)

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, i):
        img = torch.zeros(3, 16, 16)
        hq = torch.zeros(K, 4, 4)
        hh = torch.zeros(K, 8, 8)
        tj = torch.zeros(2, K, 2, dtype=torch.int64)
        for k in range(K):
            x, y = self.pos[i, k].tolist()
            img[k, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4] = 1.0
            hq[k, y, x] = 1.0
            hh[k, 2 * y, 2 * x] = 1.0
            tj[0, k] = torch.tensor([k * 16 + y * 4 + x, 1])
        return {
            "image": img + 0.05 * torch.randn(3, 16, 16),  # seeded per sample by the trainer
            "heatmaps": [hq, hh],
            "masks": [torch.ones(4, 4), torch.ones(8, 8)],
            "tag_joints": tj,
            "meta": {"index": i},
        }


def _cfg(*extra: str):
    return load_config(
        None,
        [
            "train.epochs=3",
            "train.batch_size=4",
            "data.num_workers=0",
            "optim.lr=0.01",
            "schedule.milestones=[100]",
            "eval.interval=0",
            "runtime.progress=false",
            "runtime.tensorboard=false",
            "train.log_interval=1",
            *extra,
        ],
    )


def test_tiny_run_reduces_loss_and_writes_run_dir(tmp_path):
    torch.manual_seed(0)
    out = train(_cfg(), run_dir=tmp_path, model=ToyBottomUp(), train_set=ToyData())
    rows = list(csv.DictReader(open(tmp_path / "train.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert last < 0.7 * first, (first, last)
    assert out["last"]["epoch"] == 3
    steps = list(csv.DictReader(open(tmp_path / "train_steps.csv")))
    assert len(steps) == 3 * 4  # 16 samples / batch 4 = 4 steps per epoch, log every step
    ck = load_checkpoint(tmp_path / "last.pth")
    assert ck["epoch"] == 3 and ck["step"] == 0 and ck["global_step"] == 12
    assert ck["model_name"] == "toy_bottom_up"
    assert (tmp_path / "config.yaml").is_file()
    assert load_config(tmp_path / "config.yaml").train.epochs == 3
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_validation_keeps_best_checkpoint(tmp_path):
    scores = iter([0.2, 0.5, 0.4])

    def evaluator(model, cfg, device):
        return {"AP": next(scores)}

    train(
        _cfg("eval.interval=1"),
        run_dir=tmp_path,
        model=ToyBottomUp(),
        train_set=ToyData(),
        evaluator=evaluator,
    )
    best = load_checkpoint(tmp_path / "best.pth")
    assert best["best_metric"] == 0.5 and best["epoch"] == 2
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 3
    rows = list(csv.DictReader(open(tmp_path / "train.csv")))
    assert [float(r["val_AP"]) for r in rows] == [0.2, 0.5, 0.4]


def test_non_finite_loss_stops_with_message(tmp_path):
    def nan_loss(outputs, batch):
        return outputs[0].sum() * float("nan"), {}

    t = Trainer(
        _cfg(), run_dir=tmp_path, model=ToyBottomUp(), train_set=ToyData(), loss_fn=nan_loss
    )
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, step 1"):
        t.fit()


def test_ema_and_clip_run(tmp_path):
    t = Trainer(
        _cfg("train.ema_decay=0.9", "train.clip_grad_norm=1.0", "train.epochs=1"),
        run_dir=tmp_path,
        model=ToyBottomUp(),
        train_set=ToyData(),
    )
    t.fit()
    # EMA weights differ from the live weights but are finite
    live = t.model.q.weight
    ema = t.ema.module.q.weight
    assert torch.isfinite(ema).all() and not torch.equal(live, ema)
    assert load_checkpoint(tmp_path / "last.pth")["ema"]["updates"] == 4


def test_lr_schedules_by_hand():
    cfg = load_config(
        None,
        [
            "train.epochs=10",
            "optim.lr=1.0",
            "schedule.milestones=[2,4]",
            "schedule.warmup_iters=10",
            "schedule.warmup_factor=0.1",
        ],
    )
    spe = 5
    assert lr_factor(0, cfg, spe) == pytest.approx(0.1)
    assert lr_factor(5, cfg, spe) == pytest.approx(0.55)  # half-way through warm-up
    assert lr_factor(10, cfg, spe) == pytest.approx(0.1)  # epoch 2: first decay
    assert lr_factor(20, cfg, spe) == pytest.approx(0.01)
    cos = load_config(
        None, ["train.epochs=2", "optim.lr=1.0", "schedule.name=cosine", "schedule.min_lr=0.1"]
    )
    assert lr_factor(0, cos, 5) == pytest.approx(1.0)
    assert lr_factor(5, cos, 5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(10, cos, 5) == pytest.approx(0.1)
    assert math.isclose(lr_factor(3, load_config(None, ["schedule.name=constant"]), 5), 1.0)


def _cli(*args: str, cwd=None):
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "fusepose.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )


def test_cli_bad_config_key_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    r = _cli("train", str(bad), "--out", str(tmp_path / "run"))
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr and "train.epochz" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_cli_train_real_lmfnet_on_synthetic_then_resume(tmp_path):
    """`fusepose train` with the registry model, COCO-format synthetic data, the codec, the
    collate, validation through the Predictor + pycocotools; then `--resume auto` continues."""
    from pathlib import Path

    from fusepose.data.synth import generate_synthetic

    paths = generate_synthetic(tmp_path / "synth", 6, seed=0, size=64, val_fraction=0.34)
    config = Path(__file__).resolve().parents[1] / "configs" / "lmfnet_synth-128_1xb8-8e.yaml"
    common = [
        "--out", str(tmp_path / "run"),
        "--set", f"data.train_ann={paths['train']}",
        "--set", f"data.train_images={paths['images']}",
        "--set", f"data.val_ann={paths['val']}",
        "--set", f"data.val_images={paths['images']}",
        "--set", "data.input_size=[64,64]",
        "--set", "train.batch_size=2",
        "--set", "eval.interval=1",
        "--set", "runtime.progress=false",
    ]  # fmt: skip
    r = _cli("train", str(config), *common, "--set", "train.epochs=1")
    assert r.returncode == 0, r.stderr[-3000:]
    ck = load_checkpoint(tmp_path / "run" / "last.pth")
    assert (ck["epoch"], ck["global_step"], ck["model_name"]) == (1, 2, "lmfnet")
    rows = list(csv.DictReader(open(tmp_path / "run" / "train.csv")))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["val_AP"]) <= 1.0
    assert (tmp_path / "run" / "best.pth").is_file()
    r = _cli("train", str(config), *common, "--set", "train.epochs=2", "--resume", "auto")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr
    ck = load_checkpoint(tmp_path / "run" / "last.pth")
    assert (ck["epoch"], ck["global_step"]) == (2, 4)
    assert len(list(csv.DictReader(open(tmp_path / "run" / "train.csv")))) == 2


def test_init_from_scratch_he_hidden_small_outputs():
    """model.init=scratch: hidden convs get He-normal weights (std sqrt(2 / fan_out)), the
    prediction convs keep N(0, 0.001), BN is reset to (1, 0)."""
    from fusepose.engine.trainer import init_from_scratch
    from fusepose.registry import create_model

    torch.manual_seed(0)
    model = create_model("lmfnet", widths=[16, 32, 64, 128], stem_width=16, stage1_planes=16)
    init_from_scratch(model)
    finals = {id(m) for m in model.head.final_layers.modules()}
    checked = 0
    for m in model.modules():
        if not isinstance(m, nn.Conv2d) or m.weight.numel() < 2000:
            continue
        std = float(m.weight.detach().std())
        if id(m) in finals:
            assert std == pytest.approx(0.001, rel=0.1)
        else:
            fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
            assert std == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.1), m
            checked += 1
    assert checked > 10
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_model_init_scratch_is_used_by_trainer_and_checked(tmp_path):
    """The config key reaches the model; an unknown value is a ConfigError naming the key."""
    from fusepose.errors import ConfigError

    with pytest.raises(ConfigError, match="model.init"):
        Trainer(_cfg("model.init=pretrained"), run_dir=tmp_path / "bad")
