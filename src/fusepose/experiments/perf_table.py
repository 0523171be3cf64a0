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
  (cached in ``workdir``, bottom-up letterboxed into ``input_size``); torch rows run the same
  optimized module eagerly with the same geometry (``raw_torch`` adds the unmodified module).
- Extra sections: decode share with flip off / on, ORT 1 vs N threads, the INT8 path
  (:mod:`fusepose.benchmark.int8_study`), and a FLOP-bound limit from the measured peak MAC
  rate (:mod:`fusepose.benchmark.machine`). Markdown: :mod:`fusepose.experiments.perf_report`.
- Issue 22 (:mod:`fusepose.experiments.perf_speed`): every row's MAC-bound time at the best
  dense rate measured in the run, N single-thread streams' images/s (``streams``), the run's
  speed verdict.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusepose.assets import sample_image
from fusepose.benchmark.complexity import measure_registered
from fusepose.benchmark.int8_study import int8_checkpoint_ap, int8_model
from fusepose.benchmark.latency import benchmark, default_image, gt_people
from fusepose.benchmark.machine import flop_bound_ms, mac_classes, machine_info, measure_peak
from fusepose.codecs.pipelines import build_pipeline
from fusepose.data.io import read_image
from fusepose.description import default_description_for
from fusepose.errors import ConfigError, DataError
from fusepose.evaluation.compare import match_keypoint_error, matched_keypoint_distances
from fusepose.experiments.perf_checkpoints import (
    NNCF_SCOPE,
    checkpoint_sections,
    judge_rows,
    nncf_variant,
    perf_checkpoints,
    timed_on_checkpoints,
    weights_overrides,
)
from fusepose.experiments.perf_report import to_markdown, write_outputs
from fusepose.experiments.perf_rows import (
    DEFAULT_MODELS,
    PerfConfig,
    Row,
    _guard_images,
    best_paths,
    checkpoint_guards,
    row_guards,
)
from fusepose.experiments.perf_speed import mac_bounds, throughput_section, verdict_section
from fusepose.export.cache import export_cached
from fusepose.export.optimize import optimize_for_inference
from fusepose.export.quantize import int8_scope
from fusepose.export.runtime import OnnxRunner, session_options
from fusepose.family import get_family
from fusepose.inference.backends import unavailable
from fusepose.inference.boxes import whole_image_box
from fusepose.inference.gt_outputs import gt_hook
from fusepose.inference.predictor import Predictor
from fusepose.modelfile import load_weights
from fusepose.models.init import random_inference_weights
from fusepose.models.registry import create_model
from fusepose.progress import track

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "DEFAULT_MODELS",
    "PerfConfig",
    "Row",
    "export_cached",
    "flop_bound_ms",
    "match_keypoint_error",
    "matched_keypoint_distances",
    "run_perf",
    "to_markdown",
    "write_outputs",
]

# "torch-compile": the eager (optimized, channels-last) module under torch.compile; it is
# compiled during the warmup runs (minutes per model on a small CPU), so it is opt-in.
BACKENDS = ("onnx", "torch", "torch-compile", "openvino")




def _image(cfg: PerfConfig):
    # the shared multi-person COCO sample when present, else the bundled one-person photo
    path = Path(cfg.image) if cfg.image else (default_image() or sample_image())
    if not path.is_file():
        raise DataError(f"{path}: benchmark image not found")
    gt = gt_people(path)
    if gt is None:
        logger.warning(
            "%s: no COCO ground truth beside it; decode runs on the network's maps", path
        )
    return path, read_image(path), gt


def _build(name: str, cfg: PerfConfig, image: np.ndarray):
    """The model with ``cfg.weights[name]`` if given, else non-degenerate random weights
    (:func:`~fusepose.models.init.random_inference_weights`: He init, BN statistics calibrated
    on the benchmark image), eval mode; and which weights it has."""
    torch.manual_seed(cfg.seed)
    try:
        model = create_model(name, **weights_overrides(cfg.weights.get(name)))
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    if name in cfg.weights:
        load_weights(model, cfg.weights[name])
        return model.eval(), f"checkpoint {Path(cfg.weights[name]).name}"
    hw = model_input_hw(model, cfg)
    pipe = build_pipeline(_description(model, hw))
    x = pipe.prepare(image, whole_image_box(image)).batches[0][:1]
    random_inference_weights(model, [torch.from_numpy(x)], seed=cfg.seed)
    return model.eval(), "random (He init, BN calibrated on the image)"


