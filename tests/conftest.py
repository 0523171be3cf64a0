"""Shared fixtures. Real sample data lives in ../shared/data beside the repository
(override with FUSEPOSE_SHARED_DATA)."""

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


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run two at a time on two cores (pytest -n 2): one thread each avoids oversubscription.
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
    whichever xdist worker asks first (the others wait on a file lock): its ``best.pth``."""
    from filelock import FileLock

    commands = [c for b in readme_blocks() for c in b["commands"]]
    cmd = next(c for c in commands if c.startswith(f"fusepose train {config} "))
    out = cmd.split("--out ", 1)[1].split()[0]
    best = ws / out / "best.pth"
    with FileLock(str(ws.parent / f"{config}.lock")):
        if not best.is_file():
            proc = run_readme(cmd, ws)
            assert proc.returncode == 0, (cmd, proc.stderr[-3000:])
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
