"""Shared fixtures. Real sample data lives in ../shared/data beside the repository
(override with FUSEPOSE_SHARED_DATA).

Two tiers (README, Makefile): ``make test`` runs everything not marked ``slow`` (the tiny
registered ``test_*`` models show that training, export, serving and every verb run and
compose; at most 20 s a test), ``make test-all`` adds the ``slow`` learning proofs. The
collection order below starts the long shared trainings first and runs the files that wait on
them last, so both xdist workers stay busy (``--dist loadfile --no-loadscope-reorder``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("FUSEPOSE_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


SHARED_DATA = _shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real sample data not found at {SHARED_DATA} (set FUSEPOSE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def coco_dir(shared_data: Path) -> Path:
    return shared_data / "mmpose_coco"


# ------------------------------------------------------------------------------ the tiers

# Files whose first test trains a shared checkpoint (the SFM run is the longest): first, one per
# worker. Files that use a shared checkpoint without training it first: last.
TRAIN_FIRST = ("test_overfit_sfm.py", "test_overfit.py")
TRAINED = {"overfit_lmfnet", "overfit_sfm", "readme_ws"}
FAST_TEST_SECONDS = 20.0


def pytest_collection_modifyitems(config, items):
    def file_rank(name: str, uses_trained: bool) -> int:
        if name in TRAIN_FIRST:
            return TRAIN_FIRST.index(name)
        return len(TRAIN_FIRST) + int(uses_trained)

    waits = {it.path.name for it in items if TRAINED & set(it.fixturenames)}
    ranks = {it.path.name: file_rank(it.path.name, it.path.name in waits) for it in items}
    # stable: within a file, the tests that wait on a shared training go last
    items.sort(key=lambda it: (ranks[it.path.name], bool(TRAINED & set(it.fixturenames))))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The fast tier's budget: name every test that took over 20 s (its setup included)."""
    if "not slow" not in (config.getoption("markexpr") or ""):
        return
    took: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for r in reports:
            if getattr(r, "when", None) in ("setup", "call", "teardown"):
                took[r.nodeid] = took.get(r.nodeid, 0.0) + r.duration
    over = sorted(((t, n) for n, t in took.items() if t > FAST_TEST_SECONDS), reverse=True)
    if over:
        terminalreporter.write_sep("=", f"fast-tier tests over {FAST_TEST_SECONDS:.0f} s "
                                   "(mark them slow or make them cheaper)", yellow=True)  # fmt: skip
        for t, n in over:
            terminalreporter.write_line(f"{t:6.1f}s {n}")


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run two at a time on two cores (pytest -n 2): one thread each avoids oversubscription.
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------ CPU kinds


@pytest.fixture
def force_isa(monkeypatch):
    """``force_isa(bf16=..., vnni=...)``: ``fusepose.cpu.has_bf16`` / ``has_vnni`` (and every
    copy a fusepose module imported) answer as on another CPU kind for this test, so the
    branches an ISA decides run on any machine. Only the decision moves: kernels still run
    this CPU's instructions (PyTorch emulates bf16 where it is not native)."""
    import sys

    import fusepose.cpu as cpu

    def force(*, bf16: bool | None = None, vnni: bool | None = None) -> None:
        for name, value in (("has_bf16", bf16), ("has_vnni", vnni)):
            if value is None:
                continue
            current, fake = getattr(cpu, name), (lambda v=value: v)
            for module in list(sys.modules.values()):
                if (getattr(module, "__name__", "").startswith("fusepose")
                        and getattr(module, name, None) is current):  # fmt: skip
                    monkeypatch.setattr(module, name, fake)

    return force


# ------------------------------------------------------------------------------ the README

README = REPO / "README.md"
SKIP_MARK = "<!-- readme-test: skip:"


