"""The papers' ablations as experiments: every variant trained with one recipe and budget on one
dataset, scored with one protocol, timed side by side, beside the papers' own numbers.

- ``table3``: L-MFNet's Table 3 (HigherHRNet-W32, + Shuffle-Neck, + Ghost-Block, L-MFNet).
- ``sfm-attention``: the SFM poster's attention comparison (no attention, plain spatial
  attention, HSA).
- ``deploy``: L-MFNet's deploy variant (``lmfnet_deploy``, not in the paper) beside L-MFNet and
  HigherHRNet-W32, trained with Table 3's recipe.

The steps are the demo's (:mod:`fusepose.experiments.orchestrate`) with one recipe per
experiment: for each variant (``model.name`` is the only change to the recipe's config) the
:class:`~fusepose.engine.trainer.Trainer` trains into ``OUT/runs/NAME`` (``curves.png``
there); the finished
checkpoint is scored by :func:`fusepose.inference.dataset.evaluate_dataset` (bottom-up: the
model finds the people; top-down: GT boxes, HRNet's protocol) through a
:class:`~fusepose.inference.Predictor` built from the checkpoint file alone. Params and MACs
come from :mod:`fusepose.benchmark.complexity` (of the trained architecture at its input, and
of the full registered architecture at the paper's input, which is what the papers count);
latency from :func:`fusepose.benchmark.latency.benchmark` (all variants interleaved, run by
run, on the same held-out image). A variant whose ``result.json`` exists is skipped; one whose
run stopped half-way resumes from its ``last.pth`` (:meth:`Trainer.resume`).

Budgets: ``smoke`` (seconds per variant: a few steps of reduced networks at 64 px, for tests),
``cpu`` (the default: the synthetic set, reduced widths, minutes per variant; the recipe is a
YAML file in ``configs/``) and ``paper`` (the papers' configs at full size, for GPUs and COCO).

    result = run_ablation("table3", "runs/ablate-table3", budget="cpu")
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fusepose.benchmark.complexity import measure_registered
from fusepose.benchmark.latency import benchmark
from fusepose.benchmark.machine import machine_info
from fusepose.data.coco_index import load_coco_keypoints
from fusepose.data.io import read_image
from fusepose.engine.config import (
    Config,
    config_to_dict,
    load_config,
    resolve_config,
    validate_config,
)
from fusepose.errors import ConfigError
from fusepose.evaluation.coco import bootstrap_ap
from fusepose.experiments.orchestrate import (
    SynthSet,
    check_data,
    data_overrides,
    plot_run_curves,
    prepare_data,
    train_run,
)
from fusepose.files import write_json_atomic, write_text_atomic
from fusepose.inference.boxes import gt_boxes
from fusepose.inference.dataset import evaluate_dataset
from fusepose.inference.predictor import Predictor
from fusepose.models.registry import get_model_info
from fusepose.progress import wrap_prose
from fusepose.visualization.plots import plot_tradeoff

logger = logging.getLogger(__name__)

__all__ = ["BUDGETS", "EXPERIMENTS", "Experiment", "ablation_markdown", "run_ablation"]

BUDGETS = ("smoke", "cpu", "paper")
# smoke: tiny, for tests; the same for every variant of an experiment
_SMOKE_COMMON = ("train.epochs=1", "train.max_steps_per_epoch=2", "train.batch_size=2",
                 "data.max_val_images=3", "data.num_workers=0", "train.log_interval=1")  # fmt: skip


@dataclass(frozen=True)
class Experiment:
    """One ablation: its variants (registered model names, in the paper's row order), the
    key of each variant's ``ModelInfo.paper`` that holds the paper's score for this table,
    the recipe per budget (config file in ``configs/``) and the smoke budget's extra
    overrides (reduced widths / input), the synthetic images per budget and their side
    (``synth_size``; None: the input height, as a bottom-up network sees the whole image)."""

    name: str
    title: str
    variants: tuple[str, ...]
    paper_metric: str
    configs: dict[str, str]
    smoke: tuple[str, ...]
    synth_images: dict[str, int]
    claim: str
    synth_size: int | None = None


# Table 3's recipe (also the deploy variant's: the same training, one more row)
_TABLE3_CONFIGS = {
    "smoke": "ablation-table3_synth-128_1xb8-5e.yaml",
    "cpu": "ablation-table3_synth-128_1xb8-5e.yaml",
    "paper": "lmfnet_coco-512_1xb12-300e.yaml",
}  # fmt: skip
_TABLE3_SMOKE = (
    "data.input_size=[64,64]",
    "model.overrides.widths=[8,16,32,64]",
    "model.overrides.stem_width=8",
    "model.overrides.stage1_planes=8",
    "model.overrides.head_deconv_channels=8",
)  # fmt: skip

# Table 3's protocol: its metric, recipes and data, shared by the experiments that use it
_TABLE3_PROTOCOL: dict[str, Any] = {
    "paper_metric": "ablation_mAP",
    "configs": _TABLE3_CONFIGS,
    "smoke": _TABLE3_SMOKE,
    "synth_images": {"smoke": 10, "cpu": 1200},
}

EXPERIMENTS: dict[str, Experiment] = {
    "table3": Experiment(
        name="table3",
        title="L-MFNet Table 3: HigherHRNet-W32, + Shuffle-Neck, + Ghost-Block, L-MFNet",
        variants=("higherhrnet_w32", "higherhrnet_w32_shuffle", "higherhrnet_w32_ghost", "lmfnet"),
        **_TABLE3_PROTOCOL,
        claim="Shuffle-Neck costs nothing and keeps AP; Ghost-Blocks cut GFLOPs by 92 % for "
        "-1.2 mAP; together (L-MFNet) -1.0 mAP at 6 % of the GFLOPs (COCO val, 512 px)",
    ),
    "deploy": Experiment(
        name="deploy",
        title="L-MFNet's deploy variant beside L-MFNet and HigherHRNet-W32 (Table 3's recipe)",
        variants=("higherhrnet_w32", "lmfnet", "lmfnet_deploy"),
        **_TABLE3_PROTOCOL,
        claim="not in the paper: fusepose's deployment variant (L-MFNet's blocks at this "
        "protocol's depth: one Ghost-Block, so one CBAM, per stage branch) must learn as well "
        "as L-MFNet (AP within its bootstrap spread) at this budget",
    ),
    "sfm-attention": Experiment(
        name="sfm-attention",
        title="SFM attention: none, plain spatial attention (CBAM), HSA",
        variants=("sfm_coco_noatt", "sfm_coco_sa", "sfm_coco"),
        paper_metric="AP",
        configs={
            "smoke": "ablation-sfm-attention_synth-64x48_1xb16-4e.yaml",
            "cpu": "ablation-sfm-attention_synth-64x48_1xb16-4e.yaml",
            "paper": "sfm_coco-256x192_4xb64-210e.yaml",
        },  # fmt: skip
        smoke=(
            "model.overrides.widths=[8,16,24,32]",
            "model.overrides.depths=[1,1,1,1]",
            "model.overrides.stem_width=8",
        ),  # fmt: skip
        synth_images={"smoke": 10, "cpu": 1200},
        # the people of the demo set (128-px images), cropped to the 64x48 input: a crop of a
        # 64-px image would hold a person of about 30 px, upsampled
        synth_size=128,
        claim="HSA attends better than plain spatial attention at essentially no cost; SFM "
        "with HSA reaches 71.7 AP on COCO val at 1.5 M params and 1.7 GFLOPs (the poster "
        "gives no AP for the no-attention or spatial-attention variants)",
    ),
}


def _experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def _recipe_overrides(exp: Experiment, budget: str) -> list[str]:
    return [*_SMOKE_COMMON, *exp.smoke] if budget == "smoke" else []


def _variant_config(config: Path, name: str, overrides: Sequence[str]) -> Config:
    return load_config(config, [f"model.name={name}", *overrides])


def _score(checkpoint: str, cfg: Config, threads: int | None, resamples: int) -> dict[str, Any]:
    """COCO OKS AP of a checkpoint on ``cfg.data.val_ann`` (the one dataset loop) and its
    bootstrap spread over the held-out images."""
    predictor = Predictor(checkpoint, num_threads=threads)
    m = evaluate_dataset(predictor, cfg.data.val_ann, cfg.data.val_images, boxes="auto",
                         max_images=cfg.data.max_val_images, backend=cfg.eval.backend)  # fmt: skip
    out = {k: float(m[k]) for k in ("AP", "AP50", "AP75", "AR")} | {"people": len(m["results"])}
    if resamples > 1:
        if cfg.data.max_val_images:  # scored on the first images only: resample those
            data = json.loads(Path(cfg.data.val_ann).read_text())
            keep = {im["id"] for im in data["images"][: cfg.data.max_val_images]}
            gt: Any = {**data, "images": [im for im in data["images"] if im["id"] in keep],
                       "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}  # fmt: skip
        else:
            gt = cfg.data.val_ann
        out.update(bootstrap_ap(gt, m["results"], resamples=resamples))
    return out


def _complexity(name: str, cfg: Config) -> dict[str, Any]:
    info = get_model_info(name)
    hw = (int(cfg.data.input_size[0]), int(cfg.data.input_size[1]))
    trained = measure_registered(name, [hw], **cfg.model.overrides)[hw]
    full_hw = tuple(int(v) for v in info.input_size)
    full = measure_registered(name, [full_hw])[full_hw]
    return {
        "input_size": list(hw),
        "params_M": trained.params / 1e6,
        "gmacs": trained.macs / 1e9,
        "full_input_size": list(full_hw),
        "full_params_M": full.params / 1e6,
        "full_gmacs": full.macs / 1e9,
        "full_gmacs_repo": full.macs_repo / 1e9,
    }


def _latency(rows: list[dict[str, Any]], cfg: Config, threads: int, runs: int,
             warmup: int) -> dict[str, Any]:  # fmt: skip
    """Median end-to-end and network latency of every finished variant, interleaved, on the
    first held-out image (top-down: its GT boxes)."""
    index = load_coco_keypoints(cfg.data.val_ann)
    iid = next((i for i in index.image_ids if gt_boxes(index, i)[0].size), index.image_ids[0])
    path = Path(cfg.data.val_images) / str(index.images[iid]["file_name"])
    image = read_image(path)
    boxes, _ = gt_boxes(index, iid)
    preds = [(r["name"], Predictor(r["checkpoint"], num_threads=threads)) for r in rows]
    results = benchmark(preds, image, boxes=boxes, runs=runs, warmup=warmup)
    for row, res in zip(rows, results, strict=True):
        row["latency_ms"] = res.median("total_ms")
        row["network_ms"] = res.median("network_ms")
        row["decode_ms"] = res.median("decode_ms")
    return {"image": str(path), "image_size": list(image.shape[:2]), "boxes": len(boxes),
            "threads": threads, "runs": runs, "warmup": warmup}  # fmt: skip


@dataclass(frozen=True)
class _Recipe:
    """What every variant of one ablation run shares: the config file and its changes, the
    output folder, the scoring threads and bootstrap resamples, the reporter."""

    exp: Experiment
    config: Path
    changes: tuple[str, ...]
    out: Path
    threads: int
    resamples: int
    say: Callable[[str], None]


def _variant(r: _Recipe, i: int, count: int, name: str) -> dict[str, Any]:
    """Train (or resume), score and measure one variant; its row (``runs/NAME/result.json``;
    a variant whose result exists is skipped)."""
    cfg = _variant_config(r.config, name, r.changes)
    run_dir = r.out / "runs" / name
    done = run_dir / "result.json"
    if done.is_file():
        r.say(f"[{i}/{count}] {name}: done earlier ({done}), skipped")
        return json.loads(done.read_text())
    r.say(f"[{i}/{count}] {name}: training ({cfg.train.epochs} epochs, batch "
          f"{cfg.train.batch_size}, input {list(cfg.data.input_size)}) into {run_dir}")  # fmt: skip
    run = train_run(cfg, run_dir, say=r.say)
    plot_run_curves(run_dir, f"{name}: {run.trainer.state.global_step} steps")
    r.say(f"[{i}/{count}] {name}: scoring {Path(cfg.data.val_ann).name}")
    checkpoint = str(run.trainer.last_path)
    info = get_model_info(name)
    paper = dict(info.paper)
    row = {
        "name": name,
        "description": info.description,
        **_complexity(name, cfg),
        **_score(checkpoint, cfg, r.threads, r.resamples),
        "paper": paper,
        "paper_params_M": paper.get("params_m"),
        "paper_gflops": paper.get("gflops"),
        "paper_AP": paper.get(r.exp.paper_metric),
        "checkpoint": checkpoint,
        **run.numbers(),
        "trained_params": sum(p.numel() for p in run.trainer.model.parameters()),
    }
    write_json_atomic(done, row, indent=2)
    return row


def _check_arguments(exp: Experiment, budget: str, names: list[str], data: Any,
                     numbers: tuple[tuple[str, int, int], ...]) -> None:  # fmt: skip
    """User errors, before any work: budget, variants, counts, given data."""
    if budget not in BUDGETS:
        raise ConfigError(f"--budget {budget!r}: choose from {', '.join(BUDGETS)}")
    unknown = [n for n in names if n not in exp.variants]
    if unknown:
        raise ConfigError(f"--variants {unknown}: {exp.name} has {', '.join(exp.variants)}")
    for flag, v, lo in numbers:
        if int(v) < lo:
            raise ConfigError(f"{flag}: need a number >= {lo} (got {v})")
    if data:
        check_data(data)


def run_ablation(
    experiment: str,
    out: str | Path,
    *,
    budget: str = "cpu",
    data: dict[str, str] | None = None,
    overrides: Sequence[str] = (),
    variants: Sequence[str] | None = None,
    threads: int = 1,
    latency_runs: int = 10,
    latency_warmup: int = 2,
    bootstrap: int | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train, score and time every variant of ``experiment`` into ``out``; writes
    ``ablation.json``, ``ablation.md``, ``ablation_ap_gmacs.png`` and
    ``ablation_ap_latency.png`` there and returns the JSON content.

    ``data``: ``train_ann, train_images, val_ann, val_images`` of any COCO-format set (default:
    the synthetic set, or the paper config's COCO paths for ``budget="paper"``);
    ``overrides``: ``KEY=VALUE`` config changes applied to every variant alike;
    ``bootstrap``: resamples of the held-out images for the AP spread (default 100, smoke 10).
    """
    say = say or (lambda msg: logger.info("%s", msg))
    exp = _experiment(experiment)
    names = list(variants) if variants else list(exp.variants)
    _check_arguments(exp, budget, names, data, (("--threads", threads, 1),
                     ("--latency-runs", latency_runs, 1), ("latency_warmup", latency_warmup, 0)))  # fmt: skip
    out = Path(out)
    config = resolve_config(exp.configs[budget])
    base = validate_config(load_config(config, [*_recipe_overrides(exp, budget), *overrides]),
                           str(config))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    size = exp.synth_size or int(base.data.input_size[0])
    n = exp.synth_images.get(budget, 0)
    synth = None if budget == "paper" else SynthSet(n, size, 0, 0.1 if n >= 20 else 0.3)
    data_paths = prepare_data(out / "data", synth, data, say=say)
    common = [*data_overrides(data_paths), *_recipe_overrides(exp, budget), *overrides]
    recipe = {"experiment": exp.name, "budget": budget, "config": str(config),
              "overrides": common, "synth_size": None if data else size}  # fmt: skip
    _check_recipe(out / "ablation_recipe.json", recipe)

    t_start = time.perf_counter()
    resamples = bootstrap if bootstrap is not None else (10 if budget == "smoke" else 100)
    r = _Recipe(exp, config, tuple(common), out, threads, resamples, say)
    rows = [_variant(r, i, len(names), name) for i, name in enumerate(names, 1)]
    cfg = _variant_config(config, names[-1], common)
    say(f"timing {len(rows)} variants interleaved ({latency_runs} runs, {threads} thread(s))")
    latency = _latency(rows, cfg, threads, latency_runs, latency_warmup)
    result = {
        "experiment": exp.name,
        "title": exp.title,
        "budget": budget,
        "config": str(config),
        "overrides": common,
        "recipe": config_to_dict(
            dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name="<variant>"))
        ),
        "data": {k: getattr(cfg.data, k) for k in ("train_ann", "val_ann")},
        "val_images": len(load_coco_keypoints(cfg.data.val_ann).image_ids),
        "paper_claim": exp.claim,
        "paper_metric": exp.paper_metric,
        "latency": latency,
        "machine": machine_info(),
        "torch_threads": torch.get_num_threads(),
        "seconds": time.perf_counter() - t_start,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "rows": rows,
    }
    _write(out, result, cfg, threads)
    return result


