"""The package layers of docs/design.md hold: every import (module level or inside a function)
points to the same package or to a lower layer, so no package reaches up and no cycle can
hide behind a function-level import."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fusepose"

# Lowest first. A package may import its own modules and those of lower layers only; packages
# of the same layer do not import each other.
LAYERS = [
    {"errors", "assets", "structures", "cpu", "progress", "signals"},
    {"files", "skeletons", "geometry", "limits", "distributed"},  # distributed: ranks, shards, gathers
    {"family"},  # the model families as data (bottom-up / top-down)
    {"annotations", "description"},
    {"evaluation", "models"},  # evaluation never imports models
    {"codecs", "losses", "registry"},
    {"data", "modelcheck"},  # modelcheck: model files checked as data (codecs, models)
    {"export", "visualization"},  # export never imports inference or benchmark
    {"modelfile"},  # loading a model file: below inference and the training engine
    {"inference"},  # inference never imports engine
    {"engine"},
    {"benchmark", "serve"},  # serve: the web app around a Predictor
    {"experiments"},  # the demo, the ablations, the perf table: engine + benchmark + inference
    {"cli", "__init__"},
]
LAYER = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return "__init__" if rel == ("__init__.py",) else rel[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out += [(node.lineno, n) for n in names if n.split(".")[0] == "fusepose"]
    return out


def test_every_package_has_a_layer():
    packages = {_package(p) for p in SRC.rglob("*.py")}
    assert packages <= set(LAYER), sorted(packages - set(LAYER))


def test_imports_point_down():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        pkg = _package(path)
        for line, name in _imports(path):
            parts = name.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            if target == pkg:
                continue
            if LAYER[target] >= LAYER[pkg]:
                bad.append(f"{path.relative_to(SRC)}:{line} ({pkg}) imports {name} ({target})")
    assert not bad, "\n".join(bad)


def test_the_rules_the_issues_name():
    """Spelled out: evaluation never imports models; export imports neither inference nor
    benchmark; inference does not import engine; models see no data, losses or engine."""
    forbidden = {
        "evaluation": {"models", "inference", "engine"},
        "export": {"inference", "benchmark", "engine"},
        "inference": {"engine", "benchmark", "cli"},
        "models": {"data", "losses", "engine", "codecs", "cli"},
        "codecs": {"models"},
    }
    for path in SRC.rglob("*.py"):
        pkg = _package(path)
        for _line, name in _imports(path):
            parts = name.split(".")
            assert not (len(parts) > 1 and parts[1] in forbidden.get(pkg, ())), (path, name)
