"""``fusepose models [PATTERN] [--table [--markdown]]``: list the zoo, or measure it."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter")
    parser.add_argument(
        "--table",
        action="store_true",
        help="params and GMACs at each paper's input size beside the paper's figures",
    )
    parser.add_argument("--markdown", action="store_true", help="with --table: a markdown table")
    parser.add_argument(
        "--fvcore",
        action="store_true",
        help="with --table: add fvcore's count (one real CPU forward per row: slow)",
    )


def _fmt(value: object, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def _print_rows(header: list[str], rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    # the last column (free text) is not padded
    print(
        "  ".join(h.ljust(w) for h, w in zip(header[:-1], widths, strict=False)) + "  " + header[-1]
    )
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1])


def run(args: argparse.Namespace) -> int:
    from fusepose.models.registry import get_model_info, zoo_models

    names = zoo_models(args.pattern)
    if not names:
        print(f"no registered model matches {args.pattern!r}")
        return 1
    if not args.table:
        rows = []
        for n in names:
            i = get_model_info(n)
            inp = f"{i.input_size[0]}x{i.input_size[1]}"
            rows.append([n, i.kind, inp, str(i.num_keypoints), i.dataset, i.description])
        _print_rows(["name", "kind", "input", "K", "dataset", "description"], rows, args.markdown)
        return 0

    from tqdm import tqdm

    from fusepose.benchmark.complexity import zoo_table

    table = zoo_table(args.pattern, fvcore=args.fvcore, progress=lambda x: tqdm(x, "models"))
    header = ["name", "input", "params M", "GMACs", "GMACs repo", "GMACs fvcore",
              "paper M", "paper G", "agree", "reason"]  # fmt: skip
    rows = []
    for r in table:
        agree = {True: "yes", False: "NO", None: "-"}[r["agrees"]]
        rows.append([
            r["name"], f"{r['input_size'][0]}x{r['input_size'][1]}", _fmt(r["params_m"], ".3f"),
            _fmt(r["gmacs"]), _fmt(r["gmacs_repo"]), _fmt(r["gmacs_fvcore"]),
            _fmt(r["paper_params_m"]), _fmt(r["paper_gflops"]), agree, r["reason"],
        ])  # fmt: skip
    _print_rows(header, rows, args.markdown)
    print(
        "\nGMACs: FlopCounterMode FLOPs/2 (convs, transposed convs, matmuls); repo: HRNet-repo "
        "convention (transposed conv on its output grid); fvcore: FlopCountAnalysis. Papers' "
        "'GFLOPs' are GMACs. Batch 1, eval, one forward, no flip."
    )
    return 0