def model_input_hw(model: Any, cfg: PerfConfig) -> tuple[int, int]:
    """Bottom-up: ``cfg.input_size``; top-down: the model's own crop size."""
    if not model.info.family.needs_boxes:
        return int(cfg.input_size[0]), int(cfg.input_size[1])
    h, w = model.info.input_size
    return int(h), int(w)


def _description(model: Any, hw: tuple[int, int]):
    """Fixed-shape rows: bottom-up letterboxed into ``hw``, top-down crops of ``hw``."""
    return default_description_for(model.info, geometry=model.info.family.fixed_geometry(hw))


def _predictor(source: Any, desc: Any, cfg: PerfConfig, flip: bool = False,
               threads: int | None = None, compile: bool = False,  # noqa: A002
               backend: str | None = None, precision: str | None = None):  # fmt: skip
    """A Predictor on an exported file (``Path``; ``backend`` onnx or openvino) or on a module
    that is already the one to time (no second optimization pass)."""
    if isinstance(source, Path):
        return Predictor(source, num_threads=threads or cfg.threads, flip=flip,
                         backend=backend, precision=precision)  # fmt: skip
    return Predictor(source, description=desc, num_threads=threads or cfg.threads, flip=flip,
                     optimize=False, compile=compile, precision=precision)  # fmt: skip


def _hook(pred, gt, boxes, use_gt: bool) -> None:
    if gt is None or not use_gt:
        return
    pred.output_hook = gt_hook(pred, gt[0], boxes)


def _fill(row: Row, res) -> Row:
    s = res.summary()
    for k in ("preprocess_ms", "network_ms", "decode_ms", "total_ms", "total_min_ms"):
        setattr(row, k, round(float(s[k]), 2))
    row.fps = round(1000.0 / row.total_ms, 2) if row.total_ms > 0 else 0.0
    row.people = int(s["people"])
    return row


# ------------------------------------------------------------------------------ main


@dataclass
class _Session:
    """What one :func:`run_perf` call builds up, model by model: the benchmark image and its
    ground truth, the rows and their predictors (one per row, in order), each model's built
    parts (``built[name]``: model, optimized module, input, ONNX file, kind, description,
    weights), the paths this CPU skips and the INT8 calibrations. A new kind of row is one
    more entry of :func:`_variants`; a new section reads ``built``."""

    cfg: PerfConfig
    say: Callable[[str], None]
    path: Path
    image: np.ndarray
    gt: Any
    boxes: np.ndarray
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    preds: list[tuple[str, Any]] = field(default_factory=list)
    built: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    int8_info: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, Path] = field(default_factory=dict)  # model -> trained guard ckpt
    nncf: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> NNCF IR report

    @property
    def use_gt(self) -> bool:
        return not self.cfg.weights


