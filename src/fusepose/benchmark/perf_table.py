"""The performance table: params, GMACs, latency split, fps and speed-up, side by side.

One call of :func:`run_perf` (CLI: ``fusepose perf``) measures every requested model and
backend *in one process, interleaved run by run* (``fusepose.benchmark.latency.benchmark``), so
a slow-down of the shared machine hits all rows alike and the speed-up column is a ratio of
simultaneous medians. Rows go through the real :class:`~fusepose.inference.Predictor`
(preprocess + network + decode + mapping back), on one real multi-person COCO image.

- Weights are random (seeded) unless ``weights`` are given; bottom-up decode then runs on maps
  rendered from the image's ground truth (``gt_outputs``), so it sees a realistic peak count.
  The network still runs on the real input and is timed.
- ONNX rows use a fixed-shape export of :func:`fusepose.export.optimize.optimize_for_inference`
  (cached in ``workdir``); torch rows run the same optimized module eagerly (``raw_torch``
  adds a row with the unmodified module).
- Extra sections: decode share with flip off / on, ORT 1 vs N threads, the INT8 path (speed and
  keypoint change vs fp32), and a FLOP-bound limit from the measured peak MAC rate.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusepose.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

DEFAULT_MODELS = ("lmfnet", "higherhrnet_w32", "sfm_coco")
# "torch-compile": the eager (optimized, channels-last) module under torch.compile; it is
# compiled during the warmup runs (minutes per model on a small CPU), so it is opt-in.
BACKENDS = ("onnx", "torch", "torch-compile")


@dataclass
class PerfConfig:
    """What ``run_perf`` measures. ``input_size``: bottom-up (H, W) of the fixed export."""

    models: Sequence[str] = DEFAULT_MODELS
    baseline: str = "higherhrnet_w32"
    backends: Sequence[str] = ("onnx", "torch")
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
    seed: int = 0


# ------------------------------------------------------------------------------ machine


def machine_info() -> dict[str, Any]:
    """CPU model, relevant ISA flags, core count and library versions."""
    import cv2
    import onnxruntime
    import torch

    cpu, flags = platform.processor() or "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name") and cpu in ("unknown", "", platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = [
        f
        for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16")
        if f in flags
    ]
    return {
        "cpu": cpu,
        "isa": isa,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "platform": platform.platform(),
    }


def _ort_time(model_bytes: bytes, feeds: dict[str, np.ndarray], threads: int, reps: int) -> float:
    """Median seconds of one ``session.run`` of a tiny ONNX graph."""
    import onnxruntime as ort

    from fusepose.export.optimize import session_options

    sess = ort.InferenceSession(
        model_bytes, session_options(threads), providers=["CPUExecutionProvider"]
    )
    sess.run(None, feeds)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    return float(statistics.median(times))


def measure_peak(threads: int = 2, reps: int = 10) -> dict[str, float]:
    """Measured MAC rates (GMAC/s) of this machine in ONNX Runtime with ``threads`` threads.

    ``matmul``: a 1024^3 fp32 MatMul (the dense upper bound); ``conv1x1``: a 1x1 conv
    128 -> 128 on 64x48 (the dense layer shape of SFM); ``dw3x3``: a 3x3 depthwise conv on
    (1, 192, 64, 48). The FLOP-bound limit of a model is :func:`flop_bound_ms`.
    """
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def graph(nodes, inputs, inits, out_shape):
        g = helper.make_graph(
            nodes, "peak", inputs,
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits,
        )  # fmt: skip
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        return m.SerializeToString()

    out: dict[str, float] = {}
    n = 1024
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = onnx.numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "b")
    m = graph([helper.make_node("MatMul", ["a", "b"], ["y"])],
              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
              [b], [n, n])  # fmt: skip
    out["matmul"] = n**3 / _ort_time(m, {"a": a}, threads, reps) / 1e9

    def conv(c_in: int, c_out: int, k: int, groups: int, hw: tuple[int, int]) -> float:
        w = rng.standard_normal((c_out, c_in // groups, k, k), dtype=np.float32) * 0.05
        x = rng.standard_normal((1, c_in, *hw), dtype=np.float32)
        node = helper.make_node("Conv", ["x", "w"], ["y"], group=groups, pads=[k // 2] * 4)
        mm = graph([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                   [onnx.numpy_helper.from_array(w, "w")], [1, c_out, *hw])  # fmt: skip
        macs = w.size * hw[0] * hw[1]
        return macs / _ort_time(mm, {"x": x}, threads, reps * 3) / 1e9

    out["conv1x1"] = conv(128, 128, 1, 1, (64, 48))
    out["dw3x3"] = conv(192, 192, 3, 192, (64, 48))
    return {k: round(v, 2) for k, v in out.items()}


def mac_classes(model: Any, input_hw: tuple[int, int]) -> dict[str, int]:
    """MACs of one forward split into ``dense`` (groups == 1 convs, transposed convs, linear)
    and ``depthwise`` (grouped convs), from forward hooks at batch 1."""
    import torch
    from torch import nn

    acc = {"dense": 0, "depthwise": 0}

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            macs = mod.weight.numel() * out.shape[2] * out.shape[3]
            acc["dense" if mod.groups == 1 else "depthwise"] += int(macs)
        elif isinstance(mod, nn.ConvTranspose2d):
            acc["dense"] += int(mod.weight.numel() * inp[0].shape[2] * inp[0].shape[3])
        elif isinstance(mod, nn.Linear):
            acc["dense"] += int(mod.weight.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, *input_hw))
    finally:
        for h in handles:
            h.remove()
    return acc


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

    @property
    def label(self) -> str:
        prec = "" if self.precision == "fp32" else " " + self.precision
        return f"{self.model} [{self.backend}{prec}]"


def _image(cfg: PerfConfig):
    from fusepose.benchmark.latency import default_image, gt_people
    from fusepose.inference.sources import read_image

    path = Path(cfg.image) if cfg.image else default_image()
    if path is None:
        raise DataError("no benchmark image: pass --image (the shared COCO sample was not found)")
    if not path.is_file():
        raise DataError(f"{path}: benchmark image not found")
    gt = gt_people(path)
    if gt is None:
        logger.warning(
            "%s: no COCO ground truth beside it; decode runs on the network's maps", path
        )
    return path, read_image(path), gt


def _build(name: str, cfg: PerfConfig):
    """Seeded model (with ``cfg.weights[name]`` if given), eval mode."""
    import torch

    from fusepose.registry import create_model

    torch.manual_seed(cfg.seed)
    try:
        model = create_model(name)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    if name in cfg.weights:
        from fusepose.engine.checkpoint import load_weights

        load_weights(model, cfg.weights[name])
    return model.eval()


def model_input_hw(model: Any, cfg: PerfConfig) -> tuple[int, int]:
    """Bottom-up: ``cfg.input_size``; top-down: the model's own crop size."""
    if model.info.kind == "bottom_up":
        return int(cfg.input_size[0]), int(cfg.input_size[1])
    h, w = model.info.input_size
    return int(h), int(w)