def _write(out: Path, result: dict[str, Any], cfg: Config, threads: int) -> None:
    """``ablation.json``, ``ablation.md`` and the two trade-off plots."""
    write_json_atomic(out / "ablation.json", result, indent=2)
    write_text_atomic(out / "ablation.md", ablation_markdown(result))
    title = f"{result['title']}\n({result['budget']} budget; measured here)"
    rows = result["rows"]
    plot_tradeoff(out / "ablation_ap_gmacs.png", rows, "gmacs", "AP",
                  xlabel=f"GMACs at {list(cfg.data.input_size)} (trained architecture)",
                  title=title)  # fmt: skip
    plot_tradeoff(out / "ablation_ap_latency.png", rows, "latency_ms", "AP",
                  xlabel=f"latency ms (median end-to-end, {threads} thread(s), this machine)",
                  title=title)  # fmt: skip


def _check_recipe(path: Path, recipe: dict[str, Any]) -> None:
    """An output folder holds one recipe: resuming with another would mix rows."""
    if path.is_file():
        old = json.loads(path.read_text())
        if old != recipe:
            raise ConfigError(
                f"{path.parent}: holds the ablation {old['experiment']!r} at budget "
                f"{old['budget']!r} with other settings; use another --out to run this one"
            )
    else:
        write_json_atomic(path, recipe, indent=2)