def readme_blocks() -> list[dict]:
    """The README's fenced ``bash`` and ``python`` blocks, in order: ``{"lang", "code",
    "commands" (bash: one per logical line, continuations joined, comments dropped),
    "skip" (the reason given by a ``<!-- readme-test: skip: ... -->`` line just before the
    block, else None)}``."""
    blocks, lines, i = [], README.read_text().splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```bash") or line.startswith("```python"):
            lang = line[3:].strip()
            prev = next((x for x in reversed(lines[:i]) if x.strip()), "")
            skip = prev.split(SKIP_MARK, 1)[1].rstrip("->").strip() if SKIP_MARK in prev else None
            j = lines.index("```", i + 1)
            code = lines[i + 1 : j]
            commands, current = [], ""
            for raw in code if lang == "bash" else []:
                text = raw.split("  #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
                if not text.strip():
                    continue
                current += text.rstrip("\\").strip() + " "
                if not text.endswith("\\"):
                    commands.append(current.strip())
                    current = ""
            blocks.append({"lang": lang, "code": "\n".join(code), "commands": commands,
                           "skip": skip})  # fmt: skip
            i = j
        i += 1
    return blocks


@pytest.fixture(scope="session")
def readme_ws(shared_tmp) -> Path:
    """A scratch checkout layout where the README's commands run as written: ``configs`` and
    ``../shared/data`` resolve like in the repository, ``runs/`` is fresh."""
    base = shared_tmp / "readme"
    ws = base / "repo"
    ws.mkdir(parents=True, exist_ok=True)
    for link, target in ((ws / "configs", REPO / "configs"), (base / "shared", SHARED_DATA.parent)):
        if not link.exists():
            try:
                link.symlink_to(target, target_is_directory=True)
            except FileExistsError:  # another xdist worker made it
                pass
    return ws


def run_readme(command: str, ws: Path, timeout: int = 1200):
    """Run one README command with bash in the workspace, ``fusepose`` from this environment."""
    import subprocess
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "FUSEPOSE_SHARED_DATA": str(ws.parent / "shared" / "data")}  # fmt: skip
    return subprocess.run(["bash", "-c", command], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def readme_train(config: str, ws: Path) -> Path:
    """Run the README's ``fusepose train CONFIG ...`` command as written, once per test session
    whichever xdist worker asks first (the others wait on a file lock): its ``best.pth``.

    Done means the command exited 0 (a marker beside the lock), not that a ``best.pth``
    exists: a run killed by its timeout leaves the best.pth of an earlier validation, which
    the next worker to ask would take for the trained model; it starts afresh instead."""
    import shutil

    from filelock import FileLock

    commands = [c for b in readme_blocks() for c in b["commands"]]
    cmd = next(c for c in commands if c.startswith(f"fusepose train {config} "))
    out = cmd.split("--out ", 1)[1].split()[0]
    best, done = ws / out / "best.pth", ws.parent / f"{config}.done"
    with FileLock(str(ws.parent / f"{config}.lock")):
        if not done.is_file():
            shutil.rmtree(ws / out, ignore_errors=True)
            proc = run_readme(cmd, ws, timeout=3600)
            assert proc.returncode == 0, (cmd, proc.stderr[-3000:])
            done.touch()
    return best


# ------------------------------------------------------------------------------ trained models


CONFIGS = REPO / "configs"


def overfit_config(name: str, coco_dir: Path, *extra: str):
    """A bundled overfit config pointed at the shared COCO samples, quiet."""
    from fusepose.engine.config import load_config

    ann = coco_dir / "test_coco.json"
    return load_config(CONFIGS / name, [
        f"data.train_ann={ann}", f"data.train_images={coco_dir}",
        f"data.val_ann={ann}", f"data.val_images={coco_dir}",
        "runtime.progress=false", *extra,
    ])  # fmt: skip


def _trained(config: str, coco_dir: Path, ws: Path) -> dict:
    """The README's training command for ``config`` (run once per session), plus the AP of
    the same network untrained and of the trained checkpoint, both through the evaluation
    loop every verb uses: ``{"ckpt", "AP_before", "AP_after"}``."""
    import torch

    from fusepose.engine.trainer import Trainer, evaluate_model
    from fusepose.inference import Predictor, evaluate_dataset

    ckpt = readme_train(config, ws)
    cfg = overfit_config(f"{config}.yaml", coco_dir)
    torch.manual_seed(cfg.train.seed)
    untrained = Trainer(cfg, run_dir=ws.parent / f"untrained_{config}")
    before = evaluate_model(untrained.model, cfg, untrained.device)
    boxes = "gt" if untrained.kind == "top_down" else "auto"
    after = evaluate_dataset(Predictor(ckpt), coco_dir / "test_coco.json", coco_dir, boxes=boxes)
    return {"ckpt": str(ckpt), "AP_before": before["AP"], "AP_after": after["AP"]}


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory) -> Path:
    """A folder all xdist workers of this session share."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def overfit_lmfnet(coco_dir, readme_ws) -> dict:
    """The README's ``lmfnet_coco4-256_1xb4-150e`` run (about 3 minutes on one core)."""
    return _trained("lmfnet_coco4-256_1xb4-150e", coco_dir, readme_ws)


