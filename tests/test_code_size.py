"""Size limits of the house rules, counted on the syntax tree of every module of src/fusepose:
no module over 600 lines, no function (or method, nested ones counted on their own) over 100
lines from its ``def`` line to its last line, docstring included, decorators not.

A module or function over its limit is split where its steps separate; ``ALLOWED`` lists the
ones known to be over while that happens, each with the size it may not exceed, and an entry
that is no longer needed fails too, so the list only ever shrinks."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fusepose"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100

# "module path relative to src/fusepose[:qualified function name]" -> the most lines it may have.
ALLOWED: dict[str, int] = {}


def function_lengths(source: str) -> dict[str, int]:
    """Every function of ``source`` by qualified name (``Class.method``, ``outer.inner``): its
    lines from ``def`` to its end."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found[name] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def oversized(modules: dict[str, str]) -> dict[str, int]:
    """``{"path" or "path:function": lines}`` of what is over its limit in ``{path: source}``."""
    over: dict[str, int] = {}
    for path, source in modules.items():
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            over[path] = lines
        for name, n in function_lengths(source).items():
            if n > MAX_FUNCTION_LINES:
                over[f"{path}:{name}"] = n
    return over


def _sources() -> dict[str, str]:
    return {
        p.relative_to(SRC).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(SRC.rglob("*.py"))
    }


def test_no_module_or_function_over_its_limit():
    over = oversized(_sources())
    problems = [
        f"{where}: {n} lines (limit {MAX_FUNCTION_LINES if ':' in where else MAX_MODULE_LINES})"
        for where, n in sorted(over.items())
        if where not in ALLOWED
    ]
    problems += [
        f"{where}: {over[where]} lines, more than the {limit} it was allowed: split it"
        for where, limit in ALLOWED.items()
        if where in over and over[where] > limit
    ]
    problems += [
        f"{where}: within the limits now: remove it from ALLOWED in tests/test_code_size.py"
        for where in ALLOWED
        if where not in over
    ]
    assert not problems, "\n".join(problems)


def test_the_count_sees_what_it_should():
    """Hand-made modules: a 101-line function, a long method, a long nested function and a
    601-line module are caught; 100 lines and a long class of short methods are not."""
    body = "    x = 1\n"

    def fn(name: str, lines: int, indent: str = "") -> str:
        return f"{indent}def {name}():\n" + (indent + body) * (lines - 1)

    assert function_lengths(fn("f", 101)) == {"f": 101}
    assert oversized({"a.py": fn("f", 101)}) == {"a.py:f": 101}
    assert oversized({"a.py": "@decorator\n" + fn("f", 100)}) == {}  # decorators not counted
    method = "class C:\n" + fn("m", 120, "    ")
    assert oversized({"b.py": method}) == {"b.py:C.m": 120}
    short_methods = "class C:\n" + "".join(fn(f"m{i}", 30, "    ") for i in range(5))
    assert oversized({"c.py": short_methods}) == {}  # a 151-line class is not a function
    nested = "def outer():\n" + fn("inner", 105, "    ")
    assert oversized({"d.py": nested}) == {"d.py:outer": 106, "d.py:outer.inner": 105}
    module = "x = 1\n" * 601
    assert oversized({"e.py": module}) == {"e.py": 601}
    assert oversized({"e.py": "x = 1\n" * 600}) == {}