def export_cached(
    model: Any, name: str, hw: tuple[int, int], workdir: Path, tag: str, dynamic: bool = False
) -> Path:
    """Fixed-shape (batch 1) ONNX export of ``model`` in ``workdir``, reused when present.

    The file name holds the model name, size, ``tag`` and a fingerprint of the weights, so a
    stale file is never reused for other weights.
    """
    import hashlib

    import fusepose.export.optimize as optimize_module
    from fusepose.export.package import export_model

    digest = hashlib.sha1(Path(optimize_module.__file__).read_bytes())  # the graph choices
    for k, v in sorted(model.state_dict().items()):
        digest.update(k.encode())
        digest.update(v.detach().cpu().float().numpy().tobytes()[:4096])
    size = "dyn" if dynamic else f"{hw[0]}x{hw[1]}"
    path = workdir / f"{name}_{size}_{tag}_{digest.hexdigest()[:10]}.onnx"
    if not path.is_file():
        t = time.perf_counter()
        export_model(model, path, hw, dynamic=dynamic)
        logger.info("exported %s in %.0f s", path.name, time.perf_counter() - t)
    return path


def _predictor(source: Any, kind_backend: str, cfg: PerfConfig, hw, flip: bool = False,
               threads: int | None = None, compile: bool = False):  # noqa: A002  # fmt: skip
    from fusepose.inference.predictor import Predictor

    size = hw if kind_backend != "top_down" else None
    if isinstance(source, Path):
        return Predictor(backend="onnx", onnx_path=source, num_threads=threads or cfg.threads,
                         flip=flip, input_size=size)  # fmt: skip
    # ``source`` is already the module we want to time: no second optimization pass
    return Predictor(source, num_threads=threads or cfg.threads, flip=flip, input_size=size,
                     allow_random_weights=True, optimize=False, compile=compile)  # fmt: skip


def _hook(pred, gt, boxes, use_gt: bool) -> None:
    from fusepose.inference.gt_outputs import bottom_up_gt_hook, top_down_gt_hook

    if gt is None or not use_gt:
        return
    if pred.kind == "bottom_up":
        pred.output_hook = bottom_up_gt_hook(pred, gt[0])
    else:
        pred.output_hook = top_down_gt_hook(pred, boxes, gt[0])


