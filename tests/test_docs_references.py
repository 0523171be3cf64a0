"""Every file a reader is pointed to is in the repository.

Scanned: ``README.md`` and every text file under ``src/``, ``docs/`` and ``tests/`` (this file
excepted: its docstring shows the forms it rejects). Three rules, one test each:

1. Markdown links. In a ``.md`` file, a link or image ``[text](target)`` whose target is not a
   URL must name a file that exists, relative to the ``.md`` file's folder. A ``#anchor``
   (``[x](docs/design.md#layers)`` or ``[x](#sources)``) must be a heading of that file.
2. Named Markdown files. Anywhere (comments, docstrings, strings, YAML headers), a mention of a
   ``.md`` file must resolve inside the repository: a path with a folder
   (``docs/reconstruction.md``) from the repository root (in a ``.md`` file also from its own
   folder); a bare name (``design.md``) must be the name of a file of the repository, or one of
   the output files the code writes (``GENERATED_NAMES``). ``NAME.md#anchor`` must name a
   heading of that file.
3. No numbered section citations: ``§`` followed by a digit cites a section number of a
   document the reader has to guess and that a re-ordering silently breaks. Cite a heading
   anchor (``docs/reconstruction.md#ghost-block``) or, for a paper, its "Sec. 3" / "Table 2".
4. Repository paths. In the documents that point contributors at files (``PATH_CHECKED``), a
   path from the repository root (``src/...``, ``tests/...``, ``docs/...``, ``configs/...``,
   ``scripts/...``) must exist, and ``tests/FILE.py::test_name`` must name a test of that
   file. A path with a placeholder (``src/fusepose/cli/<module>.py``) names a file to create
   and is skipped. (Other documents also name files of the repositories they cite.)
5. docs/contributing.md names the path of every package of ``tests/test_layers.py``'s
   ``LAYERS``, so its table of where each concept lives covers the whole package.

Anchors are GitHub's: the heading text lower-cased, everything but letters, digits, ``_``,
``-`` and spaces removed, spaces turned into ``-``; a repeated heading gets ``-1``, ``-2``.
URLs (``scheme://...``) are never checked, and ``../shared/...`` (the data beside the
repository) is outside the rules because only ``.md`` files and links are checked.

A failure lists ``file:line: reference: problem``; fix the reference (or add the heading).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("src", "docs", "tests")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".html",
                 ".js", ".css", ".json"}  # fmt: skip
SKIP_DIRS = {"__pycache__", ".git", ".venv", "runs", "build", "dist", "node_modules"}
# Markdown files the code writes into a run folder: named in messages, never in the repository.
GENERATED_NAMES = {
    "ablation.md": "written by `fusepose ablate` (experiments/ablation.py)",
    "perf.md": "the example output of `fusepose perf --markdown perf.md`",
    "verdict.md": "the example output of `fusepose perf --verdict ... --markdown verdict.md`",
}

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
MD_NAME = re.compile(
    r"(?<![\w./-])((?:\.{1,2}/)*(?:[\w.-]+/)*[\w-][\w.-]*\.md)(?:#([\w-]+))?(?!\w)"
)
NUMBERED_SECTION = re.compile(r"§\s*\d")
# rule 4: the documents whose root-relative paths are checked; a path followed by a
# placeholder character (<name>, {model}, *) is a file to create and is skipped
PATH_CHECKED = ("docs/contributing.md", "docs/design.md")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:src|tests|docs|configs|scripts)/[\w./-]*)(?:::(\w+))?([<{*]?)"
)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def _walk(folder: Path):
    for path in sorted(folder.iterdir()):
        if path.name in SKIP_DIRS or path.name.endswith(".egg-info") or path.is_symlink():
            continue
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path


@cache
def scanned_files() -> tuple[Path, ...]:
    """README.md and the text files under SCANNED_DIRS, this file excepted."""
    files = [ROOT / "README.md"]
    for name in SCANNED_DIRS:
        files += [p for p in _walk(ROOT / name) if p.suffix in TEXT_SUFFIXES]
    return tuple(p for p in files if p.resolve() != Path(__file__).resolve())


@cache
def repository_files() -> dict[str, tuple[Path, ...]]:
    """Every file of the repository by name (for bare ``NAME.md`` mentions); symlinks, hidden
    folders and SKIP_DIRS are left out."""
    by_name: dict[str, list[Path]] = {}
    for top in sorted(ROOT.iterdir()):
        if top.name.startswith(".") or top.name in SKIP_DIRS or top.is_symlink():
            continue
        for path in _walk(top) if top.is_dir() else [top]:
            by_name.setdefault(path.name, []).append(path)
    return {name: tuple(paths) for name, paths in by_name.items()}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading text (inline code marks and punctuation dropped)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@cache
def anchors(md_file: Path) -> frozenset[str]:
    """The anchors of a Markdown file: its headings (outside code fences) and HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in md_file.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        found.update(HTML_ANCHOR.findall(line))
        m = HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def _lines(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return
    for number, line in enumerate(text.splitlines(), 1):
        yield f"{path.relative_to(ROOT)}:{number}", URL.sub(" ", line)


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def _check_anchor(target: Path, anchor: str | None) -> str | None:
    if not anchor:
        return None
    if target.suffix != ".md":
        return f"#{anchor} points into a file that is not Markdown"
    if anchor not in anchors(target):
        return f"no heading with anchor #{anchor} in {target.relative_to(ROOT)}"
    return None


def link_problem(source: Path, target: str) -> str | None:
    """Rule 1 for one link target; None when it resolves."""
    if target.startswith(("mailto:", "tel:")) or re.match(r"[A-Za-z][\w+.-]*:", target):
        return None
    path_part, _, anchor = target.partition("#")
    resolved = (source.parent / path_part).resolve() if path_part else source
    if not _inside(resolved):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file in the repository"
    return _check_anchor(resolved, anchor or None)


def name_problem(source: Path, name: str, anchor: str | None) -> str | None:
    """Rule 2 for one mentioned ``.md`` name; None when it resolves."""
    if "/" not in name:
        if name in GENERATED_NAMES and not anchor:
            return None
        matches = repository_files().get(name)
        if not matches:
            return f"no file named {name} in the repository"
        return _check_anchor(matches[0], anchor)
    bases = [ROOT] + ([source.parent] if source.suffix == ".md" else [])
    for base in bases:
        resolved = (base / name).resolve()
        if _inside(resolved) and resolved.is_file():
            return _check_anchor(resolved, anchor)
    return "no such file in the repository (paths are read from the repository root)"


def test_markdown_links_resolve():
    problems = []
    for path in scanned_files():
        if path.suffix != ".md":
            continue
        for where, line in _lines(path):
            for target in MD_LINK.findall(line):
                problem = link_problem(path, target)
                if problem:
                    problems.append(f"{where}: ({target}): {problem}")
    assert not problems, "\n".join(problems)


def test_named_markdown_files_exist():
    problems = []
    for path in scanned_files():
        for where, line in _lines(path):
            for name, anchor in MD_NAME.findall(line):
                problem = name_problem(path, name, anchor or None)
                if problem:
                    ref = f"{name}#{anchor}" if anchor else name
                    problems.append(f"{where}: {ref}: {problem}")
    assert not problems, "\n".join(problems)


def test_no_numbered_section_citations():
    problems = [
        f"{where}: {line.strip()[:80]}: cite a heading anchor (docs/FILE.md#anchor) or a "
        "paper's Sec./Table instead of a section number"
        for path in scanned_files()
        for where, line in _lines(path)
        if NUMBERED_SECTION.search(line)
    ]
    assert not problems, "\n".join(problems)


def path_problem(path: str, test_name: str | None) -> str | None:
    """Rule 4 for one root-relative path (and ``::test_name``); None when it resolves."""
    target = ROOT / path.rstrip(".,;:")
    if not _inside(target) or not target.exists():
        return "no such file or folder in the repository"
    if test_name and not re.search(rf"^\s*def {test_name}\(", target.read_text(), re.M):
        return f"{target.relative_to(ROOT)} has no test {test_name}"
    return None


def test_repository_paths_exist():
    problems = []
    for rel in PATH_CHECKED:
        for where, line in _lines(ROOT / rel):
            for path, test_name, placeholder in REPO_PATH.findall(line):
                problem = None if placeholder else path_problem(path, test_name or None)
                if problem:
                    problems.append(f"{where}: {path}: {problem}")
    assert not problems, "\n".join(problems)


def test_contributing_names_every_package_of_the_layers():
    from test_layers import LAYERS

    text = (ROOT / "docs" / "contributing.md").read_text(encoding="utf-8")
    paths = {
        pkg: "src/fusepose/__init__.py" if pkg == "__init__" else f"src/fusepose/{pkg}"
        for layer in LAYERS
        for pkg in layer
    }
    missing = [
        f"{pkg} ({path}.py or {path}/)" if pkg != "__init__" else f"{pkg} ({path})"
        for pkg, path in paths.items()
        if not re.search(rf"`{re.escape(path)}(?:\.py|/)?[`/]", text)
    ]
    assert not missing, f"docs/contributing.md, 'Where each concept lives' lacks: {missing}"


def test_the_checker_sees_what_it_should():
    """The rules themselves: a missing file, a missing anchor and a numbered § are caught; real
    references pass. (Hand-written cases, so a checker that passes everything fails here.)"""
    readme = ROOT / "README.md"
    assert link_problem(readme, "docs/reconstruction.md") is None
    assert link_problem(readme, "docs/reconstruction.md#ghost-block") is None
    assert "anchor #no-such" in link_problem(readme, "docs/reconstruction.md#no-such")
    assert "no such file" in link_problem(readme, "docs/architecture.md")
    assert "outside" in link_problem(readme, "../shared/docs/architecture.md")
    assert link_problem(readme, "https://example.org/x.md") is None
    src = ROOT / "src" / "fusepose" / "geometry.py"
    assert name_problem(src, "design.md", None) is None
    assert name_problem(src, "docs/design.md", "layers") is None
    assert "no file named architecture.md" in name_problem(src, "architecture.md", None)
    assert "no such file" in name_problem(src, "../shared/docs/architecture.md", None)
    assert name_problem(src, "ablation.md", None) is None  # an output the code writes
    line = "HigherHRNet test-time resize (architecture.md §2.6 step 1)."
    assert MD_NAME.findall(line) == [("architecture.md", "")]
    assert NUMBERED_SECTION.search(line)
    assert MD_NAME.findall("see docs/reconstruction.md#ghost-block, or README.md.") == [
        ("docs/reconstruction.md", "ghost-block"),
        ("README.md", ""),
    ]
    assert slug("HigherHRNet-W32 (the baseline) — exact") == "higherhrnet-w32-the-baseline--exact"
    assert slug("Checkpoints (`fusepose.modelfile`; `fusepose.engine.checkpoint` re-exports)") == (
        "checkpoints-fuseposemodelfile-fuseposeenginecheckpoint-re-exports"
    )
    # rule 4: a missing file, a missing test and a placeholder path
    assert path_problem("tests/test_layers.py", "test_imports_point_down") is None
    assert path_problem("src/fusepose/models/", None) is None
    assert "no such file" in path_problem("src/fusepose/models/nothing.py", None)
    assert "has no test test_nothing" in path_problem("tests/test_layers.py", "test_nothing")
    found = REPO_PATH.findall("see `tests/test_x.py::test_y`, `src/fusepose/cli/<verb>.py`.")
    assert found == [("tests/test_x.py", "test_y", ""), ("src/fusepose/cli/", "", "<")]