def _session(cfg: PerfConfig, say: Callable[[str], None]) -> _Session:
    if cfg.runs < 1 or cfg.warmup < 0 or cfg.threads < 1:
        raise ConfigError("runs must be >= 1, warmup >= 0 and threads >= 1")
    if cfg.streams < 0:
        raise ConfigError(f"--streams {cfg.streams}: use 0 (off) or a number of streams")
    bad = [b for b in cfg.backends if b not in BACKENDS]
    if bad or not cfg.backends:
        raise ConfigError(f"backends {list(cfg.backends)}: use some of {', '.join(BACKENDS)}")
    workdir = Path(cfg.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path, image, gt = _image(cfg)
    h_img, w_img = image.shape[:2]
    boxes = gt[1] if gt is not None else np.array([[0.0, 0.0, w_img - 1.0, h_img - 1.0]])
    return _Session(cfg, say, path, image, gt, boxes, workdir)


def _variants(s: _Session, name: str, onnx_path: Path | None, eager: Any, hw: tuple[int, int]
              ) -> list[tuple[str, str, str | None, Any]]:  # fmt: skip
    """The rows of model ``name``: ``(backend, precision, int8 scope, source)`` for every
    backend x precision this CPU runs (INT8 models quantized here; the others skipped with
    their reason)."""
    cfg = s.cfg
    variants: list[tuple[str, str, str | None, Any]] = []
    for backend in cfg.backends:
        for prec in cfg.precisions:
            if prec == "int8" and name not in cfg.int8:
                continue
            if backend == "torch-compile" and prec == "int8":
                continue
            reason = unavailable("torch" if backend == "torch-compile" else backend, prec)
            if reason:
                s.skipped.append({"model": name, "backend": backend, "precision": prec,
                                  "why": reason})  # fmt: skip
                continue
            if prec != "int8":
                src = onnx_path if backend in ("onnx", "openvino") else eager
                variants.append((backend, prec, None, src))
                continue
            scopes = ["auto"] + (["whole"] if int8_scope(name) is not None else [])
            for scope in scopes:
                s.say(f"INT8 {name} ({scope})")
                q_path, calib = int8_model(onnx_path, hw, cfg.int8_calibration, cfg.seed,
                                           scope=scope)  # fmt: skip
                s.built[name]["int8" if scope == "auto" else "int8_whole"] = q_path
                s.int8_info.setdefault(name, {})[scope] = {"calibration": calib,
                                                           "path": str(q_path)}  # fmt: skip
                variants.append((backend, prec, scope, q_path))
            if backend == "openvino" and name in s.checkpoints and cfg.time_checkpoints:
                # NNCF's accuracy control makes the checkpoint's own INT8 network: a row of
                # the table only where the table times the checkpoints' networks
                s.say(f"INT8 {name} (NNCF, accuracy control on the checkpoint)")
                q_path = nncf_variant(name, s.checkpoints[name], hw, s.workdir, cfg.threads,
                                      s.nncf, s.skipped)  # fmt: skip
                variants += [(backend, prec, NNCF_SCOPE, q_path)] if q_path else []
    return variants


def _add_model(s: _Session, name: str) -> None:
    """Build model ``name`` (random or given weights), export it once, add its rows."""
    cfg = s.cfg
    s.say(f"preparing {name}")
    model, weights = _build(name, cfg, s.image)
    hw = model_input_hw(model, cfg)
    desc = _description(model, hw)
    comp = measure_registered(name, [hw], **weights_overrides(cfg.weights.get(name)))[hw]
    fast = optimize_for_inference(model)
    eager = optimize_for_inference(model, channels_last=True)
    eager.info = model.info
    files = any(b in cfg.backends for b in ("onnx", "openvino"))
    onnx_path = export_cached(model, name, hw, s.workdir, "opt", desc=desc) if files else None
    s.built[name] = {"model": model, "fast": fast, "hw": hw, "onnx": onnx_path,
                     "kind": model.info.kind, "desc": desc, "weights": weights}  # fmt: skip
    variants = _variants(s, name, onnx_path, eager, hw)
    if cfg.raw_torch and "torch" in cfg.backends:
        variants.append(("torch-raw", "fp32", None, model))
    for backend, prec, scope, src in variants:
        pred = _predictor(src, desc, cfg, compile=backend == "torch-compile",
                          backend=backend if isinstance(src, Path) else None,
                          precision=prec)  # fmt: skip
        _hook(pred, s.gt, s.boxes, s.use_gt)
        row = Row(name, backend, prec, model.info.kind, list(hw), round(comp.params / 1e6, 3),
                  round(comp.macs / 1e9, 3), round(comp.macs_repo / 1e9, 3),
                  int8_scope=scope, weights=weights)  # fmt: skip
        s.rows.append(row)
        s.preds.append((row.label, pred))


def _time_rows(s: _Session) -> None:
    """The peers' rows added, every row timed, interleaved run by run; speed-ups against the
    baseline's fp32 row on the same backend."""
    cfg = s.cfg
    for peer, file in cfg.peers.items():
        runner = PeerNetwork(file, cfg.threads, cfg.input_size)
        s.rows.append(Row(peer, "onnx", "fp32", "peer", list(runner.input_shape[2:]),
                          weights=f"peer file {Path(file).name}"))  # fmt: skip
        s.preds.append((s.rows[-1].label, runner))
    s.say(f"timing {len(s.preds)} rows x {cfg.runs} runs, interleaved")
    results = benchmark(s.preds, s.image, boxes=s.boxes, runs=cfg.runs, warmup=cfg.warmup,
                        progress=True)
    for row, res in zip(s.rows, results, strict=True):
        _fill(row, res)
    for row in s.rows:
        ref = next((r for r in s.rows if r.model == cfg.baseline and r.backend == row.backend
                    and r.precision == "fp32"), None)  # fmt: skip
        if ref is not None and row.total_ms > 0:
            row.speedup_total = round(ref.total_ms / row.total_ms, 3)
            row.speedup_network = round(ref.network_ms / row.network_ms, 3)


def _guards(s: _Session, out: dict[str, Any]) -> None:
    """Every row's accuracy guard; the INT8 paths' verdicts; with ``int8_checkpoint``, the AP
    of every path on the trained checkpoint, whose verdict then decides its model's rows."""
    cfg = s.cfg
    s.say("accuracy guards: decoded keypoints of every path against fp32 on the COCO images")
    row_guards(s.rows, [p for _, p in s.preds], _guard_images(s.path))
    for name, scopes in s.int8_info.items():
        for scope, info in scopes.items():
            row = next(r for r in s.rows if r.model == name and r.precision == "int8"
                       and r.int8_scope == scope)  # fmt: skip
            info.update(weights=row.weights, guard=row.guard)
    if s.int8_info:
        out["int8"] = s.int8_info
    sections = checkpoint_sections(s.checkpoints, s.workdir, cfg.threads)
    if sections:
        out["checkpoints"] = sections
    if cfg.int8_checkpoint:
        s.say(f"AP of every path with {cfg.int8_checkpoint}")
        img0 = default_image()
        ann = img0.parent / "test_coco.json" if img0 is not None else None
        if ann is None or not ann.is_file():
            raise DataError("--int8-checkpoint needs the shared COCO samples (test_coco.json)")
        out["int8_checkpoint"] = int8_checkpoint_ap(cfg.int8_checkpoint, ann, s.workdir,
                                                    threads=cfg.threads)  # fmt: skip
        checkpoint_guards(s.rows, out["int8_checkpoint"])
    given = [out["int8_checkpoint"]] if cfg.int8_checkpoint else []
    judge_rows(s.rows, [*sections.values(), *given], s.nncf)


def run_perf(cfg: PerfConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything in ``cfg``; returns the JSON-able result (see :func:`to_markdown`).
    ``progress(message)`` hears each stage (default: the log); building the models shows a
    :class:`fusepose.progress.Progress`."""
    say = progress or (lambda msg: logger.info("%s", msg))
    s = _session(cfg, say)
    models = list(dict.fromkeys([*cfg.models, cfg.baseline] if cfg.baseline else cfg.models))
    s.checkpoints = perf_checkpoints(cfg.checkpoints, models)
    if cfg.time_checkpoints:
        s.cfg = cfg = timed_on_checkpoints(cfg, s.checkpoints)
    for name in track(models, desc="perf: models", unit="models"):
        _add_model(s, name)
    _time_rows(s)
    out: dict[str, Any] = {
        "command": "fusepose perf",
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "machine": machine_info(),
        "image": str(s.path),
        "image_size": list(s.image.shape[:2]),
        "decode_maps": "ground-truth rendered (random weights)" if s.use_gt else "network outputs",
        "rows": [asdict(r) | {"label": r.label} for r in s.rows],
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    out["ratios"] = _ratios(s.rows, models)
    _guards(s, out)
    out["rows"] = [asdict(r) | {"label": r.label} for r in s.rows]
    out["best"] = best_paths(s.rows, models, cfg.baseline)
    out["skipped"] = s.skipped
    if cfg.flip_section:
        say("decode with flip off / on")
        out["flip"] = flip_section(s.built, s.image, s.gt, s.boxes, cfg, s.use_gt)
    if cfg.threads_section and "onnx" in cfg.backends:
        say("ONNX Runtime 1 vs N threads")
        out["threads"] = threads_section(s.built, cfg)
    peak = measure_peak(cfg.threads) if cfg.peak_section or cfg.mac_bound else None
    if cfg.peak_section:
        say("peak MAC rates and FLOP-bound limits")
        out["peak"] = peak_section(s.built, cfg, peak)
    _issue22(s, out, peak)
    return out


def _issue22(s: _Session, out: dict[str, Any], peak: dict[str, float] | None) -> None:
    """Every row's MAC-bound time, the streams' throughput, the run's speed verdict
    (:mod:`fusepose.experiments.perf_speed`)."""
    cfg = s.cfg
    if cfg.mac_bound:
        s.say("dense GMAC/s per precision: every row's MAC-bound time")
        mac_bounds(out, cfg, peak)
    if cfg.streams:
        s.say(f"throughput: {cfg.streams} single-thread streams beside latency")
        out["throughput"] = throughput_section(s.rows, s.built, _guard_images(s.path), cfg)
    verdict = verdict_section(out)
    if verdict is not None:
        out["verdict"] = verdict


class PeerNetwork:
    """Any ONNX pose model's network, timed beside ours (no fusepose metadata needed): ONNX
    Runtime with the same session options, on a fixed random input of its own shape (dynamic
    dims: batch 1, H x W = ``input_hw``). Quacks like a Predictor for
    :func:`~fusepose.benchmark.latency.benchmark`: preprocess and decode are 0 (network only)."""

    compiled = False
    kind = "peer"

    def __init__(self, path: str | Path, threads: int, input_hw: Sequence[int]) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise DataError(f"--peer {path}: ONNX file not found")
        try:
            self.session = ort.InferenceSession(str(path), session_options(threads),
                                                providers=["CPUExecutionProvider"])  # fmt: skip
        except Exception as e:  # noqa: BLE001 - onnxruntime raises several private types
            raise DataError(f"--peer {path}: onnxruntime cannot load it ({e})") from None
        inp = self.session.get_inputs()[0]
        dims = [d if isinstance(d, int) else None for d in inp.shape]
        if len(dims) != 4:
            raise DataError(f"--peer {path}: input {inp.shape} is not (B, 3, H, W)")
        dims = [dims[0] or 1, dims[1] or 3, dims[2] or int(input_hw[0]), dims[3] or int(input_hw[1])]
        self.input_name, self.input_shape = inp.name, dims
        self.x = np.random.default_rng(0).random(dims, dtype=np.float32)
        self.timings: dict[str, float] = {}

    def predict_frame(self, image: np.ndarray, boxes: Any = None) -> list:
        t0 = time.perf_counter()
        self.session.run(None, {self.input_name: self.x})
        ms = (time.perf_counter() - t0) * 1e3
        self.timings = {"preprocess_ms": 0.0, "network_ms": ms, "decode_ms": 0.0, "total_ms": ms}
        return []



def _ratios(rows: list[Row], models: list[str]) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    def find(name: str, backend: str, precision: str = "fp32") -> Row | None:
        return next((r for r in rows if r.model == name and r.backend == backend
                     and r.precision == precision), None)  # fmt: skip

    for name in models:
        onnx_row, torch_row = find(name, "onnx"), find(name, "torch")
        comp_row = find(name, "torch-compile")
        int8_row = next((r for r in rows if r.model == name and r.backend == "onnx"
                         and r.precision == "int8" and r.int8_scope != "whole"), None)  # fmt: skip
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
        if onnx_row and get_family(onnx_row.kind).tags:  # grouping: a decode worth timing
            entry["decode_over_network"] = round(onnx_row.decode_ms / onnx_row.network_ms, 4)
        if entry:
            ratios[name] = entry
    return ratios


def flip_section(built, image, gt, boxes, cfg: PerfConfig, use_gt: bool) -> dict[str, Any]:
    """Bottom-up ONNX (else torch) rows with flip off and on: decode ms and decode / network."""
    preds, keys = [], []
    for name, b in built.items():
        if not get_family(b["kind"]).tags:
            continue
        src = b["onnx"] if b["onnx"] is not None else b["fast"]
        for flip in (False, True):
            p = _predictor(src, b["desc"], cfg, flip=flip)
            _hook(p, gt, boxes, use_gt)
            preds.append((f"{name} flip={'on' if flip else 'off'}", p))
            keys.append((name, flip))
    if not preds:
        return {}
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


def _median_ms(fn, x: np.ndarray, reps: int) -> float:
    fn(x)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(x)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(ts))


def threads_section(built, cfg: PerfConfig) -> dict[str, Any]:
    """ONNX Runtime network time at 1 and ``cfg.threads`` threads (sessions interleaved)."""
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


def peak_section(built, cfg: PerfConfig, peak: dict[str, float] | None = None) -> dict[str, Any]:
    """Peak MAC rates, and per model: dense / depthwise MACs, the FLOP-bound limit and
    measured / limit for the ONNX network at batch 1.

    The limit is :func:`~fusepose.benchmark.machine.flop_bound_ms`: every MAC at the best
    measured dense rate (a large MatMul or 1x1 conv), i.e. the time if the network were
    compute-bound at this machine's peak. (Depthwise MACs at the measured depthwise-conv rate
    would give a looser bound; the isolated 3x3 depthwise probe runs slower than ORT's fused
    depthwise convs inside the networks, so that bound is not a lower bound of time.)"""
    peak = peak or measure_peak(cfg.threads)
    out: dict[str, Any] = {"rates_gmac_s": peak, "threads": cfg.threads, "models": {}}
    for name, b in built.items():
        cls = mac_classes(b["fast"], b["hw"])
        limit_ms = flop_bound_ms(cls["dense"] + cls["depthwise"], peak)
        entry = {"dense_gmacs": round(cls["dense"] / 1e9, 3),
                 "depthwise_gmacs": round(cls["depthwise"] / 1e9, 3),
                 "limit_ms": round(limit_ms, 2)}  # fmt: skip
        if b["onnx"] is not None:
            x = np.random.default_rng(0).standard_normal((1, 3, *b["hw"])).astype(np.float32)
            runner = OnnxRunner(b["onnx"], num_threads=cfg.threads)
            entry["network_ms"] = round(_median_ms(runner, x, max(cfg.runs // 2, 3)), 2)
            entry["over_limit"] = round(entry["network_ms"] / limit_ms, 3)
        out["models"][name] = entry
    return out
