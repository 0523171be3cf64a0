"""The README is tested: every command of its ``bash`` blocks and every ``python`` block runs as
written, in order, in a scratch layout of the checkout (``configs``, ``../shared/data``, a
fresh ``runs/``), and exits 0. The training commands run once per session (the overfit tests
reuse their checkpoints, see ``conftest.readme_train``). A block is left out only with a
``<!-- readme-test: skip: REASON -->`` line before it, and the reason is checked to be given.
``make demo`` / ``make test`` are the repository's two commands: CI runs the second, whose
suite runs ``fusepose demo`` through tests/test_package.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import readme_blocks, readme_train, run_readme

TWO_COMMANDS = {"make demo", "make test"}


def test_readme_blocks_are_found_and_skips_say_why():
    blocks = readme_blocks()
    assert sum(len(b["commands"]) for b in blocks) >= 10
    for b in blocks:
        if b["skip"] is not None:
            assert len(b["skip"]) > 10, b  # a reason, not just a marker


@pytest.mark.slow
def test_every_readme_command_runs_as_written(readme_ws):
    ran = 0
    for block in readme_blocks():
        if block["skip"] is not None:
            continue
        if block["lang"] == "python":
            proc = run_readme(f"python - <<'PYEOF'\n{block['code']}\nPYEOF", readme_ws)
            assert proc.returncode == 0, (block["code"], proc.stderr[-3000:])
            ran += 1
            continue
        for cmd in block["commands"]:
            if cmd in TWO_COMMANDS:
                continue
            if cmd.startswith("fusepose train "):
                readme_train(cmd.split()[2], readme_ws)
            else:
                proc = run_readme(cmd, readme_ws)
                assert proc.returncode == 0, (cmd, proc.stderr[-3000:])
            ran += 1
    assert ran >= 10


def _quoted(pattern: str) -> float:
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(pattern, text.replace("\n", " "))
    assert m, pattern
    return float(m.group(1))


@pytest.mark.slow
def test_readme_quotes_the_numbers_its_commands_give(overfit_lmfnet, overfit_sfm):
    """The APs the First-steps section quotes are the ones its commands produce here: the
    checkpoint's own record and the shared evaluation loop on it (within 0.01: the trainings
    are seeded, one thread, but another CPU kind may round differently)."""
    from fusepose.modelfile import describe

    quoted_lmfnet = _quoted(r"The checkpoint records validation AP (0\.\d+)")
    quoted_sfm = _quoted(r"SFM on the GT boxes: AP (0\.\d+)")
    for run, quoted in ((overfit_lmfnet, quoted_lmfnet), (overfit_sfm, quoted_sfm)):
        recorded = describe(run["ckpt"]).val_metric
        assert abs(recorded - quoted) <= 0.01, (run["ckpt"], recorded, quoted)
        assert abs(run["AP_after"] - recorded) <= 1e-6
