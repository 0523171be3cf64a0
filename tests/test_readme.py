"""The README is tested: every command of its ``bash`` blocks and every ``python`` block runs as
written, in order, in a scratch layout of the checkout (``configs``, ``../shared/data``, a
fresh ``runs/``), and exits 0. The training commands run once per session (the overfit tests
reuse their checkpoints, see ``conftest.readme_train``). A block is left out only with a
``<!-- readme-test: skip: REASON -->`` line before it, and the reason is checked to be given.
``make demo`` / ``make test`` are the repository's two commands (CI runs ``make test-all``,
whose suite runs ``fusepose demo`` through tests/test_package.py). The APs the README quotes
depend on the CPU kind: its table has a row per kind measured, checked digit for digit on
that kind, and ranges for the others."""

from __future__ import annotations

import pytest
from conftest import README, readme_blocks, readme_train, run_readme

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


# ------------------------------------------------------------------------------ quoted APs

COLUMNS = ("L-MFNet val AP", "SFM val AP (GT boxes)", "two-stage AP")
OTHER = "any other"


def cpu_kind() -> str:
    """This CPU's row in the README's table: the instruction sets that pick the kernels
    (:func:`fusepose.cpu.isa_kind`, plus AMX) and the vendor, e.g. ``"AVX2 (AMD EPYC)"``."""
    from fusepose.cpu import cpu_flags, cpu_model, isa_kind

    kind = isa_kind() + (" + AMX" if "amx_bf16" in cpu_flags() else "")
    model = cpu_model()
    vendor = "AMD EPYC" if "EPYC" in model else "Intel Xeon" if "Xeon" in model else model
    return f"{kind} ({vendor})"


def quoted_table() -> dict[str, list[str]]:
    """The README's table of APs by CPU kind: ``{kind: [cell per COLUMNS]}``."""
    lines = README.read_text().splitlines()
    start = lines.index("| CPU kind | " + " | ".join(COLUMNS) + " |")
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def quote_problems(rows: dict[str, list[str]], kind: str, measured: list[float]) -> list[str]:
    """Where ``measured`` (one AP per column) disagrees with what the README quotes for
    ``kind``: a number must equal the measurement rounded to the quoted digits; where the
    kind has no row or a ``-``, the measurement must lie in the range of the last row."""
    problems = []
    row = rows.get(kind, ["-"] * len(COLUMNS))
    for col, cell, rng, got in zip(COLUMNS, row, rows[OTHER], measured, strict=True):
        if cell != "-":
            ok = round(got, len(cell.split(".")[1])) == float(cell)
            quoted = cell
        else:
            lo, hi = (float(v) for v in rng.split("-"))
            ok, quoted = lo <= got <= hi, f"range {rng}"
        if not ok:
            problems.append(f"{kind}: {col} measured {got:.4f}, README quotes {quoted}")
    return problems


def test_the_quoted_table_is_complete_and_its_check_refuses_a_wrong_number():
    """Every row quotes a number or ``-`` per column, the last row ranges; the check passes
    each quoted number and fails it moved by one unit of its last digit, and fails a number
    outside the ranges on a kind without a row."""
    rows = quoted_table()
    assert OTHER in rows and len(rows) >= 3
    assert "AVX2 (AMD EPYC)" in rows and "-" not in rows["AVX2 (AMD EPYC)"]
    for kind, cells in rows.items():
        assert len(cells) == len(COLUMNS), kind
        if kind == OTHER:
            assert all(float(lo) < float(hi) for lo, hi in (c.split("-") for c in cells))
            continue
        for i, cell in enumerate(cells):
            if cell == "-":
                continue
            unit = 10.0 ** -len(cell.split(".")[1])
            good = [float(c) if c != "-" else 0.95 for c in cells]
            assert quote_problems(rows, kind, good) == []
            for wrong in (float(cell) + unit, float(cell) - unit):
                bad = [*good[:i], wrong, *good[i + 1 :]]
                assert len(quote_problems(rows, kind, bad)) == 1, (kind, i, wrong)
    assert quote_problems(rows, "AVX3000 (Nowhere)", [0.95, 0.95, 0.85]) == []
    assert len(quote_problems(rows, "AVX3000 (Nowhere)", [0.5, 0.95, 0.85])) == 1
    assert cpu_kind().endswith(")")


@pytest.mark.slow
def test_readme_quotes_the_numbers_its_commands_give(overfit_lmfnet, overfit_sfm, coco_dir,
                                                     tmp_path, record_property):  # fmt: skip
    """The APs the First-steps section quotes are the ones its commands produce on this CPU
    kind: the checkpoints' own records (equal to the shared evaluation loop on them, 1e-6)
    and the two-stage command's AP, against this kind's row of the README's table (digit for
    digit), or the ranges where the kind has none."""
    import json

    from cli_helpers import fusepose

    from fusepose.modelfile import describe

    recorded = []
    for run in (overfit_lmfnet, overfit_sfm):
        value = describe(run["ckpt"]).val_metric
        assert abs(run["AP_after"] - value) <= 1e-6
        recorded.append(value)
    res, report = tmp_path / "two_stage.json", tmp_path / "report.json"
    fusepose("predict", overfit_sfm["ckpt"], "--detector", overfit_lmfnet["ckpt"], "--source",
             coco_dir, "--save-json", res, "--no-progress")  # fmt: skip
    fusepose("eval", "--gt", coco_dir / "test_coco.json", "--results", res, "--report", report,
             "--no-per-keypoint")  # fmt: skip
    measured = [*recorded, json.loads(report.read_text())["AP"]]
    record_property("cpu_kind", cpu_kind())
    record_property("measured", measured)
    assert quote_problems(quoted_table(), cpu_kind(), measured) == []
