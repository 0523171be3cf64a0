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
  about accuracy, so a path whose guard passed on them does not count: a row counts when its
  ``guard_weights`` key names trained weights, :func:`guard_trained`).
- :func:`run_verdict`: the same over perf JSON files (``fusepose perf --verdict R1.json R2.json
  R3.json``), candidates and baseline read from the runs (:func:`verdict_candidates`).
- :func:`add_mac_bounds`: each row's MAC-bound time at the best dense rate of its precision
  measured in the same run (:mod:`fusepose.benchmark.limits`) and the row's ratio to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusepose.benchmark.limits import row_limit
from fusepose.errors import ConfigError, DataError
from fusepose.files import read_json, write_json_atomic, write_text_atomic

__all__ = ["MIN_RUNS", "add_mac_bounds", "guard_trained", "load_runs", "run_verdict",
           "speed_target", "speed_verdicts", "verdict_candidates", "verdict_markdown",
           "write_verdict"]  # fmt: skip

MIN_RUNS = 3


def speed_target(machine: dict[str, Any]) -> float:
    """1.5 on a CPU with native bf16 (``machine["bf16"]``), else 2.0 (the issue's targets)."""
    return 1.5 if machine.get("bf16") else 2.0


def guard_trained(row: dict[str, Any] | None) -> bool:
    """The row's guard was judged on a trained checkpoint: its ``guard_weights`` key names
    trained weights (anything but empty or ``random...``). A row without the key is a
    random-weight row: its guard passing says nothing about accuracy."""
    if row is None:
        return False
    gw = row.get("guard_weights")
    return bool(gw) and not str(gw).lower().startswith("random")


def _best_row(res: dict[str, Any], model: str) -> tuple[dict[str, Any] | None, bool]:
    """The model's best accurate path for the verdict and whether it counts: the fastest row
    whose guard passed on a trained checkpoint (counts), else the run's ``best`` row (shown,
    does not count)."""
    ok = [r for r in res["rows"] if r.get("model") == model and r.get("guard_passed")
          and (r.get("total_ms") or 0) > 0 and guard_trained(r)]  # fmt: skip
    if ok:
        return min(ok, key=lambda r: r["total_ms"]), True
    best = (res.get("best") or {}).get(model)
    if best is None:
        return None, False
    return next((r for r in res["rows"] if r.get("label") == best["label"]), None), False


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
            (cand, cand_ok), (base, base_ok) = _best_row(res, name), _best_row(res, baseline)
            if cand is None or base is None:
                totals.append(None)
                nets.append(None)
                paths.append(None)
                trained = False
                continue
            totals.append(round(base["total_ms"] / cand["total_ms"], 3))
            nets.append(round(base["network_ms"] / cand["network_ms"], 3))
            paths.append(f"{cand['label']} vs {base['label']}")
            trained = trained and cand_ok and base_ok
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


def verdict_candidates(res: dict[str, Any]) -> tuple[list[str], str]:
    """The models a perf run judges against its baseline: every model of the run's config of
    the baseline's kind (bottom-up against HigherHRNet-W32), the baseline excepted."""
    cfg = res.get("config") or {}
    baseline = cfg.get("baseline") or "higherhrnet_w32"
    kinds = {r["model"]: r.get("kind") for r in res["rows"]}
    base_kind = kinds.get(baseline)
    models = dict.fromkeys(cfg.get("models") or kinds)
    return [m for m in models if m != baseline and kinds.get(m) == base_kind], baseline


def load_runs(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The perf JSONs of separate runs, checked: each a ``fusepose perf`` result, no file or run
    (``date_utc``) twice, one baseline and one CPU kind (ISA kind and bf16) in all (a range over different CPUs would
    mix two verdicts)."""
    if not paths:
        raise ConfigError("--verdict: give the JSON files of separate `fusepose perf` runs")
    seen: dict[Path, str] = {}
    runs = []
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise ConfigError(f"--verdict {p}: given twice (the runs must be separate)")
        seen[key] = p
        res = read_json(p, "perf JSON")
        missing = [k for k in ("rows", "machine", "config") if not isinstance(res, dict)
                   or k not in res]  # fmt: skip
        if missing:
            raise DataError(f"{p}: not a `fusepose perf --json` file (no {', '.join(missing)})")
        runs.append(res)
    dates: dict[str, str] = {}
    for p, res in zip(paths, runs, strict=True):
        date = res.get("date_utc")
        if date and date in dates:
            raise ConfigError(f"--verdict {p}: the same run as {dates[date]} (both {date} UTC); "
                              "the verdict needs separate runs")  # fmt: skip
        dates.setdefault(date, p)
    first, where = runs[0], paths[0]
    kind0 = (first["machine"].get("isa_kind"), bool(first["machine"].get("bf16")))
    for p, res in zip(paths[1:], runs[1:], strict=True):
        if res["config"].get("baseline") != first["config"].get("baseline"):
            raise ConfigError(f"{p}: baseline {res['config'].get('baseline')!r}, {where} has "
                              f"{first['config'].get('baseline')!r}: one baseline per verdict")  # fmt: skip
        kind = (res["machine"].get("isa_kind"), bool(res["machine"].get("bf16")))
        if kind != kind0:
            raise ConfigError(f"{p}: measured on a {kind[0]} CPU (bf16 {kind[1]}), {where} on "
                              f"{kind0[0]} (bf16 {kind0[1]}): one CPU kind per verdict")  # fmt: skip
    return runs


def run_verdict(paths: Sequence[str]) -> dict[str, Any]:
    """Issue 22's verdict over the perf JSON files ``paths`` (:func:`speed_verdicts`): the
    candidates are every model of the runs' configs of the baseline's kind."""
    runs = load_runs(paths)
    candidates: dict[str, None] = {}
    for res in runs:
        candidates.update(dict.fromkeys(verdict_candidates(res)[0]))
    baseline = verdict_candidates(runs[0])[1]
    if not candidates:
        raise ConfigError(f"--verdict {paths[0]}: no model of {baseline}'s kind besides it to "
                          "judge (run perf with --models lmfnet lmfnet_deploy)")  # fmt: skip
    v = speed_verdicts(runs, list(candidates), baseline)
    v["files"] = [str(p) for p in paths]
    return v


def write_verdict(v: dict[str, Any], json_path: str | None, md_path: str | None) -> None:
    """Write the verdict as JSON and / or markdown (:func:`verdict_markdown`)."""
    if json_path:
        write_json_atomic(json_path, v, indent=2)
    if md_path:
        write_text_atomic(md_path, verdict_markdown(v))
