"""Params / MACs counters against hand-computed values, the published HigherHRNet figures, and
the `fusepose flops` / `fusepose models` CLI."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest
from torch import nn

from fusepose.benchmark.complexity import (
    Complexity,
    compare_with_paper,
    count_macs,
    count_macs_fvcore,
    count_macs_repo,
    count_params,
    measure,
    measure_registered,
)
from fusepose.cli.main import main as cli_main
from fusepose.registry import ModelInfo, create_model, list_models


class Tiny(nn.Module):
    """conv 3->8 (3x3, same) -> transposed conv 8->4 (4x4, s2, p1) -> flatten -> linear -> 5."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
        self.fc = nn.Linear(4 * 20 * 24, 5)

    def forward(self, x):
        return self.fc(self.up(self.conv(x)).flatten(1))


# Input (1, 3, 10, 12). By hand:
CONV = 8 * 3 * 3 * 3 * (10 * 12)  # weights x output grid
UP_TRUE = 8 * 4 * 4 * 4 * (10 * 12)  # each input pixel scatters a 4x4 kernel to 4 channels
UP_REPO = 8 * 4 * 4 * 4 * (20 * 24)  # repo convention: weights x OUTPUT grid
FC = 1920 * 5


def test_tiny_model_hand_counts():
    model = Tiny()
    assert count_params(model) == (8 * 27 + 8) + (8 * 4 * 16 + 4) + (1920 * 5 + 5)
    assert count_macs(model, (10, 12)) == CONV + UP_TRUE + FC
    assert count_macs_repo(model, (10, 12)) == CONV + UP_REPO + FC
    assert UP_REPO == 4 * UP_TRUE  # the stride-2 transposed conv is over-counted 4x


def test_tiny_model_fvcore_counts_true_macs():
    pytest.importorskip("fvcore")
    assert count_macs_fvcore(Tiny(), (10, 12)) == CONV + UP_TRUE + FC


def test_measure_restores_training_flag_and_counts_shared_module_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1, bias=False)

        def forward(self, x):
            return self.conv(self.conv(x))

    model = Twice().train()
    c = measure(model, (3, 5), in_channels=2, fvcore=False)
    assert model.training
    assert c.params == 4
    assert c.macs == c.macs_repo == 2 * (4 * 15)
    assert c.macs_fvcore is None


def test_compare_with_paper_reasons():
    info = ModelInfo("x", "bottom_up", (512, 512), paper={"params_m": 19.9, "gflops": 2.95})
    at512 = Complexity((512, 512), 4_657_000, 12_540_000_000, 13_860_000_000, None)
    at256 = Complexity((256, 256), 4_657_000, 3_135_000_000, 3_465_000_000, None)
    agrees, reason = compare_with_paper(info, at512, {(256, 256): at256})
    assert agrees is False
    assert reason.startswith("params 4.66 vs 19.9 M, GMACs 12.54 (flopcounter) vs 2.95")
    assert "match ours at 256x256 (3.13 G, flopcounter)" in reason
    assert "(docs/reconstruction.md#l-mfnet-complexity)" in reason
    # a size whose count is not within 10 % of the paper's is no explanation
    far = Complexity((256, 256), 4_657_000, 6_540_000_000, 6_960_000_000, None)
    assert "256x256" not in compare_with_paper(info, at512, {(256, 256): far})[1]
    ok = ModelInfo("y", "top_down", (256, 192), paper={"params_m": 1.5, "gflops": 1.7})
    c = Complexity((256, 192), 1_520_000, 1_610_000_000, 1_610_000_000, None)
    assert compare_with_paper(ok, c) == (True, "")
    assert compare_with_paper(ModelInfo("z", "top_down", (256, 192)), c) == (None, "")


def test_sfm_complexity_near_paper():
    model = create_model("sfm_coco")
    c = measure(model, (256, 192))
    assert math.isclose(c.params, 1.5e6, rel_tol=0.05)
    assert math.isclose(c.macs / 1e9, 1.7, rel_tol=0.10)  # poster: 1.7 GFLOPs (= GMACs)
    # SFM has no transposed conv or linear layer: both conv conventions must coincide
    assert c.macs == c.macs_repo
    if c.macs_fvcore is not None:  # fvcore adds upsampling / element-wise terms on top
        assert c.macs < c.macs_fvcore < 1.1 * c.macs
    # an all-conv net costs in proportion to the input area: 256x256 is 4/3 of 256x192
    c256 = measure(model, (256, 256), fvcore=False)
    assert math.isclose(c256.macs / c.macs, 4 / 3, rel_tol=1e-3)


def test_meta_device_counts_equal_real_forward_counts():
    real = measure(create_model("sfm_coco_sa"), (128, 96), fvcore=False)
    meta = measure_registered("sfm_coco_sa", [(128, 96)])[(128, 96)]
    assert meta == real


@pytest.mark.slow
def test_higherhrnet_w32_published_complexity():
    if "higherhrnet_w32" not in list_models():
        pytest.skip("higherhrnet_w32 is not registered yet")
    c = measure_registered("higherhrnet_w32", [(512, 512)], fvcore=True)[(512, 512)]
    assert math.isclose(c.params / 1e6, 28.645, abs_tol=0.01)  # official module: 28.645 M
    assert math.isclose(c.macs_repo / 1e9, 47.86, abs_tol=0.05)  # README 47.9 (repo convention)
    assert 46.2 <= c.macs / 1e9 <= 46.5
    assert c.macs_fvcore is None or 46.2 <= c.macs_fvcore / 1e9 <= 46.5


# ---------------------------------------------------------------------------- CLI


def _cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "fusepose.cli.main", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_flops_prints_params(tmp_path):
    out_json = tmp_path / "sfm.json"
    res = _cli("flops", "sfm_coco", "--no-fvcore", "--json", str(out_json))
    assert res.returncode == 0, res.stderr
    n_params = sum(p.numel() for p in create_model("sfm_coco").parameters())
    m = re.search(r"params\s+([\d.]+) M \(([\d,]+)\)", res.stdout)
    assert m, res.stdout
    assert int(m.group(2).replace(",", "")) == n_params
    assert "FlopCounterMode" in res.stdout and "HRNet-repo" in res.stdout
    data = json.loads(out_json.read_text())
    assert data["params"] == n_params and data["input_size"] == [256, 192]
    assert math.isclose(data["gmacs"], 1.7, rel_tol=0.10)


def test_cli_flops_input_override_and_unknown_model(capsys):
    assert cli_main(["flops", "sfm_coco", "--input", "128", "96", "--no-fvcore"]) == 0
    out = capsys.readouterr().out
    assert "input 128x96" in out
    # an all-conv net costs in proportion to the input area: a quarter of 256x192
    g = float(re.search(r"gmacs\s+([\d.]+) G", out).group(1))
    full = count_macs(create_model("sfm_coco"), (256, 192)) / 1e9
    assert math.isclose(g, full / 4, rel_tol=0.01)
    assert cli_main(["flops", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert "no_such_model" in err and "Traceback" not in err


def test_cli_models_list_and_table(capsys):
    assert cli_main(["models", "sfm_*"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line}
    assert rows["sfm_coco"][1:4] == ["top_down", "256x192", "17"]
    assert rows["sfm_mpii"][1:4] == ["top_down", "256x256", "16"]
    assert cli_main(["models", "sfm_coco", "--table", "--markdown"]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("| sfm_coco "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "256x192" and cells[8] == "yes"  # agrees with the poster's 1.5 M / 1.7 G
    assert math.isclose(float(cells[2]), 1.5, rel_tol=0.05)
