"""Fair accuracy guards for ``fusepose perf --checkpoints DIR``: every model's verdicts on a
trained checkpoint, never on random weights.

- :func:`perf_checkpoints` trains what is missing into ``DIR/MODEL/best.pth`` and reuses (after
  checking) what is there (:func:`fusepose.benchmark.checkpoints.ensure_checkpoints`);
- :func:`checkpoint_sections`: per model, the COCO AP of every path on its checkpoint
  (:func:`fusepose.benchmark.int8_study.int8_checkpoint_ap`), whose verdicts decide the rows;
- :func:`nncf_ir`: the OpenVINO INT8 IR of a checkpoint at the table's input size, made by
  NNCF's accuracy control and judged by the guard on the written file
  (:func:`fusepose.inference.int8_export.quantize_ir`): the ``openvino int8 nncf`` row;
- :func:`judge_rows`: the checkpoint verdicts put on the rows, and every row's
  ``guard_weights``: ``"checkpoint"`` (judged on trained weights) or ``"random"`` (judged on
  random weights: it never decides ``best``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fusepose.benchmark.checkpoints import ensure_checkpoints, guard_data
from fusepose.benchmark.int8_study import int8_checkpoint_ap
from fusepose.cpu import has_vnni
from fusepose.errors import FusePoseError
from fusepose.experiments.perf_rows import PerfConfig, Row, checkpoint_guards
from fusepose.export.cache import export_cached
from fusepose.export.ir import onnx_to_ir
from fusepose.export.metadata import read_metadata
from fusepose.export.optimize import optimize_for_inference
from fusepose.inference.int8_export import quantize_ir
from fusepose.modelfile import describe, load_model

logger = logging.getLogger(__name__)

__all__ = ["NNCF_SCOPE", "checkpoint_sections", "judge_rows", "nncf_ir", "nncf_variant",
           "perf_checkpoints", "timed_on_checkpoints", "weights_overrides"]  # fmt: skip

# the int8 scope of the row that runs the NNCF IR (label "openvino int8 nncf")
NNCF_SCOPE = "nncf"
# what a row's accuracy verdict was judged on (Row.guard_weights)
GUARD_WEIGHTS = ("checkpoint", "random")


def perf_checkpoints(folder: str | Path | None, models: Sequence[str]) -> dict[str, Path]:
    """``{model: DIR/MODEL/best.pth}`` (trained where missing); ``{}`` without a folder."""
    if not folder:
        return {}
    return ensure_checkpoints(folder, list(models))


def timed_on_checkpoints(cfg: PerfConfig, checkpoints: dict[str, Path]) -> PerfConfig:
    """``cfg`` whose rows run the checkpoints' networks (``--weights`` given by hand win): the
    verdicts and the timings are then about the same network, its architecture included (a
    guard recipe may train a narrower variant: :func:`weights_overrides`)."""
    if not checkpoints:
        return cfg
    return replace(cfg, weights={**{m: str(p) for m, p in checkpoints.items()}, **cfg.weights})


def weights_overrides(path: str | Path | None) -> dict[str, Any]:
    """The architecture overrides a fusepose checkpoint was trained with (``{}`` for none, for
    no file, or for a file that is not a fusepose checkpoint, e.g. official weights)."""
    if not path:
        return {}
    try:
        return dict(describe(path).overrides or {})
    except FusePoseError:
        return {}


def checkpoint_sections(checkpoints: dict[str, Path], workdir: str | Path,
                        threads: int | None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per model, :func:`~fusepose.benchmark.int8_study.int8_checkpoint_ap` of its checkpoint on
    the images it was trained and validated on (the shared COCO samples)."""
    ann, _ = guard_data()
    return {name: int8_checkpoint_ap(ckpt, ann, workdir, threads=threads)
            for name, ckpt in checkpoints.items()}  # fmt: skip


def nncf_ir(checkpoint: str | Path, hw: tuple[int, int], workdir: str | Path,
            threads: int | None) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """``(INT8 IR, its fusepose.int8 report)`` of ``checkpoint`` exported at ``hw`` (the
    table's fixed shape: bottom-up letterboxed, top-down crops), made once into ``workdir``
    by NNCF's accuracy control on the shared COCO samples; the report holds the guard's
    verdict on the written file (``report["guard"]``)."""
    model, desc = load_model(checkpoint)
    desc = desc.replace(geometry=desc.family.fixed_geometry(tuple(hw)))
    net = optimize_for_inference(model)
    net.info = model.info
    onnx = export_cached(net, f"{desc.model}_ckpt", tuple(hw), Path(workdir), "nncf", desc=desc)
    out = onnx.with_name(f"{onnx.stem}_int8{'_r8' if has_vnni() else '_r7'}.xml")
    if not out.is_file():
        fp32_ir = onnx_to_ir(onnx, onnx.with_suffix(".xml"))
        ann, images = guard_data()
        logger.info("%s: NNCF INT8 with accuracy control at %dx%d", desc.model, *hw)
        quantize_ir(fp32_ir, out, ann, images, threads=threads)
    return out, read_metadata(out)["int8"]


def nncf_variant(name: str, checkpoint: str | Path, hw: tuple[int, int], workdir: str | Path,
                 threads: int | None, nncf: dict[str, dict[str, Any]],
                 skipped: list[dict[str, str]]) -> Path | None:  # fmt: skip
    """The NNCF IR of model ``name`` for its ``openvino int8 nncf`` row (its report into
    ``nncf[name]``), or None with the reason in ``skipped`` when the checkpoint cannot make one
    (e.g. it finds no one on the validation images, so there is no AP to control)."""
    try:
        path, nncf[name] = nncf_ir(checkpoint, hw, workdir, threads)
    except FusePoseError as e:
        skipped.append({"model": name, "backend": "openvino", "precision": f"int8 {NNCF_SCOPE}",
                        "why": str(e)})  # fmt: skip
        return None
    return path


def judge_rows(rows: list[Row], sections: Sequence[dict[str, Any]],
               nncf: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    """Put the checkpoint verdicts on the rows and say on which weights each was judged.

    ``sections``: checkpoint sections (:func:`checkpoint_sections`' values, the one of
    ``--int8-checkpoint``), each applied by :func:`~fusepose.experiments.perf_rows.
    checkpoint_guards` to the rows of its checkpoint's model; ``nncf``: model -> the NNCF IR's report,
    whose guard decides that model's ``nncf`` row. A row is ``guard_weights="checkpoint"`` when
    a trained checkpoint decided it (also the fp32 reference of a model with a section, and a
    row timed on weights given by ``--weights``), else ``"random"``."""
    refs: dict[str, Any] = {}
    for section in sections:
        checkpoint_guards(rows, section)
        refs[describe(section["checkpoint"]).model] = section.get("AP_onnx_fp32")
    for row in rows:
        g = row.guard or {}
        if row.int8_scope == NNCF_SCOPE and row.model in nncf:
            verdict = nncf[row.model].get("guard") or {"passed": False, "why": "not judged"}
            row.guard = {**g, "checkpoint": verdict}
            row.guard_passed = bool(verdict["passed"])
        elif g.get("reference") and row.model in refs:
            row.guard = {**g, "checkpoint": {"AP": refs[row.model], "passed": True,
                                             "reference": True}}  # fmt: skip
        trained = "checkpoint" in (row.guard or {}) or str(row.weights).startswith("checkpoint")
        row.guard_weights = "checkpoint" if trained else "random"