def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _ap(row: dict[str, Any]) -> str:
    std = row.get("AP_std")
    return _f(row["AP"], 3) + (f" ± {std:.3f}" if std is not None else "")


def ablation_markdown(result: dict[str, Any]) -> str:
    """The ablation as a markdown table: the paper's numbers beside the measured ones."""
    rows = result["rows"]
    lat = result["latency"]
    hw = rows[0]["input_size"] if rows else []
    full_hw = rows[0]["full_input_size"] if rows else []
    lines = [
        f"## {result['title']}",
        "",
        f"Budget `{result['budget']}`, recipe `{Path(result['config']).name}` (the same for "
        f"every row; only `model.name` changes), trained on `{result['data']['train_ann']}`, "
        f"scored on {result['val_images']} held-out images of `{result['data']['val_ann']}` "
        "with `evaluate_dataset` (pycocotools OKS AP).",
        "",
        f"| variant | paper params M | params M (full, {full_hw[0]}x{full_hw[1]}) | paper GFLOPs | "
        f"GMACs (full) | params M (trained) | GMACs (trained, {hw[0]}x{hw[1]}) | latency ms | "
        "AP (measured) | paper AP |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {_f(r['paper_params_M'], 1)} | {_f(r['full_params_M'])} | "
            f"{_f(r['paper_gflops'])} | {_f(r['full_gmacs'])} | {_f(r['params_M'], 3)} | "
            f"{_f(r['gmacs'], 3)} | {_f(r.get('latency_ms'), 1)} | {_ap(r)} | "
            f"{_f(r['paper_AP'], 1)} |"
        )
    lines += [
        "",
        f"Latency: median end-to-end (preprocess + network + decode) of the trained checkpoints "
        f"over {lat['runs']} interleaved runs on one held-out image "
        f"({lat['image_size'][1]}x{lat['image_size'][0]}, {lat['threads']} thread(s)); "
        'GMACs: FlopCounterMode multiply-accumulates (the papers\' GFLOPs). "full": the '
        "registered architecture at the paper's input, which the papers' columns describe; "
        '"trained": the network this budget trains and times. AP ± its bootstrap standard '
        "deviation over the held-out images (rows within about two of it are not told apart). "
        "Paper AP: "
        f"`ModelInfo.paper['{result['paper_metric']}']` (COCO).",
        "",
        f"The paper's claim: {result['paper_claim']}.",
        "",
    ]
    return wrap_prose(lines)
