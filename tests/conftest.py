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
