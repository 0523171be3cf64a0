"""The built wheel works outside the checkout: configs and sample files ship as package data,
and the commands a new user runs first find them there (not by walking up from the source).

The wheel is built here (``pip wheel --no-deps --no-build-isolation``) and unpacked into a
scratch folder; the commands then run from another scratch folder with only that unpacked
wheel on ``PYTHONPATH`` ahead of everything (the dependencies come from this environment), so
no file of the checkout can be found by accident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = out.glob("fusepose-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(site)
    # what a command needs by default ships inside the package
    assert "fusepose/assets/000000000785.jpg" in names
    assert any(n.startswith("fusepose/configs/") and n.endswith(".yaml") for n in names)
    return site


def _run(site: Path, cwd: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "FUSEPOSE_SHARED_DATA": str(cwd / "none")}
    return subprocess.run([sys.executable, "-m", "fusepose.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.slow
def test_wheel_runs_demo_and_predict_outside_the_checkout(wheel_site, tmp_path):
    where = _run(wheel_site, tmp_path, "configs")
    assert where.returncode == 0, where.stderr
    assert "lmfnet_coco4-256_1xb4-150e" in where.stdout  # bundled configs listed by name
    proc = subprocess.run(
        [sys.executable, "-c", "import fusepose.engine.config as c; print(c.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(wheel_site)},
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.stdout.startswith(str(wheel_site)), proc.stdout  # the wheel, not the checkout
    demo = _run(wheel_site, tmp_path, "demo", "--images", "20", "--epochs", "1", "--set",
                "train.max_steps_per_epoch=1", "--out", "X")  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads((tmp_path / "X" / "summary.json").read_text())
    assert summary["epochs"] == 1 and "AP" in summary
    ckpt = tmp_path / "X" / "train" / "last.pth"
    image = next((tmp_path / "X" / "synth" / "images").glob("*"))
    pred = _run(wheel_site, tmp_path, "predict", str(ckpt), "--source", str(image),
                "--save-json", "p.json")  # fmt: skip
    assert pred.returncode == 0, pred.stderr[-3000:]
    assert isinstance(json.loads((tmp_path / "p.json").read_text()), list)
    bench = _run(wheel_site, tmp_path, "bench", "test_sfm", "--runs", "1", "--warmup", "0")
    assert bench.returncode == 0, bench.stderr[-3000:]  # the bundled sample photo by default
