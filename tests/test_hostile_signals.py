"""Corpus, class "signals": a kill at the worst moment leaves no half file under a final name,
and SIGTERM keeps the finished results as Ctrl-C does.

A real process gets the real signal, sent from inside at a chosen point (a patched function
calls ``os.kill`` on itself), so the moment is exact and the test fast: SIGKILL between the
ONNX graph and its metadata (``fusepose export``, the ``--backend auto`` cache), SIGTERM after
the first few images of a folder (``fusepose predict``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_helpers import SHARED, cli, tiny_files

import fusepose

SRC = Path(fusepose.__file__).resolve().parents[1]  # the package under test (its checkout)

# SIGKILL at the moment the exported graph is on disk and its fusepose metadata is not
_KILL_AT_METADATA = """
import os, signal, sys
import fusepose.export.package as package
def _kill(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
package.write_metadata = _kill
"""


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_files(tmp_path_factory)


def _python(code: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _cli_code(argv: list) -> str:
    return ("import sys\nfrom fusepose.cli.main import main\n"
            f"sys.exit(main({[str(a) for a in argv]!r}))\n")  # fmt: skip


def _has_metadata(path: Path) -> bool:
    import onnx

    return any(p.key.startswith("fusepose.") for p in onnx.load(str(path)).metadata_props)


def test_a_kill_during_export_leaves_no_file_under_the_final_name(tiny, tmp_path, capsys):
    """SIGKILL after the graph is written and before its metadata: no ``m.onnx`` (a file
    without its description would load as another model or not at all); the rerun exports."""
    out = tmp_path / "out" / "m.onnx"
    killed = _python(_KILL_AT_METADATA + _cli_code(["export", tiny["lm"], "-o", out]), tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists()
    assert all(p.name.startswith(".") for p in out.parent.iterdir())  # only a temporary name
    rc, _out, err = cli(["export", tiny["lm"], "-o", out], capsys)
    assert rc == 0 and _has_metadata(out), err
    assert [p.name for p in out.parent.iterdir()] == [
        "m.onnx"
    ]  # the killed writer's temporary went


def test_the_next_write_removes_a_dead_writers_temporaries_only(tmp_path):
    """Temporaries carry their writer's process id: a complete write of ``r.json`` removes the
    ones of a process that is gone, keeps a live writer's and those of another file."""
    import os
    import subprocess
    import sys

    from fusepose.files import write_text_atomic

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)  # fmt: skip
    orphan = tmp_path / f".r.json.{dead}.abc.tmp"
    live = tmp_path / f".r.json.{os.getppid()}.def.tmp"
    other = tmp_path / f".r.json.sha256.{dead}.ghi.tmp"
    for p in (orphan, live, other):
        p.write_text("half")
    write_text_atomic(tmp_path / "r.json", "{}")
    assert (tmp_path / "r.json").read_text() == "{}"
    assert not orphan.exists() and live.exists() and other.exists()


_AUTO = """
from fusepose.inference.auto import choose_path
from fusepose.inference.backends import InferencePath
from fusepose.inference.predictor import Predictor
from fusepose.modelfile import load_model
path = {path!r}
pred = Predictor(path)
module, _desc = load_model(path)
choose_path(module=module, model_file=path, desc=pred.description, pipeline=pred.pipeline,
            runs=1, candidates=[InferencePath("torch"), InferencePath("onnx")],
            cache_dir={auto!r})
"""


def test_a_kill_during_the_auto_cache_export_is_not_trusted_next_time(tiny, tmp_path, monkeypatch):
    """``--backend auto`` killed while exporting into its cache: the next run does not use
    the half-written entry (which lacks its metadata): it exports again, every candidate
    builds, and the cache then holds only complete files."""
    auto = tmp_path / "auto"
    code = _AUTO.format(path=str(tiny["lm"]), auto=str(auto))
    killed = _python(_KILL_AT_METADATA + code, tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    import fusepose.inference.backends as backends

    monkeypatch.setattr(backends, "CACHE", tmp_path / ".cache" / "fusepose")  # $HOME's, above
    exec(code, {})  # the next run, in this process
    folder = tmp_path / ".cache" / "fusepose" / "exports"
    exports = [p for p in folder.glob("*.onnx") if not p.name.startswith(".")]
    assert exports and all(_has_metadata(p) for p in exports), exports
    # the killed writer's temporary went with the next complete write of the same entry
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    (report_file,) = auto.glob("*.json")
    rows = json.loads(report_file.read_text())["candidates"]
    assert [r["label"] for r in rows if "error" in r] == [], rows
    assert all(r.get("passed") for r in rows), rows


def _folder(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    src = sorted(SHARED.glob("*.jpg"))
    for i in range(n):
        shutil.copy(src[i % len(src)], folder / f"{i:03d}.jpg")
    return folder


# SIGTERM to itself while the 3rd image is being turned into results
_TERM_AT_THIRD = """
import os, signal
from fusepose.structures import PoseResult
_to_coco, _seen = PoseResult.to_coco, set()
def _count(self, *args, **kwargs):
    _seen.add(id(self))
    if len(_seen) == 3:
        os.kill(os.getpid(), signal.{sig})
    return _to_coco(self, *args, **kwargs)
PoseResult.to_coco = _count
"""


@pytest.mark.parametrize("sig,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_a_folder_keeps_the_finished_results(tiny, tmp_path, sig, code):
    """SIGTERM (``kill``, a container stop, a scheduler) mid-folder ends like Ctrl-C: exit
    128 + the signal, and the results of the finished images are written, each drawn."""
    folder = _folder(tmp_path, 12)
    out, vis = tmp_path / "res.json", tmp_path / "vis"
    argv = ["predict", tiny["lm"], "--source", folder, "--save-json", out, "--save-vis", vis,
            "--score-thr", "0"]  # fmt: skip
    run = _python(_TERM_AT_THIRD.format(sig=sig) + _cli_code(argv), tmp_path)
    assert run.returncode == code, run.stderr[-2000:]
    assert out.is_file(), run.stderr[-2000:]
    names = {r["file_name"] for r in json.loads(out.read_text())}
    drawn = {p.name for p in vis.iterdir()}
    assert 2 <= len(drawn) < 12 and names <= drawn, (names, drawn)
    assert "Traceback" not in run.stderr
