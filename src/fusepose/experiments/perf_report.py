"""The performance report: markdown tables from a ``run_perf`` result, and the files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fusepose.benchmark.verdict import MIN_RUNS, verdict_markdown
from fusepose.family import FAMILIES
from fusepose.files import write_json_atomic, write_text_atomic
from fusepose.progress import wrap_prose

__all__ = ["SECTIONS", "to_markdown", "write_outputs"]


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _x(a: Any, b: Any = None) -> str:
    """``"1.23x"`` or ``"1.23x / 4.56x"``; ``"-"`` when missing."""
    if a is None:
        return "-"
    return f"{a:.2f}x" if b is None else f"{a:.2f}x / {b:.2f}x"


def to_markdown(res: dict[str, Any]) -> str:
    """The README table plus the extra sections (:data:`SECTIONS`), as markdown; prose is
    wrapped at 100 characters (markdown joins a paragraph's lines), a table row is one line."""
    cfg = res["config"]
    lines = [line for section in SECTIONS for line in section(res, cfg)]
    return wrap_prose(lines) + "\n"


def _main(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The machine, the table of every row, what its columns mean, what this CPU skips."""
    m = res["machine"]
    crops = max((r["people"] for r in res["rows"]
                 if r["kind"] in FAMILIES and FAMILIES[r["kind"]].needs_boxes), default=0)  # fmt: skip
    kind = f"**{m['isa_kind']}** CPU, " if m.get("isa_kind") else ""
    lines = [
        f"Machine: {kind}{m['cpu']} ({', '.join(m['isa'])}), {m['logical_cpus']} logical CPUs; "
        f"{cfg['threads']} threads, batch 1, fp32 unless stated; Python {m['python']}, "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}, "
        f"OpenCV {m['opencv']}{', OpenVINO ' + m['openvino'] if m.get('openvino') else ''}. "
        f"Image {Path(res['image']).name} "
        f"({res['image_size'][1]}x{res['image_size'][0]}), decode on {res['decode_maps']}; "
        f"medians of {cfg['runs']} interleaved runs, {res['date_utc']} UTC.",
        "",
    ]
    header = ["model", "backend", "params (M)", "GMACs", "input", "preprocess ms", "network ms",
              "decode ms", "total ms", "fps",
              f"speed-up vs {cfg['baseline']} (total / network)", "guard"]  # fmt: skip
    bounds = any(r.get("mac_bound") for r in res["rows"])
    header += ["MAC-bound ms (network / bound)"] if bounds else []
    rows = []
    for r in res["rows"]:
        be = r["backend"] + ("" if r["precision"] == "fp32" else f" {r['precision']}")
        be += " whole" if r.get("int8_scope") == "whole" else ""
        if r["kind"] == "peer":
            rows.append([r["model"], "onnx (peer, network only)", "-", "-",
                         f"{r['input_size'][0]}x{r['input_size'][1]}", "-",
                         f"{r['network_ms']:.1f}", "-", f"{r['total_ms']:.1f}", f"{r['fps']:.2f}",
                         "-", "-"] + (["-"] if bounds else []))  # fmt: skip
            continue
        rows.append([
            r["model"], be, f"{r['params_m']:.2f}", f"{r['gmacs']:.2f}",
            f"{r['input_size'][0]}x{r['input_size'][1]}", f"{r['preprocess_ms']:.1f}",
            f"{r['network_ms']:.1f}", f"{r['decode_ms']:.1f}", f"{r['total_ms']:.1f}",
            f"{r['fps']:.2f}", _x(r["speedup_total"], r["speedup_network"]), _guard(r),
        ] + ([_mac_bound(r)] if bounds else []))  # fmt: skip
    lines += _table(header, rows)
    lines += [
        "",
        "GMACs: true conv MACs (transposed conv on its input grid); top-down rows run "
        f"one crop per person ({crops} crops); speed-ups against the baseline's fp32 row on "
        "the same backend. Weights: "
        f"{_weights(res)}. Guard: decoded keypoints against the model's fp32 reference row on "
        "the COCO images (median / 90th percentile px, people matched); *ckpt*: the verdict of "
        "the trained checkpoint (AP within 0.01 of fp32, median <= 0.5 px, p90 <= 2 px).",
    ]
    if res.get("skipped"):
        why = sorted({f"{d['backend']} {d['precision']}: {d['why']}" for d in res["skipped"]})
        lines += ["", "Not run on this CPU: " + "; ".join(why) + "."]
    return lines


def _best(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The fastest path per model whose guard passed."""
    lines: list[str] = []
    if res.get("best"):
        rows = [[name, d["label"], f"{d['total_ms']:.1f}", f"{d['network_ms']:.1f}",
                 _x(d.get("speedup_vs_baseline_onnx_fp32")), _x(d.get("speedup_vs_baseline_best"))]
                for name, d in res["best"].items()]  # fmt: skip
        lines += [""] + _table(
            ["model", "fastest path whose guard passed", "total ms", "network ms",
             f"speed-up vs {cfg['baseline']} ONNX fp32 (total)",
             f"vs {cfg['baseline']}'s best (total)"], rows)  # fmt: skip
    undecided = sorted({r["model"] for r in res.get("rows", []) if r.get("kind") != "peer"}
                       - set(res.get("best") or {}))  # fmt: skip
    if undecided:
        lines += ["", f"No fastest path decided for {', '.join(undecided)}: no path passed its "
                  "guard on a trained checkpoint (`fusepose perf --checkpoints DIR`)."]  # fmt: skip
    return lines


def _ratios(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Eager / ORT, torch.compile / ORT, the INT8 speed-up, decode / network."""
    lines: list[str] = []
    if res.get("ratios"):
        rows = [[name, _x(d.get("torch_over_onnx_network")),
                 _x(d.get("compiled_over_onnx_network")),
                 _x(d.get("int8_speedup_network"), d.get("int8_speedup_total")),
                 _f(d.get("decode_over_network"), 3)]
                for name, d in res["ratios"].items()]  # fmt: skip
        lines += [""] + _table(
            ["model", "eager / ORT (network)", "torch.compile / ORT (network)",
             "INT8 speed-up (network / total)", "decode / network (ORT, flip off)"],
            rows)  # fmt: skip
    return lines


def _flip(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Decode with flip off and on."""
    lines: list[str] = []
    if res.get("flip"):
        rows = [[name, k, f"{v['network_ms']:.1f}", f"{v['decode_ms']:.1f}",
                 f"{v['decode_over_network']:.3f}", v["people"]]
                for name, d in res["flip"].items() for k, v in d.items()]  # fmt: skip
        lines += [""] + _table(
            ["model", "flip", "network ms", "decode ms", "decode / network", "people"], rows
        )
    return lines


def _threads(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """ONNX Runtime at 1 and N threads."""
    lines: list[str] = []
    if res.get("threads"):
        keys = [k for k in next(iter(res["threads"].values())) if k.endswith("_ms")]
        rows = [[name, *(f"{d[k]:.1f}" for k in keys), _x(d.get("scaling"))]
                for name, d in res["threads"].items()]  # fmt: skip
        head = ["model (ORT network)", *(k.replace("_threads_ms", " thread(s) ms") for k in keys)]
        lines += [""] + _table([*head, "scaling"], rows)
    return lines


def _int8(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The INT8 models' calibrations."""
    lines: list[str] = []
    for name, scopes in (res.get("int8") or {}).items():
        for scope, d in scopes.items():
            lines += ["", f"INT8 {name} ({scope} scope): calibration {d['calibration']}."]
    return lines


def _int8_checkpoint(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Every path's AP on a trained checkpoint."""
    lines: list[str] = []
    if res.get("int8_checkpoint"):
        d = res["int8_checkpoint"]
        if d.get("resize") == "letterbox":
            geom = f"letterboxed {d['input_size'][0]}x{d['input_size'][1]}"
        else:
            geom = f"short side {d['input_size'][0]}"
        lines += ["", f"INT8 on a trained checkpoint ({Path(d['checkpoint']).name}, "
                  f"{geom}, the 4 COCO samples): AP eager fp32 "
                  f"{d['AP_torch_fp32']:.3f}, ONNX fp32 {d['AP_onnx_fp32']:.3f}, ONNX INT8 "
                  f"{d['AP_onnx_int8']:.3f}; keypoints INT8 vs fp32 mean {_f(d['int8_mean_px'], 2)}"
                  f" px (median {_f(d.get('int8_median_px'), 2)} px, "
                  f"{_f(d.get('int8_share_over_10px'), 3)} of the joints moved > 10 px), max "
                  f"{d['int8_max_px']:.2f} px over {d['joints']} joints."]  # fmt: skip
        rows = [[k, _f(g.get("AP"), 3), _f(g.get("median_px"), 2), _f(g.get("p90_px"), 2),
                 g.get("joints"), "pass" if g["passed"] else "FAIL", g["why"]
                 + (" (bf16 emulated: accuracy only)" if g.get("emulated") else "")]
                for k, g in (d.get("paths") or {}).items()]  # fmt: skip
        if rows:
            lines += ["", f"Every path on the checkpoint (reference ONNX fp32, AP "
                      f"{d['AP_onnx_fp32']:.3f}):", ""]  # fmt: skip
            lines += _table(["path", "AP", "median px", "p90 px", "joints", "guard", "why"], rows)
        if d.get("unavailable"):
            lines += [
                "",
                "Not measured: " + "; ".join(f"{k}: {v}" for k, v in d["unavailable"].items()),
            ]
    return lines


def _peak(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Peak MAC rates and the FLOP-bound limits."""
    lines: list[str] = []
    if res.get("peak"):
        p = res["peak"]
        rates = ", ".join(f"{k} {v} GMAC/s" for k, v in p["rates_gmac_s"].items())
        rows = [[name, f"{d['dense_gmacs']:.3f}", f"{d['depthwise_gmacs']:.3f}",
                 f"{d['limit_ms']:.1f}", _f(d.get("network_ms")), _x(d.get("over_limit"))]
                for name, d in p["models"].items()]  # fmt: skip
        lines += ["", f"Peak rates ({p['threads']} threads, ORT): {rates}.", ""]
        lines += _table(["model", "dense GMACs", "depthwise GMACs",
                         "FLOP-bound limit ms (all MACs at peak)", "ORT network ms", "x limit"],
                        rows)  # fmt: skip
    return lines


def _mac_bound(r: dict[str, Any]) -> str:
    """``"12.3 (4.56x)"``: the row's MAC-bound time and network / bound; ``"-"`` without one."""
    b = r.get("mac_bound")
    if not b:
        return "-"
    return f"{b['limit_ms']:.1f} ({_x(b.get('over_limit'))})"


def _dense_rates(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The best dense rate per precision behind the MAC-bound column."""
    rates = res.get("dense_rates")
    if not rates:
        return []
    best = []
    for prec, probes in rates.items():
        if probes:
            probe, rate = max(probes.items(), key=lambda kv: kv[1])
            best.append(f"{prec} {rate:.1f} GMAC/s ({probe})")
    return ["", "MAC-bound: the row's GMACs at the best dense rate of its precision measured in "
            f"this run ({cfg['threads']} threads): {', '.join(best)}; INT8 rows against the bf16 "
            "rate where there is one, else fp32. Network / bound is how far the row is from "
            "running every MAC at that rate."]  # fmt: skip


def _throughput(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Images/s of N single-thread streams beside latency mode."""
    t = res.get("throughput")
    if not t or not t.get("models"):
        return []
    n = t["streams"]
    rows = [[name, d["label"], f"{d['latency']['latency_ms']:.1f}",
             f"{d['latency']['images_per_s']:.2f}", f"{d['streams']['latency_ms']:.1f}",
             f"{d['streams']['images_per_s']:.2f}", _x(d["gain"])]
            for name, d in t["models"].items()]  # fmt: skip
    lines = ["", f"Throughput: each model's fastest accurate path on an exported file, {t['frames']} "
             f"frames (the COCO images repeated), decode on the {t['decode_maps']}: one process at "
             f"{t['latency_threads']} threads (latency mode) against {n} single-thread streams "
             "(processes)." + (f" Not streamed (top-down: person boxes per frame): "
                               f"{', '.join(t['not_streamed'])}." if t.get("not_streamed")
                               else ""), ""]  # fmt: skip
    lines += _table(["model", "path", f"latency ms ({t['latency_threads']} threads)",
                     "images/s (latency mode)", f"ms per image in a stream ({n} streams)",
                     f"images/s ({n} streams)", "gain"], rows)  # fmt: skip
    return lines


def _verdict(res: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Issue 22's verdict line of this run (``fusepose perf --verdict`` combines runs)."""
    if not res.get("verdict"):
        return []
    return ["", "Speed verdict of this run alone (issue 22: the ratio is read as the range over "
            f"{MIN_RUNS} separate runs, `fusepose perf --verdict R1.json R2.json R3.json`; only "
            "paths whose guard was judged on a trained checkpoint count):", "",
            *verdict_markdown(res["verdict"]).splitlines()]  # fmt: skip


# the sections in their order: each (result, result["config"]) -> markdown lines
SECTIONS: tuple[Callable[[dict[str, Any], dict[str, Any]], list[str]], ...] = (
    _main, _dense_rates, _best, _verdict, _ratios, _flip, _threads, _throughput, _int8,
    _int8_checkpoint, _peak,
)  # fmt: skip


def _guard(r: dict[str, Any]) -> str:
    g = r.get("guard") or {}
    if g.get("reference"):
        return "reference"
    if r.get("guard_passed") is None:
        return "-"
    verdict = "pass" if r["guard_passed"] else "FAIL"
    if r.get("guard_weights") == "random":  # judged on random weights: decides nothing
        verdict += " on random weights"
    if "checkpoint" in g:
        return f"{verdict} (ckpt)"
    if g.get("median_px") is None:
        return f"{verdict} (no joints)"
    return f"{verdict} ({g['median_px']:.2f} / {g['p90_px']:.2f} px)"


def _weights(res: dict[str, Any]) -> str:
    seen = dict.fromkeys(f"{r['model']}: {r['weights']}" for r in res["rows"] if r.get("weights"))
    return "; ".join(seen) or "-"


def write_outputs(res: dict[str, Any], json_path: str | None, md_path: str | None) -> None:
    """Write the JSON and / or markdown files (parent folders created, atomically)."""
    if json_path:
        write_json_atomic(json_path, res, indent=2)
    if md_path:
        write_text_atomic(md_path, to_markdown(res))