@pytest.fixture(scope="session")
def overfit_sfm(coco_dir, readme_ws) -> dict:
    """The README's ``sfm_coco4-128x96_1xb4-160e`` run (about 5 minutes on one core)."""
    return _trained("sfm_coco4-128x96_1xb4-160e", coco_dir, readme_ws)


# ------------------------------------------------------------------------------ tiny models

TEST_CONFIGS = REPO / "tests" / "configs"
TINY_CONFIGS = {"test_lmfnet": "test_lmfnet_coco4-64x96_1xb4-4e.yaml",
                "test_sfm": "test_sfm_coco4-64x48_1xb4-4e.yaml"}  # fmt: skip


def _tiny_run(model: str, coco_dir: Path, shared: Path) -> Path:
    """``fusepose train`` (in this process) of the tiny registered ``model`` with its fast-tier
    config, once per session (the xdist workers share it through a file lock): its run folder
    (``best.pth``, ``last.pth``).

    The training starts from the registered model's random inference weights (He init,
    BatchNorm calibrated, outputs of magnitude 1: what ``--random-weights`` runs) and moves
    them a little: a few steps cannot teach 13 k parameters to find people, but from these
    weights every verb has people to decode, so the checks that verbs agree are not about
    empty results."""
    import torch
    from cli_helpers import fusepose
    from filelock import FileLock

    from fusepose.inference import Predictor

    run = shared / f"tiny_{model}"
    with FileLock(str(shared / f"tiny_{model}.lock")):
        if not (run / "best.pth").is_file():
            start = shared / f"tiny_{model}_start.pth"
            pred = Predictor(model, allow_random_weights=True, optimize=False)
            torch.save(pred.model.state_dict(), start)
            ann = coco_dir / "test_coco.json"
            sets = [f"data.train_ann={ann}", f"data.train_images={coco_dir}",
                    f"data.val_ann={ann}", f"data.val_images={coco_dir}",
                    f"model.weights={start}"]  # fmt: skip
            fusepose("train", TEST_CONFIGS / TINY_CONFIGS[model], "--out", run,
                     *(a for kv in sets for a in ("--set", kv)))  # fmt: skip
    return run


@pytest.fixture(scope="session")
def tiny_lmfnet(coco_dir, shared_tmp) -> Path:
    """The fast tier's trained bottom-up checkpoint: ``test_lmfnet`` on the 4 COCO images."""
    return _tiny_run("test_lmfnet", coco_dir, shared_tmp) / "best.pth"


@pytest.fixture(scope="session")
def tiny_sfm(coco_dir, shared_tmp) -> Path:
    """The fast tier's trained top-down checkpoint: ``test_sfm`` on the 12 COCO person crops."""
    return _tiny_run("test_sfm", coco_dir, shared_tmp) / "best.pth"