def _fill(row: Row, res) -> Row:
    s = res.summary()
    for k in ("preprocess_ms", "network_ms", "decode_ms", "total_ms", "total_min_ms"):
        setattr(row, k, round(float(s[k]), 2))
    row.fps = round(1000.0 / row.total_ms, 2) if row.total_ms > 0 else 0.0
    row.people = int(s["people"])
    return row


# ------------------------------------------------------------------------------ keypoints


def matched_keypoint_distances(a, b, min_score: float = 0.1) -> tuple[list[float], int, int]:
    """Pixel distances of the joints of two PoseResults of one image, people matched one to
    one (Hungarian, on the mean distance over the joints both score above ``min_score``).
    Returns ``(distances of the joints both score above min_score, people_a, people_b)``."""
    from scipy.optimize import linear_sum_assignment

    pa = [(i.keypoints, i.keypoint_scores) for i in a.instances]
    pb = [(i.keypoints, i.keypoint_scores) for i in b.instances]
    if not pa or not pb:
        return [], len(pa), len(pb)
    cost = np.full((len(pa), len(pb)), 1e9)
    for i, (ka, sa) in enumerate(pa):
        for j, (kb, sb) in enumerate(pb):
            ok = (sa > min_score) & (sb > min_score)
            if ok.any():
                cost[i, j] = float(np.linalg.norm(ka[ok] - kb[ok], axis=1).mean())
    rows, cols = linear_sum_assignment(cost)
    d: list[float] = []
    for i, j in zip(rows, cols, strict=True):
        ok = (pa[i][1] > min_score) & (pb[j][1] > min_score)
        d.extend(np.linalg.norm(pa[i][0][ok] - pb[j][0][ok], axis=1).tolist())
    return d, len(pa), len(pb)


def match_keypoint_error(a, b, min_score: float = 0.1) -> dict[str, float]:
    """Mean / max pixel distance between the keypoints of two PoseResults of one image.

    People are matched one to one (Hungarian, on the mean distance over the joints both score
    above ``min_score``). Returns ``mean_px``, ``max_px``, ``joints`` compared and the person
    counts ``people_a`` / ``people_b``.
    """
    d, n_a, n_b = matched_keypoint_distances(a, b, min_score)
    out = {"people_a": n_a, "people_b": n_b, "joints": 0, "mean_px": 0.0, "max_px": 0.0}
    if d:
        out.update(joints=len(d), mean_px=float(np.mean(d)), max_px=float(np.max(d)))
    return out


# ------------------------------------------------------------------------------ main


