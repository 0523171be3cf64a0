"""Issue 22's verdict over separate ``fusepose perf`` runs, and the MAC-bound limit of each row.

A ratio measured once on a shared 2-vCPU machine moves by up to 2x with the machine's state
(docs/performance.md), so the verdict is read from several *separate* perf runs and reported as
the range over them. Pure functions over the perf JSON (``run_perf``'s result): ``best`` (the
fastest row per model whose guard passed), ``rows`` and ``machine``.

- :func:`speed_target`: the end-to-end speed-up a lightweight model must show over the
  baseline's best accurate path on this kind of CPU: 1.5x where bf16 is native (AVX-512 + BF16,
  AMX), 2x elsewhere (AVX2).
- :func:`speed_verdicts`: per candidate model, its best path against the baseline's best path
  in every run: the range of the end-to-end and network ratios, whether every run meets the
  target, and whether every verdict came from a trained checkpoint (random weights say nothing
  about accuracy, so a path whose guard passed on them does not count).
- :func:`add_mac_bounds`: each row's MAC-bound time at the best dense rate of its precision
  measured in the same run (:mod:`fusepose.benchmark.limits`) and the row's ratio to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fusepose.benchmark.limits import row_limit

__all__ = ["MIN_RUNS", "add_mac_bounds", "speed_target", "speed_verdicts", "verdict_markdown"]

MIN_RUNS = 3


def speed_target(machine: dict[str, Any]) -> float:
    """1.5 on a CPU with native bf16 (``machine["bf16"]``), else 2.0 (the issue's targets)."""
    return 1.5 if machine.get("bf16") else 2.0


def _trained(row: dict[str, Any] | None) -> bool:
    """The row's verdict comes from trained weights: the row ran a checkpoint, or the
    checkpoint section decided its guard."""
    if row is None:
        return False
    return str(row.get("weights", "")).startswith("checkpoint") or "checkpoint" in (
        row.get("guard") or {}
    )


def _best_row(res: dict[str, Any], model: str) -> dict[str, Any] | None:
    best = (res.get("best") or {}).get(model)
    if best is None:
        return None
    return next((r for r in res["rows"] if r.get("label") == best["label"]), None)


def speed_verdicts(runs: Sequence[dict[str, Any]], candidates: Sequence[str],
                   baseline: str = "higherhrnet_w32") -> dict[str, Any]:  # fmt: skip
    """Each candidate's best accurate path against the baseline's, over separate perf runs.

    Returns ``{"runs", "machine", "target", "models": {name: {"paths", "total_ratios",
    "network_ratios", "total_range", "network_range", "trained", "passed", "why"}}}``; a ratio
    is baseline total (network) ms over the candidate's. ``passed`` needs at least
    :data:`MIN_RUNS` runs, every run at or above the target and every verdict trained.
    """
    if not runs:
        raise ValueError("speed_verdicts: no perf runs")
    machine = runs[0]["machine"]
    target = speed_target(machine)
    out: dict[str, Any] = {"runs": len(runs), "machine": machine.get("isa_kind") or machine.get("cpu"),
                           "target": target, "baseline": baseline, "models": {}}  # fmt: skip
    for name in candidates:
        totals, nets, paths, trained = [], [], [], True
        for res in runs:
            cand, base = _best_row(res, name), _best_row(res, baseline)
            if cand is None or base is None:
                totals.append(None)
                nets.append(None)
                paths.append(None)
                trained = False
                continue
            totals.append(round(base["total_ms"] / cand["total_ms"], 3))
            nets.append(round(base["network_ms"] / cand["network_ms"], 3))
            paths.append(f"{cand['label']} vs {base['label']}")
            trained = trained and _trained(cand) and _trained(base)
        got = [t for t in totals if t is not None]
        why = []
        if len(got) < MIN_RUNS:
            why.append(f"{len(got)} run(s) with both best paths, {MIN_RUNS} needed")
        if got and min(got) < target:
            why.append(f"slowest run {min(got):.2f}x < {target}x")
        if not trained:
            why.append("not every verdict is from a trained checkpoint")
        out["models"][name] = {
            "paths": paths,
            "total_ratios": totals,
            "network_ratios": nets,
            "total_range": [min(got), max(got)] if got else None,
            "network_range": [min(n for n in nets if n is not None),
                              max(n for n in nets if n is not None)] if got else None,
            "trained": trained,
            "passed": not why,
            "why": "; ".join(why) or "met in every run",
        }  # fmt: skip
    return out


def add_mac_bounds(res: dict[str, Any], rates: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Add ``mac_bound`` (:func:`~fusepose.benchmark.limits.row_limit`) to every row of a perf
    result that has GMACs and a network time, and ``dense_rates`` to the result; in place."""
    res["dense_rates"] = rates
    for row in res["rows"]:
        if row.get("gmacs") and row.get("network_ms"):
            row["mac_bound"] = row_limit(row["gmacs"], row["precision"], row["network_ms"], rates)
    return res


def _x(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}x"


def verdict_markdown(v: dict[str, Any]) -> str:
    """The verdict table: one line per candidate, ratios of every run and their range."""
    lines = [f"Target on this CPU ({v['machine']}): >= {v['target']}x end to end against "
             f"{v['baseline']}'s best accurate path, in each of {v['runs']} separate runs.", "",
             "| model | best paths (run 1) | end to end, per run | range | network range | "
             "trained guards | verdict |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, d in v["models"].items():
        per_run = ", ".join(_x(t) for t in d["total_ratios"])
        rng = d["total_range"] and f"{d['total_range'][0]:.2f}-{d['total_range'][1]:.2f}x"
        nrng = d["network_range"] and f"{d['network_range'][0]:.2f}-{d['network_range'][1]:.2f}x"
        lines.append(f"| {name} | {d['paths'][0] or '-'} | {per_run} | {rng or '-'} | "
                     f"{nrng or '-'} | {'yes' if d['trained'] else 'no'} | "
                     f"{'**met**' if d['passed'] else 'missed'}: {d['why']} |")  # fmt: skip
    return "\n".join(lines) + "\n"
