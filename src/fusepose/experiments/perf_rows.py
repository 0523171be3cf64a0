"""The rows of the performance table and their verdicts: what ``fusepose perf`` measures
(:class:`PerfConfig`), one row per model x backend x precision (:class:`Row`), each row's
accuracy guard (decoded keypoints against its model's fp32 reference row, or the trained
checkpoint's AP), and the fastest path per model whose guard passed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusepose.data.io import read_image
from fusepose.inference.boxes import whole_image_box
from fusepose.inference.guard import guard
from fusepose.modelfile import describe
from fusepose.structures import PoseResult

__all__ = ["PerfConfig", "Row", "best_paths", "checkpoint_guards", "row_guards"]

DEFAULT_MODELS = ("lmfnet", "higherhrnet_w32", "sfm_coco")


@dataclass
class PerfConfig:
    """What ``run_perf`` measures. ``input_size``: bottom-up (H, W) of the fixed export."""

    models: Sequence[str] = DEFAULT_MODELS
    baseline: str = "higherhrnet_w32"
    backends: Sequence[str] = ("onnx", "torch", "openvino")
    precisions: Sequence[str] = ("fp32", "bf16", "int8")
    threads: int = 2
    runs: int = 10
    warmup: int = 2
    image: str | None = None
    input_size: tuple[int, int] = (512, 512)
    int8: Sequence[str] = ("lmfnet",)
    int8_calibration: int = 4
    flip_section: bool = True
    threads_section: bool = True
    peak_section: bool = True
    raw_torch: bool = False
    workdir: str = str(Path.home() / ".cache" / "fusepose" / "perf")
    weights: dict[str, str] = field(default_factory=dict)
    int8_checkpoint: str | None = None
    # DIR of trained guard checkpoints (DIR/MODEL/best.pth, trained where missing): every
    # model's verdicts on trained weights (fusepose.experiments.perf_checkpoints)
    checkpoints: str | None = None
    # time the checkpoints' own networks (a guard recipe may train a reduced variant at its
    # own input) instead of the registered architectures at the table's input, whose rows
    # then take the verdicts their paths got on the trained checkpoints
    time_checkpoints: bool = False
    peers: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    # issue 22: every row's MAC-bound time (dense rates measured in the run); N single-thread
    # streams' images/s beside latency (0: off; spawns processes, so opt-in)
    mac_bound: bool = True
    streams: int = 0


# ------------------------------------------------------------------------------ rows


@dataclass
class Row:
    """One table row: a model on one backend at one precision."""

    model: str
    backend: str
    precision: str = "fp32"
    kind: str = ""
    input_size: list[int] = field(default_factory=list)
    params_m: float = 0.0
    gmacs: float = 0.0
    gmacs_repo: float = 0.0
    preprocess_ms: float = 0.0
    network_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0
    total_min_ms: float = 0.0
    fps: float = 0.0
    speedup_total: float | None = None
    speedup_network: float | None = None
    people: int = 0
    int8_scope: str | None = None
    weights: str = ""
    guard: dict[str, Any] | None = None
    guard_passed: bool | None = None
    # "checkpoint": the verdict was judged on trained weights; "random": on random weights
    # (such a row never decides ``best``; ``fusepose perf --checkpoints DIR``)
    guard_weights: str = "random"

    @property
    def label(self) -> str:
        prec = "" if self.precision == "fp32" else " " + self.precision
        scope = f" {self.int8_scope}" if self.int8_scope in ("whole", "nncf") else ""
        return f"{self.model} [{self.backend}{prec}{scope}]"


def _guard_images(path: Path) -> list[Path]:
    """The benchmark image and the other COCO images beside it."""
    return sorted({path, *path.parent.glob("*.jpg")})


def row_guards(rows: list[Row], predictors: Sequence[Any], images: Sequence[Path]) -> None:
    """Each row's accuracy guard (:func:`fusepose.inference.guard.guard`): its decoded people on
    ``images`` (network outputs, whole-image boxes, no score threshold) against its model's fp32
    reference row (ONNX Runtime, else PyTorch, else the first fp32 row). Sets ``row.guard`` and
    ``row.guard_passed``."""
    decoded: dict[int, list[PoseResult]] = {}

    def people(i: int) -> list[PoseResult]:
        if i not in decoded:
            pred = predictors[i]
            hook, pred.output_hook = pred.output_hook, None
            try:
                decoded[i] = [pred.predict_frame(read_image(p), boxes=whole_image_box(
                    read_image(p)), score_thr=0.0) for p in images]  # fmt: skip
            finally:
                pred.output_hook = hook
        return decoded[i]

    for i, row in enumerate(rows):
        if row.kind == "peer":
            continue
        ref = next((j for j, r in enumerate(rows) if r.model == row.model and r.precision == "fp32"
                    and r.backend == "onnx"), None)  # fmt: skip
        if ref is None:  # else PyTorch fp32, else any fp32 row (e.g. --backends openvino)
            fp32 = [j for j, r in enumerate(rows) if r.model == row.model and r.precision == "fp32"]
            ref = next((j for j in fp32 if rows[j].backend == "torch"), fp32[0] if fp32 else None)
        if ref is None:  # no fp32 row of this model to judge against
            continue
        if ref == i:
            row.guard, row.guard_passed = {"reference": True, "passed": True}, True
            continue
        row.guard = guard(people(ref), people(i))
        row.guard_passed = bool(row.guard["passed"])


# perf row (backend, precision, int8 scope) -> key of the checkpoint section's paths
_CHECKPOINT_KEYS = {
    ("onnx", "int8", "auto"): "onnx_int8", ("onnx", "int8", "whole"): "onnx_int8_whole",
    ("openvino", "fp32", None): "openvino_fp32", ("openvino", "bf16", None): "openvino_bf16",
    ("openvino", "int8", "auto"): "openvino_int8", ("torch", "bf16", None): "torch_bf16",
    ("openvino", "int8", "whole"): "openvino_int8_whole", ("torch", "fp32", None): "torch_fp32",
    ("torch-raw", "fp32", None): "torch_fp32", ("torch-compile", "fp32", None): "torch_fp32",
    ("torch-compile", "bf16", None): "torch_bf16",
}  # fmt: skip


def checkpoint_guards(rows: list[Row], section: dict[str, Any]) -> None:
    """Where the trained checkpoint of the section measured a row's path (its model), that
    verdict (AP within 0.01 of fp32, keypoints median <= 0.5 px, p90 <= 2 px) decides
    ``row.guard_passed``; the random-weight guard stays in ``row.guard``."""
    name = describe(section["checkpoint"]).model
    for row in rows:
        key = _CHECKPOINT_KEYS.get((row.backend, row.precision, row.int8_scope))
        g = section.get("paths", {}).get(key) if row.model == name and key else None
        if g is not None:
            row.guard = {**(row.guard or {}), "checkpoint": g}
            row.guard_passed = bool(g["passed"])


def best_paths(rows: list[Row], models: Sequence[str], baseline: str) -> dict[str, Any]:
    """Per model the fastest row (end to end) whose guard passed on trained weights
    (``guard_weights == "checkpoint"``), and for each model its speed-up against the
    baseline's fp32 ONNX Runtime row and against the baseline's best."""
    out: dict[str, Any] = {}
    for name in models:
        ok = [r for r in rows if r.model == name and r.guard_passed and r.total_ms > 0
              and r.guard_weights == "checkpoint"]  # fmt: skip
        if ok:
            b = min(ok, key=lambda r: r.total_ms)
            out[name] = {"label": b.label, "total_ms": b.total_ms, "network_ms": b.network_ms}
    base_ort = next((r for r in rows if r.model == baseline and r.backend == "onnx"
                     and r.precision == "fp32"), None)  # fmt: skip
    for d in out.values():
        if base_ort is not None:
            d["speedup_vs_baseline_onnx_fp32"] = round(base_ort.total_ms / d["total_ms"], 3)
        if baseline in out:
            d["speedup_vs_baseline_best"] = round(out[baseline]["total_ms"] / d["total_ms"], 3)
    return out
