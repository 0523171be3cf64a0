"""GPU self-check: ``python -m fusepose.benchmark.gpu_check`` (``scripts/gpu_check.sh``).

On a CUDA machine, for each registered model (bottom-up and top-down):

1. trains it for ``--steps`` optimiser steps on a generated synthetic people set with the
   training engine (:class:`~fusepose.engine.trainer.Trainer`: AMP, channels-last), and
   records images/s, the last loss and the peak GPU memory (a non-finite loss fails);
2. compares the trained weights' outputs on CUDA (fp32, TF32 off) with the same weights on
   CPU (``max_rel`` = largest difference / largest output);
3. exports them to ONNX (:func:`~fusepose.export.package.export_model`), checks ONNX Runtime
   against PyTorch, and runs the :class:`~fusepose.inference.Predictor` on CUDA on the bundled
   photo, next to the same predictor on CPU.

Then one training step under a one-process DDP group (NCCL, SyncBN). The report is one JSON
object on stdout (``--out`` writes it too); the exit status is 1 if a check failed. Without
CUDA it prints a ``{"skipped": true, ...}`` report and exits 0. ``--device cpu --tiny`` runs
the same code on CPU with reduced architectures (how the test suite exercises it).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from fusepose.assets import sample_image
from fusepose.data.io import read_image
from fusepose.data.synth import generate_synthetic
from fusepose.engine.config import config_from_dict
from fusepose.engine.trainer import Trainer
from fusepose.errors import FusePoseError
from fusepose.export.package import compare_onnx, export_model
from fusepose.family import BOTTOM_UP, TOP_DOWN
from fusepose.files import dumps_json, write_text_atomic
from fusepose.inference.predictor import Predictor
from fusepose.modelfile import default_description
from fusepose.models import InferenceWrapper, get_model_info, list_models

log = logging.getLogger(__name__)

# per family: the reduced architecture of --tiny (every block type kept), the default input
# side (None: the model's own size), batch and training resize, and whether the DDP check
# prefers it
_PLAN = {
    BOTTOM_UP: {"tiny": {"modules": [1, 1, 1], "blocks_per_branch": 1, "head_num_blocks": 1},
                "size": 256, "batch": 8, "resize": "letterbox", "ddp": True},
    TOP_DOWN: {"tiny": {}, "size": None, "batch": 32, "resize": "crop", "ddp": False},
}  # fmt: skip
_REL_TOL = 1e-3  # CUDA fp32 vs CPU, relative to the largest output


def _config(name: str, data: dict[str, Path], run_dir: Path, args: argparse.Namespace,
            **train: Any) -> Any:  # fmt: skip
    info = get_model_info(name)
    plan = _PLAN[info.family]
    size = args.size or plan["size"]
    hw = [size, size] if size else list(info.input_size)
    overrides = dict(plan["tiny"]) if args.tiny else {}
    return config_from_dict({
        "model": {"name": name, "num_keypoints": 17, "overrides": overrides, "init": "scratch"},
        "data": {"train_ann": str(data["train"]), "train_images": str(data["images"]),
                 "input_size": hw, "skeleton": "coco", "num_workers": args.workers,
                 "resize": plan["resize"]},
        "train": {"epochs": 1, "batch_size": args.batch or plan["batch"],
                  "amp": True, "channels_last": True, "max_steps_per_epoch": args.steps,
                  "log_interval": max(args.steps // 4, 1), **train},
        "optim": {"name": "adam", "lr": 1e-3},
        "schedule": {"name": "constant"},
        "eval": {"interval": 0},
        "runtime": {"device": args.device, "tensorboard": False, "progress": False,
                    "out_dir": str(run_dir)},
    }, f"gpu_check:{name}")  # fmt: skip


def _outputs_agree(model: torch.nn.Module, device: torch.device, hw: tuple[int, int]) -> float:
    """Largest |CUDA - CPU| over the deployed outputs, relative to the largest |CPU| output."""
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(0))
    cpu = InferenceWrapper(copy.deepcopy(model).float().cpu()).eval()
    dev = InferenceWrapper(model).eval()
    with torch.inference_mode():
        ref = [t.float() for t in cpu(x)]
        got = [t.float().cpu() for t in dev(x.to(device))]
    diff = max(float((a - b).abs().max()) for a, b in zip(ref, got, strict=True))
    scale = max(float(a.abs().max()) for a in ref)
    return diff / max(scale, 1e-12)


def check_model(name: str, data: dict[str, Path], work: Path, args: argparse.Namespace) -> dict:
    """Train, compare devices, export and predict one model; ``{"ok": bool, ...}``."""
    out: dict[str, Any] = {"kind": get_model_info(name).kind}
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    cfg = _config(name, data, work / "runs", args)
    trainer = Trainer(cfg, run_dir=work / "runs" / name)
    t0 = time.perf_counter()
    result = trainer.fit()
    out["train_seconds"] = round(time.perf_counter() - t0, 2)
    last = result["last"]
    out["train_images_per_s"] = round(float(last["images_per_s"]), 1)
    out["train_loss"] = float(last["loss"])
    out["amp"] = trainer.use_amp
    out["channels_last"] = trainer.memory_format == torch.channels_last
    if cuda:
        out["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    model = trainer.model.eval()
    hw = tuple(int(v) for v in cfg.data.input_size)
    out["device_vs_cpu_max_rel"] = _outputs_agree(model, device, hw)
    ok = np.isfinite(out["train_loss"]) and out["device_vs_cpu_max_rel"] < _REL_TOL
    cpu_model = copy.deepcopy(model).float().cpu().eval()
    desc = default_description(name, num_keypoints=17, overrides=cfg.model.overrides)
    onnx_path = work / f"{name}.onnx"
    export_model(cpu_model, onnx_path, hw, desc=desc)
    onnx = compare_onnx(cpu_model, onnx_path, hw)
    out["onnx_max_rel"] = float(onnx["max_rel"])
    ok = ok and out["onnx_max_rel"] < _REL_TOL
    image = read_image(sample_image())
    boxes = np.array([[150.0, 20.0, 300.0, 400.0]]) if desc.family.needs_boxes else None
    found = {}
    for where, net in (("device", model), ("cpu", cpu_model)):
        predictor = Predictor(net, device=str(device) if where == "device" else "cpu",
                              description=desc, allow_random_weights=True)  # fmt: skip
        found[where] = predictor(image, boxes=boxes, score_thr=0).instances
    out["predict_people"] = {k: len(v) for k, v in found.items()}
    if found["device"] and len(found["device"]) == len(found["cpu"]):
        out["predict_max_px"] = max(
            float(np.abs(a.keypoints - b.keypoints).max())
            for a, b in zip(found["device"], found["cpu"], strict=True)
        )
    out["ok"] = bool(ok)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_ddp(name: str, data: dict[str, Path], work: Path, args: argparse.Namespace) -> dict:
    """One training step of ``name`` under a one-process DDP group (SyncBN on CUDA)."""
    device = torch.device(args.device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    port = _free_port()
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        cfg = _config(name, data, work / "ddp", args, max_steps_per_epoch=1, sync_bn=True)
        trainer = Trainer(cfg, run_dir=work / "ddp" / name)
        wrapped = isinstance(trainer.ddp, torch.nn.parallel.DistributedDataParallel)
        result = trainer.fit()
        loss = float(result["last"]["loss"])
        return {"model": name, "backend": backend, "ddp": wrapped, "loss": loss,
                "ok": bool(wrapped and np.isfinite(loss))}  # fmt: skip
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_checks(args: argparse.Namespace) -> dict[str, Any]:
    """Every check; the report dict (``ok`` = all passed)."""
    device = torch.device(args.device)
    report: dict[str, Any] = {"device": str(device), "torch": torch.__version__,
                              "steps": args.steps, "tiny": bool(args.tiny)}  # fmt: skip
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 for the CPU comparison
        torch.backends.cudnn.allow_tf32 = False
    names = args.models.split(",") if args.models else list_models()
    report["models"] = {}
    with tempfile.TemporaryDirectory(prefix="fusepose-gpu-check-") as tmp:
        work = Path(tmp)
        data = generate_synthetic(work / "synth", args.images, seed=0, size=256, val_fraction=0)
        for name in names:
            log.info("gpu check: %s", name)
            try:
                report["models"][name] = check_model(name, data, work, args)
            except (FusePoseError, RuntimeError) as e:  # a failed check, reported, not raised
                report["models"][name] = {"ok": False, "error": str(e).splitlines()[0]}
        ddp_model = next((n for n in names if _PLAN[get_model_info(n).family]["ddp"]), names[0])
        try:
            report["ddp"] = check_ddp(ddp_model, data, work, args)
        except (FusePoseError, RuntimeError) as e:
            report["ddp"] = {"model": ddp_model, "ok": False, "error": str(e).splitlines()[0]}
    report["ok"] = all(m["ok"] for m in report["models"].values()) and report["ddp"]["ok"]
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fusepose.benchmark.gpu_check",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (tests)")
    p.add_argument("--steps", type=int, default=200, help="training steps per model (200)")
    p.add_argument("--models", default="", help="comma-separated names (default: every model)")
    p.add_argument("--batch", type=int, default=0, help="batch size (default 8 / 32)")
    p.add_argument("--size", type=int, default=0,
                   help="square input side (default 256 bottom-up, the paper's top-down)")  # fmt: skip
    p.add_argument("--images", type=int, default=64, help="synthetic training images (64)")
    p.add_argument("--workers", type=int, default=4, help="data-loader workers (4)")
    p.add_argument("--tiny", action="store_true", help="reduced bottom-up architectures")
    p.add_argument("--out", default="", help="also write the JSON report here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        report: dict[str, Any] = {
            "skipped": True, "ok": True, "torch": torch.__version__,
            "reason": "no CUDA device (torch.cuda.is_available() is False): nothing checked",
        }  # fmt: skip
        print("gpu check skipped: no CUDA device", file=sys.stderr)
    else:
        report = run_checks(args)
    text = dumps_json(report, indent=2)
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
