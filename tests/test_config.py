"""Config loading: unknown keys are errors, overrides are typed, the saved config reloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusepose.engine.config import Config, load_config, save_config
from fusepose.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path, "model:\n  name: lmfnet\ntrain:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*train\.epochz"):
        load_config(p)
    p = _write(tmp_path, "trian:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*'trian'"):
        load_config(p)


def test_wrong_type_is_error(tmp_path):
    p = _write(tmp_path, "train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*train\.epochs.*integer"):
        load_config(p)
    p = _write(tmp_path, "data:\n  input_size: [256]\n")
    with pytest.raises(ConfigError, match=r"data\.input_size"):
        load_config(p)


def test_overrides_are_typed(tmp_path):
    p = _write(tmp_path, "optim:\n  lr: 0.001\nschedule:\n  milestones: [200, 260]\n")
    cfg = load_config(
        p,
        [
            "optim.lr=2e-3",
            "schedule.milestones=[5,8]",
            "train.amp=false",
            "data.input_size=[256,192]",
            "model.overrides={width: 16}",
            "train.epochs=4",
        ],
    )
    assert cfg.optim.lr == 2e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.schedule.milestones == (5, 8)
    assert cfg.train.amp is False
    assert cfg.data.input_size == (256, 192)
    assert cfg.model.overrides == {"width": 16}
    assert cfg.train.epochs == 4
    with pytest.raises(ConfigError, match=r"--set.*optim\.lrr"):
        load_config(p, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(p, ["optim.lr"])


def test_frozen_and_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.epochs=7", "data.scale_range=[0.5, 2]"])
    with pytest.raises(AttributeError):
        cfg.train.epochs = 3  # type: ignore[misc]
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(out) == cfg
    assert isinstance(load_config(out), Config)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    # file names follow {model}_{dataset}-{input}_{gpus}xb{batch}-{epochs}e, or -{minutes}min
    # for a run to a time budget
    stem = path.stem
    minutes = cfg.train.time_budget_minutes
    length = f"{minutes:g}min" if minutes > 0 else f"{cfg.train.epochs}e"
    assert stem.endswith(f"xb{cfg.train.batch_size}-{length}"), stem
    assert f"-{cfg.data.input_size[0]}" in stem, stem
