"""Shared fixtures. Real sample data lives in ../shared/data beside the repository
(override with FUSEPOSE_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("FUSEPOSE_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


SHARED_DATA = _shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real sample data not found at {SHARED_DATA} (set FUSEPOSE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def coco_dir(shared_data: Path) -> Path:
    return shared_data / "mmpose_coco"


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run two at a time on two cores (pytest -n 2): one thread each avoids oversubscription.
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------ trained models

CONFIGS = REPO / "configs"


def overfit_config(name: str, coco_dir: Path, *extra: str):
    """A bundled overfit config pointed at the shared COCO samples, quiet."""
    from fusepose.engine.config import load_config

    ann = coco_dir / "test_coco.json"
    return load_config(CONFIGS / name, [
        f"data.train_ann={ann}", f"data.train_images={coco_dir}",
        f"data.val_ann={ann}", f"data.val_images={coco_dir}",
        "runtime.progress=false", *extra,
    ])  # fmt: skip


def _trained(config: str, coco_dir: Path, base: Path) -> dict:
    """Train ``config`` once per test session, whichever xdist worker asks first (the others
    wait on a file lock and reuse the run): ``{"ckpt", "AP_before", "AP_after"}``."""
    import json

    import torch
    from filelock import FileLock

    from fusepose.engine.trainer import Trainer, evaluate_model

    run_dir = base / Path(config).stem
    done = run_dir / "result.json"
    with FileLock(str(base / f"{Path(config).stem}.lock")):
        if not done.is_file():
            cfg = overfit_config(config, coco_dir)
            torch.manual_seed(cfg.train.seed)
            trainer = Trainer(cfg, run_dir=run_dir)
            before = evaluate_model(trainer.model, cfg, trainer.device)
            trainer.fit()
            after = evaluate_model(trainer.model, cfg, trainer.device)
            done.write_text(json.dumps({"ckpt": str(run_dir / "best.pth"),
                                        "AP_before": before["AP"], "AP_after": after["AP"]}))
    return json.loads(done.read_text())


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory) -> Path:
    """A folder all xdist workers of this session share."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def overfit_lmfnet(coco_dir, shared_tmp) -> dict:
    """``configs/lmfnet_coco4-256_1xb4-150e.yaml`` trained (about 3 minutes on one core)."""
    return _trained("lmfnet_coco4-256_1xb4-150e.yaml", coco_dir, shared_tmp)


@pytest.fixture(scope="session")
def overfit_sfm(coco_dir, shared_tmp) -> dict:
    """``configs/sfm_coco4-128x96_1xb4-160e.yaml`` trained (about 5 minutes on one core)."""
    return _trained("sfm_coco4-128x96_1xb4-160e.yaml", coco_dir, shared_tmp)