def run_perf(cfg: PerfConfig, progress=None) -> dict[str, Any]:
    """Measure everything in ``cfg``; returns the JSON-able result (see :func:`to_markdown`)."""
    from fusepose.benchmark.complexity import measure_registered
    from fusepose.benchmark.latency import benchmark
    from fusepose.export.optimize import optimize_for_inference

    say = progress or (lambda msg: logger.info("%s", msg))
    if cfg.runs < 1 or cfg.warmup < 0 or cfg.threads < 1:
        raise ConfigError("runs must be >= 1, warmup >= 0 and threads >= 1")
    bad = [b for b in cfg.backends if b not in BACKENDS]
    if bad or not cfg.backends:
        raise ConfigError(f"backends {list(cfg.backends)}: use some of {', '.join(BACKENDS)}")
    models = list(dict.fromkeys([*cfg.models, cfg.baseline] if cfg.baseline else cfg.models))
    workdir = Path(cfg.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path, image, gt = _image(cfg)
    h_img, w_img = image.shape[:2]
    boxes = gt[1] if gt is not None else np.array([[0.0, 0.0, w_img - 1.0, h_img - 1.0]])
    use_gt = not cfg.weights

    rows: list[Row] = []
    preds: list[tuple[str, Any]] = []
    built: dict[str, dict[str, Any]] = {}
    for name in models:
        say(f"preparing {name}")
        model = _build(name, cfg)
        hw = model_input_hw(model, cfg)
        comp = measure_registered(name, [hw])[hw]
        fast = optimize_for_inference(model)
        eager = optimize_for_inference(model, channels_last=True)
        onnx_path = (
            export_cached(fast, name, hw, workdir, "opt") if "onnx" in cfg.backends else None
        )
        built[name] = {
            "model": model,
            "fast": fast,
            "hw": hw,
            "onnx": onnx_path,
            "kind": model.info.kind,
        }
        variants: list[tuple[str, str, Any]] = []
        for backend in cfg.backends:
            variants.append((backend, "fp32", onnx_path if backend == "onnx" else eager))
        if cfg.raw_torch and "torch" in cfg.backends:
            variants.append(("torch-raw", "fp32", model))
        for backend, prec, src in variants:
            pred = _predictor(src, model.info.kind, cfg, hw,
                              compile=backend == "torch-compile")  # fmt: skip
            _hook(pred, gt, boxes, use_gt)
            row = Row(name, backend, prec, model.info.kind, list(hw), round(comp.params / 1e6, 3),
                      round(comp.macs / 1e9, 3), round(comp.macs_repo / 1e9, 3))  # fmt: skip
            rows.append(row)
            preds.append((row.label, pred))

    int8_info: dict[str, Any] = {}
    if "onnx" in cfg.backends:
        for name in cfg.int8:
            if name not in built:
                continue
            say(f"quantizing {name} to INT8")
            b = built[name]
            q_path, calib = int8_model(b["onnx"], b["hw"], cfg)
            b["int8"] = q_path
            pred = _predictor(q_path, b["kind"], cfg, b["hw"])
            _hook(pred, gt, boxes, use_gt)
            base = next(r for r in rows if r.model == name and r.backend == "onnx")
            row = Row(name, "onnx", "int8", base.kind, base.input_size, base.params_m, base.gmacs,
                      base.gmacs_repo)  # fmt: skip
            rows.append(row)
            preds.append((row.label, pred))
            int8_info[name] = {"calibration": calib, "path": str(q_path)}

    say(f"timing {len(preds)} rows x {cfg.runs} runs, interleaved")
    results = benchmark(preds, image, boxes=boxes, runs=cfg.runs, warmup=cfg.warmup)
    for row, res in zip(rows, results, strict=True):
        _fill(row, res)
    for row in rows:
        ref = next((r for r in rows if r.model == cfg.baseline and r.backend == row.backend
                    and r.precision == "fp32"), None)  # fmt: skip
        if ref is not None and row.total_ms > 0:
            row.speedup_total = round(ref.total_ms / row.total_ms, 3)
            row.speedup_network = round(ref.network_ms / row.network_ms, 3)

    out: dict[str, Any] = {
        "command": "fusepose perf",
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "machine": machine_info(),
        "image": str(path),
        "image_size": [h_img, w_img],
        "decode_maps": "ground-truth rendered (random weights)" if use_gt else "network outputs",
        "rows": [asdict(r) | {"label": r.label} for r in rows],
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    ratios: dict[str, Any] = {}
    for name in models:
        onnx_row = next(
            (r for r in rows if r.model == name and r.backend == "onnx" and r.precision == "fp32"),
            None,
        )
        torch_row = next((r for r in rows if r.model == name and r.backend == "torch"), None)
        comp_row = next((r for r in rows if r.model == name and r.backend == "torch-compile"),
                        None)  # fmt: skip
        int8_row = next((r for r in rows if r.model == name and r.precision == "int8"), None)
        entry: dict[str, Any] = {}
        if onnx_row and torch_row:
            entry["torch_over_onnx_network"] = round(torch_row.network_ms / onnx_row.network_ms, 3)
            entry["torch_over_onnx_total"] = round(torch_row.total_ms / onnx_row.total_ms, 3)
        if onnx_row and comp_row:
            entry["compiled_over_onnx_network"] = round(comp_row.network_ms / onnx_row.network_ms,
                                                        3)  # fmt: skip
        if torch_row and comp_row:
            entry["compile_speedup_network"] = round(torch_row.network_ms / comp_row.network_ms, 3)
        if onnx_row and int8_row:
            entry["int8_speedup_network"] = round(onnx_row.network_ms / int8_row.network_ms, 3)
            entry["int8_speedup_total"] = round(onnx_row.total_ms / int8_row.total_ms, 3)
        if onnx_row and onnx_row.kind == "bottom_up":
            entry["decode_over_network"] = round(onnx_row.decode_ms / onnx_row.network_ms, 4)
        if entry:
            ratios[name] = entry
    out["ratios"] = ratios

    if int8_info:
        say("INT8 keypoint change vs fp32")
        for name, info in int8_info.items():
            b = built[name]
            info.update(int8_keypoint_change(b["onnx"], b["int8"], b["hw"], cfg))
        out["int8"] = int8_info
    if cfg.int8_checkpoint:
        from fusepose.benchmark.latency import default_image

        say(f"INT8 AP change with {cfg.int8_checkpoint}")
        img0 = default_image()
        ann = img0.parent / "test_coco.json" if img0 is not None else None
        if ann is None or not ann.is_file():
            raise DataError("--int8-checkpoint needs the shared COCO samples (test_coco.json)")
        out["int8_checkpoint"] = int8_checkpoint_ap(cfg.int8_checkpoint, ann, workdir,
                                                    threads=cfg.threads)  # fmt: skip
    if cfg.flip_section:
        say("decode with flip off / on")
        out["flip"] = flip_section(built, image, gt, boxes, cfg, use_gt)
    if cfg.threads_section and "onnx" in cfg.backends:
        say("ONNX Runtime 1 vs N threads")
        out["threads"] = threads_section(built, cfg)
    if cfg.peak_section:
        say("peak MAC rates and FLOP-bound limits")
        out["peak"] = peak_section(built, cfg)
    return out


def int8_model(fp32_path: Path, hw: tuple[int, int], cfg: PerfConfig) -> tuple[Path, dict]:
    """INT8 QDQ file next to ``fp32_path`` calibrated on the shared COCO images (+ synthetic)."""
    from fusepose.benchmark.latency import default_image
    from fusepose.export.metadata import read_metadata
    from fusepose.export.optimize import calibration_inputs, int8_scope, quantize_int8

    q_path = fp32_path.with_name(fp32_path.stem + "_int8.onnx")
    img = default_image()
    images = sorted(img.parent.glob("*.jpg")) if img is not None else []
    n_syn = max(cfg.int8_calibration - len(images), 0)
    scope = int8_scope(read_metadata(fp32_path).get("model_name"))
    nodes = f"nodes under {scope}" if scope else "all ops but attention"
    calib = {"images": [p.name for p in images], "synthetic": n_syn, "method": "minmax",
             "format": f"QDQ u8 activations / s8 7-bit per-channel weights, {nodes}"}  # fmt: skip
    if not q_path.is_file():
        inputs = calibration_inputs(hw, images, num_synthetic=n_syn, seed=cfg.seed)
        quantize_int8(fp32_path, q_path, inputs)
    return q_path, calib


def int8_keypoint_change(fp32_path: Path, int8_path: Path, hw, cfg: PerfConfig) -> dict[str, Any]:
    """Decoded keypoints of the INT8 model vs the fp32 model on the shared COCO images
    (network outputs, no GT rendering), plus the max abs change of the raw outputs."""
    from fusepose.benchmark.latency import default_image
    from fusepose.inference.sources import read_image

    img = default_image()
    paths = sorted(img.parent.glob("*.jpg")) if img is not None else []
    a = _predictor(fp32_path, "bottom_up", cfg, hw)
    b = _predictor(int8_path, "bottom_up", cfg, hw)
    per_image, dists, joints = [], [], 0
    out_diff = 0.0
    for p in paths:
        im = read_image(p)
        boxes = None
        if a.kind == "top_down":
            boxes = np.array([[0.0, 0.0, im.shape[1] - 1.0, im.shape[0] - 1.0]])
        ra = a.predict_frame(im, boxes=boxes)
        rb = b.predict_frame(im, boxes=boxes)
        err = match_keypoint_error(ra, rb)
        per_image.append({"image": p.name, **err})
        if err["joints"]:
            dists.append(err["mean_px"] * err["joints"])
            joints += err["joints"]
        x = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
        ya, yb = a.runner(x), b.runner(x)
        scale = max(float(np.abs(ya[0]).max()), 1e-12)
        out_diff = max(
            out_diff, max(float(np.abs(u - v).max()) for u, v in zip(ya, yb, strict=True)) / scale
        )
    return {
        "weights": cfg.weights.get(_name_of(a), "random (seeded)"),
        "mean_px": round(sum(dists) / joints, 3) if joints else None,
        "joints": joints,
        "per_image": per_image,
        "max_rel_output_change": round(out_diff, 5),
    }


def checkpoint_eval_input(
    ck: dict[str, Any], fallback_hw: tuple[int, int] = (256, 256)
) -> tuple[int | tuple[int, int], str, str]:
    """The bottom-up test input a checkpoint was validated with during training.

    Returns ``(input_size, resize, source)`` for :class:`~fusepose.inference.Predictor`:
    ``data.resize == "letterbox"`` -> ``((H, W), "letterbox", "checkpoint")`` (the whole image
    letterboxed into the fixed ``data.input_size``, as in training and validation);
    ``data.resize == "crop"`` (HigherHRNet) -> ``(data.input_size[0], "crop", "checkpoint")``
    (short side, like ``fusepose.engine.trainer.predict_coco``). Checkpoints without a training
    config (bare state dicts, converted weights) -> ``(min(fallback_hw), "crop", "default")``.
    """
    conf = ck.get("config") if isinstance(ck, dict) else None
    data = conf.get("data") if isinstance(conf, dict) else None
    size = data.get("input_size") if isinstance(data, dict) else None
    if isinstance(size, list | tuple) and len(size) == 2:
        h, w = int(size[0]), int(size[1])
        resize = str(data.get("resize") or "crop")
        if resize == "letterbox":
            return (h, w), "letterbox", "checkpoint"
        if resize == "crop":
            return h, "crop", "checkpoint"
        raise ConfigError(f"checkpoint data.resize {resize!r}: expected 'crop' or 'letterbox'")
    return int(min(fallback_hw)), "crop", "default"


def int8_checkpoint_ap(
    checkpoint: str | Path,
    ann_file: str | Path,
    workdir: str | Path,
    input_hw: tuple[int, int] = (256, 256),
    threads: int | None = None,
) -> dict[str, Any]:
    """COCO AP of a trained checkpoint in eager fp32, ONNX fp32 (optimized) and ONNX INT8 on
    the images of ``ann_file`` (flip off), plus the decoded keypoint change INT8 vs fp32.

    The input is the one the checkpoint was validated with in training
    (:func:`checkpoint_eval_input`: its ``data.input_size`` / ``data.resize``; a letterboxed
    checkpoint is exported with that fixed shape); checkpoints without a training config use
    the HigherHRNet resize with short side ``min(input_hw)``. Calibration uses the same images,
    warped the same way."""
    from fusepose.engine.checkpoint import load_checkpoint, load_weights
    from fusepose.evaluation.coco import evaluate_coco
    from fusepose.export.optimize import int8_scope, optimize_for_inference, quantize_int8
    from fusepose.inference.predictor import ImageIds, Predictor
    from fusepose.inference.sources import read_image
    from fusepose.registry import create_model

    ck = load_checkpoint(checkpoint)
    conf = ck.get("model_config") or {}
    try:
        model = create_model(ck["model_name"], **(conf.get("overrides") or {}))
    except (KeyError, TypeError) as e:
        raise ConfigError(f"{checkpoint}: cannot build {ck['model_name']!r} ({e})") from None
    load_weights(model, checkpoint)
    model.eval()
    if model.info.kind != "bottom_up":
        raise ConfigError(f"{checkpoint}: --int8-checkpoint supports bottom-up models only")
    ann_file = Path(ann_file)
    data = json.loads(ann_file.read_text())
    paths = [ann_file.parent / im["file_name"] for im in data["images"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{ann_file}: images not found beside it: {missing[:3]}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    import cv2

    from fusepose.data.transforms import normalize

    size, resize, source = checkpoint_eval_input(ck, input_hw)
    # letterbox: fixed-shape export (the Predictor reads it back); HigherHRNet resize: short
    # side -> size, long side -> x64, a dynamic export
    fixed = isinstance(size, tuple)
    fp32 = export_cached(optimize_for_inference(model), f"{ck['model_name']}_ckpt",
                         size if fixed else (size, size), workdir, "opt",
                         dynamic=not fixed)  # fmt: skip
    preds = {
        "torch_fp32": Predictor(model, input_size=size, num_threads=threads),
        "onnx_fp32": Predictor(backend="onnx", onnx_path=fp32, input_size=size,
                               num_threads=threads),
    }  # fmt: skip
    int8 = fp32.with_name(fp32.stem + "_int8.onnx")
    if not int8.is_file():
        calib = []
        for p in paths:
            img = read_image(p)
            m, (w, h) = preds["onnx_fp32"].warp_matrix(img.shape[:2])
            warped = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR)
            calib.append(np.asarray(normalize(warped), dtype=np.float32)[None])
        quantize_int8(fp32, int8, calib)
    preds["onnx_int8"] = Predictor(backend="onnx", onnx_path=int8, input_size=size,
                                   num_threads=threads)  # fmt: skip
    ids = ImageIds(ann_file)
    results: dict[str, list] = {k: [] for k in preds}
    per_image: dict[str, dict] = {k: {} for k in preds}
    for p in paths:
        img = read_image(p)
        iid = ids.by_name[p.name]
        for k, pred in preds.items():
            r = pred.predict_frame(img, image_id=iid)
            per_image[k][p.name] = r
            results[k] += r.to_coco()
    out: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "input_size": list(size) if isinstance(size, tuple) else [size, "short side"],
        "resize": resize,
        "input_source": source,
        "int8_scope": int8_scope(ck["model_name"]) or "whole graph but attention",
    }
    for k, res in results.items():
        out[f"AP_{k}"] = round(float(evaluate_coco(ann_file, res)["AP"]), 4) if res else 0.0
    # people matched once per image; over all joints: mean, max, and (the mean is dominated by
    # the few joints grouped into another person or moved to another peak) median, 90th
    # percentile and the share of joints moved by more than 10 px
    dists = np.asarray([d for n in per_image["onnx_fp32"]
                        for d in matched_keypoint_distances(per_image["onnx_fp32"][n],
                                                            per_image["onnx_int8"][n])[0]])  # fmt: skip
    out["int8_mean_px"] = round(float(dists.mean()), 3) if dists.size else None
    out["int8_max_px"] = round(float(dists.max()), 3) if dists.size else 0.0
    out["joints"] = int(dists.size)
    if dists.size:
        out["int8_median_px"] = round(float(np.median(dists)), 3)
        out["int8_p90_px"] = round(float(np.percentile(dists, 90)), 3)
        out["int8_share_over_10px"] = round(float(np.mean(dists > 10.0)), 4)
    return out


def _name_of(pred) -> str:
    return str(getattr(pred, "model_name", ""))


def flip_section(built, image, gt, boxes, cfg: PerfConfig, use_gt: bool) -> dict[str, Any]:
    """Bottom-up ONNX (else torch) rows with flip off and on: decode ms and decode / network."""
    preds, keys = [], []
    for name, b in built.items():
        if b["kind"] != "bottom_up":
            continue
        src = b["onnx"] if b["onnx"] is not None else b["fast"]
        for flip in (False, True):
            p = _predictor(src, b["kind"], cfg, b["hw"], flip=flip)
            _hook(p, gt, boxes, use_gt)
            preds.append((f"{name} flip={'on' if flip else 'off'}", p))
            keys.append((name, flip))
    if not preds:
        return {}
    from fusepose.benchmark.latency import benchmark

    res = benchmark(preds, image, boxes=boxes, runs=max(cfg.runs // 2, 3), warmup=1)
    out: dict[str, Any] = {}
    for (name, flip), r in zip(keys, res, strict=True):
        s = r.summary()
        out.setdefault(name, {})["on" if flip else "off"] = {
            "network_ms": round(s["network_ms"], 2),
            "decode_ms": round(s["decode_ms"], 2),
            "decode_over_network": round(s["decode_ms"] / s["network_ms"], 4),
            "people": s["people"],
        }
    return out


def threads_section(built, cfg: PerfConfig) -> dict[str, Any]:
    """ONNX Runtime network time at 1 and ``cfg.threads`` threads (sessions interleaved)."""
    from fusepose.export.runtime import OnnxRunner

    counts = sorted({1, cfg.threads})
    runners = []
    for name, b in built.items():
        if b["onnx"] is None:
            continue
        for t in counts:
            runners.append((name, t, OnnxRunner(b["onnx"], num_threads=t), b["hw"]))
    times: dict[tuple[str, int], list[float]] = {(n, t): [] for n, t, _, _ in runners}
    inputs = {n: np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
              for n, _, _, hw in runners}  # fmt: skip
    reps = max(cfg.runs // 2, 3)
    for i in range(reps + 1):
        for n, t, r, _ in runners:
            t0 = time.perf_counter()
            r(inputs[n])
            if i:
                times[(n, t)].append((time.perf_counter() - t0) * 1e3)
    out: dict[str, Any] = {}
    for (n, t), v in times.items():
        out.setdefault(n, {})[f"{t}_threads_ms"] = round(statistics.median(v), 2)
    for d in out.values():
        if len(counts) == 2:
            d["scaling"] = round(d[f"{counts[0]}_threads_ms"] / d[f"{counts[1]}_threads_ms"], 3)
    return out


def flop_bound_ms(macs: float, rates_gmac_s: dict[str, float]) -> float:
    """Milliseconds for ``macs`` multiply-accumulates at the best measured dense rate
    (``max(matmul, conv1x1)`` of :func:`measure_peak`, GMAC/s)."""
    best = max(rates_gmac_s["matmul"], rates_gmac_s["conv1x1"])
    return macs / (best * 1e9) * 1e3


def peak_section(built, cfg: PerfConfig) -> dict[str, Any]:
    """Peak MAC rates, and per model: dense / depthwise MACs, the FLOP-bound limit and
    measured / limit for the ONNX network at batch 1.

    The limit is :func:`flop_bound_ms`: every MAC at the best measured dense rate (a large
    MatMul or 1x1 conv), i.e. the time if the network were compute-bound at this machine's
    peak. (Depthwise MACs at the measured depthwise-conv rate would give a looser bound; the
    isolated 3x3 depthwise probe runs slower than ORT's fused depthwise convs inside the
    networks, so that bound is not a lower bound of time.)"""
    from fusepose.export.runtime import OnnxRunner

    peak = measure_peak(cfg.threads)
    out: dict[str, Any] = {"rates_gmac_s": peak, "threads": cfg.threads, "models": {}}
    for name, b in built.items():
        cls = mac_classes(b["fast"], b["hw"])
        limit_ms = flop_bound_ms(cls["dense"] + cls["depthwise"], peak)
        entry = {"dense_gmacs": round(cls["dense"] / 1e9, 3),
                 "depthwise_gmacs": round(cls["depthwise"] / 1e9, 3),
                 "limit_ms": round(limit_ms, 2)}  # fmt: skip
        if b["onnx"] is not None:
            r = OnnxRunner(b["onnx"], num_threads=cfg.threads)
            x = np.random.default_rng(0).standard_normal((1, 3, *b["hw"])).astype(np.float32)
            r(x)
            ts = []
            for _ in range(max(cfg.runs // 2, 3)):
                t0 = time.perf_counter()
                r(x)
                ts.append((time.perf_counter() - t0) * 1e3)
            entry["network_ms"] = round(statistics.median(ts), 2)
            entry["over_limit"] = round(entry["network_ms"] / limit_ms, 3)
        out["models"][name] = entry
    return out


# ------------------------------------------------------------------------------ output


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
    """The README table plus the extra sections, as markdown."""
    m, cfg = res["machine"], res["config"]
    crops = max((r["people"] for r in res["rows"] if r["kind"] == "top_down"), default=0)
    lines = [
        f"Machine: {m['cpu']} ({', '.join(m['isa'])}), {m['logical_cpus']} logical CPUs; "
        f"{cfg['threads']} threads, batch 1, fp32 unless stated; Python {m['python']}, "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}, "
        f"OpenCV {m['opencv']}. Image {Path(res['image']).name} "
        f"({res['image_size'][1]}x{res['image_size'][0]}), decode on {res['decode_maps']}; "
        f"medians of {cfg['runs']} interleaved runs, {res['date_utc']} UTC.",
        "",
    ]
    header = ["model", "backend", "params (M)", "GMACs", "input", "preprocess ms", "network ms",
              "decode ms", "total ms", "fps",
              f"speed-up vs {cfg['baseline']} (total / network)"]  # fmt: skip
    rows = []
    for r in res["rows"]:
        be = r["backend"] + ("" if r["precision"] == "fp32" else f" {r['precision']}")
        rows.append([
            r["model"], be, f"{r['params_m']:.2f}", f"{r['gmacs']:.2f}",
            f"{r['input_size'][0]}x{r['input_size'][1]}", f"{r['preprocess_ms']:.1f}",
            f"{r['network_ms']:.1f}", f"{r['decode_ms']:.1f}", f"{r['total_ms']:.1f}",
            f"{r['fps']:.2f}", _x(r["speedup_total"], r["speedup_network"]),
        ])  # fmt: skip
    lines += _table(header, rows)
    lines += [
        "",
        "GMACs: true conv MACs (transposed conv on its input grid); top-down rows run "
        f"one crop per person ({crops} crops); speed-ups against the same backend.",
    ]
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
    if res.get("flip"):
        rows = [[name, k, f"{v['network_ms']:.1f}", f"{v['decode_ms']:.1f}",
                 f"{v['decode_over_network']:.3f}", v["people"]]
                for name, d in res["flip"].items() for k, v in d.items()]  # fmt: skip
        lines += [""] + _table(
            ["model", "flip", "network ms", "decode ms", "decode / network", "people"], rows
        )
    if res.get("threads"):
        keys = [k for k in next(iter(res["threads"].values())) if k.endswith("_ms")]
        rows = [[name, *(f"{d[k]:.1f}" for k in keys), _x(d.get("scaling"))]
                for name, d in res["threads"].items()]  # fmt: skip
        head = ["model (ORT network)", *(k.replace("_threads_ms", " thread(s) ms") for k in keys)]
        lines += [""] + _table([*head, "scaling"], rows)
    for name, d in (res.get("int8") or {}).items():
        if d["joints"]:
            change = (f"mean keypoint change vs fp32 {_f(d['mean_px'], 2)} px over {d['joints']} "
                      f"joints, max relative raw-output change {d['max_rel_output_change']}")  # fmt: skip
        else:
            change = "keypoint change not measurable with random weights (no confident joints)"
        lines += ["", f"INT8 {name} ({d['weights']} weights): {change}; calibration "
                  f"{d['calibration']}."]  # fmt: skip
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
    return "\n".join(lines) + "\n"


def write_outputs(res: dict[str, Any], json_path: str | None, md_path: str | None) -> None:
    """Write the JSON and / or markdown files (parent folders created)."""
    if json_path:
        p = Path(json_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(res, indent=2))
    if md_path:
        p = Path(md_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(to_markdown(res))
