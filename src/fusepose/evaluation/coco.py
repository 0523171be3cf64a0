"""COCO OKS keypoint AP/AR through the official tools (pycocotools or faster-coco-eval).

Works for any COCO-format keypoint set: COCO-17, OCHuman (COCO-17), CrowdPose-14, custom K
with explicit sigmas. Coordinates are original-image pixels (COCO annotation frame, 0-based).

Numbers are exactly those of the backend's ``COCOeval.stats``; this module only validates
input, picks sigmas, silences the tools' printing (kept as ``summary``) and names the stats.

Per-keypoint summary (``per_keypoint=True``). For each keypoint j we report, over the GT people
that COCOeval itself matched at OKS >= 0.5 (pycocotools ``evaluate()``: area "all",
maxDets 20, greedy by score), and over the keypoints labelled (v > 0) in those GTs:

- ``n``: how many such (person, keypoint j) pairs there are;
- ``mean_ks``: the mean per-keypoint similarity ``ks = exp(-d^2 / (2 s^2 k_j^2))``, the term
  that OKS averages (d = pixel distance, s^2 = GT area, or 0.53 x box area when
  ``use_area=False``; k_j = 2 sigma_j);
- ``ks50`` / ``ks75``: the fraction of those pairs with ks >= 0.5 / >= 0.75.

A low ``mean_ks`` for a keypoint means it is localised badly on people that were found;
missed people do not enter it (``matched`` / ``gt_people`` say how many were found).
The matching always comes from pycocotools' ``COCOeval.evaluate`` (with the faster backend it
costs one extra pycocotools evaluate pass; pass ``per_keypoint=False`` to skip it).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
from typing import Any

import numpy as np

from fusepose.errors import ConfigError, DataError
from fusepose.evaluation.results import (
    gt_num_keypoints,
    load_gt,
    load_results,
    validate_results,
)
from fusepose.skeletons import COCO17, CROWDPOSE14

logger = logging.getLogger(__name__)

COCO_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
CROWD_KEYS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")
BACKENDS = ("pycocotools", "faster")
IOU_TYPES = ("keypoints", "keypoints_crowd")
# Area used for OKS when GT has no `area` (CrowdPose protocol, faster-coco-eval use_area=False).
BOX_AREA_FACTOR = 0.53


def default_sigmas(num_keypoints: int, *, source: str = "<gt>") -> np.ndarray | None:
    """OKS sigmas by keypoint count: None for 17 (the tools' own COCO default), CrowdPose for 14.

    Any other K needs explicit sigmas (raises ConfigError).
    """
    if num_keypoints == COCO17.num_keypoints:
        return None  # keep the backend's built-in COCO sigmas bit for bit
    if num_keypoints == CROWDPOSE14.num_keypoints:
        return np.array(CROWDPOSE14.sigmas, dtype=np.float64)
    raise ConfigError(
        f"{source}: {num_keypoints} keypoints per person; no built-in OKS sigmas for that count "
        "(17 = COCO, 14 = CrowdPose): pass sigmas= (one per keypoint)"
    )


def _keypoint_names(gt: dict, k: int) -> list[str]:
    for cat in gt["categories"]:
        names = cat.get("keypoints") if isinstance(cat, dict) else None
        if names and len(names) == k:
            return [str(n) for n in names]
    for skel in (COCO17, CROWDPOSE14):
        if skel.num_keypoints == k:
            return list(skel.keypoints)
    return [f"kpt{j}" for j in range(k)]


def _check_gt(gt: dict, name: str, k: int, *, use_area: bool, crowd: bool) -> None:
    for ann in gt["annotations"]:
        kp = ann["keypoints"]
        if not isinstance(kp, list) or len(kp) != 3 * k:
            raise DataError(
                f"{name}: annotation id {ann.get('id')} has {len(kp) if isinstance(kp, list) else '?'} "
                f"keypoint values, expected {3 * k}"
            )
        if "id" not in ann:
            raise DataError(f"{name}: an annotation of image {ann['image_id']} has no 'id'")
        if use_area and "area" not in ann:
            raise DataError(
                f"{name}: annotation id {ann['id']} has no 'area' field, which OKS needs as the "
                "object scale (CrowdPose GT has none): evaluate with backend='faster', "
                f"use_area=False (s^2 = {BOX_AREA_FACTOR} x box area; CLI: --no-area or --crowd)"
            )
    if crowd:
        for img in gt["images"]:
            if "crowdIndex" not in img:
                raise DataError(
                    f"{name}: image id {img['id']} has no 'crowdIndex' field, which the CrowdPose "
                    "easy/medium/hard split needs (use iou_type='keypoints' for non-CrowdPose GT)"
                )


def _plain(result: dict) -> dict:
    """A shallow copy with numpy keypoints/scores as Python lists/floats (the C++ backend
    wants plain lists)."""
    out = dict(result)
    if isinstance(out["keypoints"], np.ndarray):
        out["keypoints"] = out["keypoints"].astype(np.float64).tolist()
    out["score"] = float(out["score"])
    return out


def _pycocotools_gt(gt: dict):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    return coco


def _pycocotools_dt(coco_gt, results: list[dict]):
    if results:
        return coco_gt.loadRes(results)
    # pycocotools' loadRes cannot take an empty list; an empty result set scores 0.
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    coco.createIndex()
    return coco


def _run_pycocotools(gt: dict, results: list[dict], sigmas: np.ndarray | None):
    from pycocotools.cocoeval import COCOeval

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco_gt = _pycocotools_gt(gt)
        coco_dt = _pycocotools_dt(coco_gt, results)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev, _summary_lines(buf.getvalue().splitlines())


def _run_faster(
    gt: dict, results: list[dict], sigmas: np.ndarray | None, iou_type: str, use_area: bool
):
    from faster_coco_eval import COCO, COCOeval_faster

    lines: list[str] = []

    def collect(*args: Any, **_kw: Any) -> None:
        lines.append(" ".join(str(a) for a in args))

    quiet = lambda *a, **k: None  # noqa: E731 - the tools' load/index chatter
    coco_gt = COCO(gt, print_function=quiet)
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval_faster(
        coco_gt, coco_dt, iou_type, print_function=collect, kpt_oks_sigmas=sigmas, use_area=use_area
    )
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev, _summary_lines(lines)


def _summary_lines(lines: list[str]) -> str:
    """Keep the tool's result table, drop its progress chatter."""
    kept = [ln for ln in lines if ln.lstrip().startswith("Average")]
    return "\n".join(kept) + ("\n" if kept else "")


def evaluate_coco(
    gt: str | os.PathLike | dict,
    results: str | os.PathLike | list[dict],
    *,
    backend: str = "pycocotools",
    iou_type: str = "keypoints",
    sigmas: Any = None,
    use_area: bool = True,
    per_keypoint: bool = True,
) -> dict[str, Any]:
    """OKS AP/AR of COCO keypoint results.

    gt: COCO-format GT path or dict. results: path or list of result dicts (see
    :mod:`fusepose.evaluation.results`), original-image pixels. sigmas: (K,) OKS sigmas
    (default: COCO for K=17, CrowdPose for K=14). use_area=False scores OKS with
    0.53 x GT box area (faster backend only; CrowdPose protocol).

    Returns floats equal to the backend's ``stats``: for ``iou_type="keypoints"`` the keys
    ``AP AP50 AP75 APm APl AR AR50 AR75 ARm ARl``; for ``"keypoints_crowd"`` (faster backend,
    CrowdPose GT with ``crowdIndex``) ``AP AP50 AP75 AR AR50 AR75 AP_easy AP_medium AP_hard``.
    Also ``summary`` (the tool's text table), ``per_keypoint`` (see module docstring; None
    when disabled), ``backend``, ``iou_type``, ``n_results``.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: choose one of {BACKENDS}")
    if iou_type not in IOU_TYPES:
        raise ConfigError(f"iou_type={iou_type!r}: choose one of {IOU_TYPES}")
    crowd = iou_type == "keypoints_crowd"
    if crowd and backend != "faster":
        raise ConfigError(
            "iou_type='keypoints_crowd' (CrowdPose) is only in faster-coco-eval: use backend='faster'"
        )
    if not use_area and backend != "faster":
        raise ConfigError("use_area=False is a faster-coco-eval option: use backend='faster'")

    gt_data, gt_name = load_gt(gt)
    k = gt_num_keypoints(gt_data, gt_name)
    res, res_name = load_results(results)
    validate_results(res, gt_data, k, source=res_name)
    _check_gt(gt_data, gt_name, k, use_area=use_area, crowd=crowd)
    if sigmas is None:
        sigmas = default_sigmas(k, source=gt_name)
    else:
        sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if len(sigmas) != k or not np.all(np.isfinite(sigmas)) or np.any(sigmas <= 0):
            raise ConfigError(
                f"sigmas: need {k} positive finite values for {gt_name}, got {sigmas.tolist()}"
            )
    if not res:
        logger.warning(
            "%s: no results; every metric is 0 (or -1 where the GT has no people)", res_name
        )

    # The tools add fields to the dicts they are given; keep the caller's data untouched.
    gt_copy = copy.deepcopy(gt_data)
    res_copy = [_plain(r) for r in res]
    if backend == "pycocotools":
        ev, summary = _run_pycocotools(gt_copy, res_copy, sigmas)
    else:
        ev, summary = _run_faster(gt_copy, res_copy, sigmas, iou_type, use_area)
    keys = CROWD_KEYS if crowd else COCO_KEYS
    stats = [float(s) for s in ev.stats]
    out: dict[str, Any] = dict(zip(keys, stats[: len(keys)], strict=True))
    out.update(summary=summary, backend=backend, iou_type=iou_type, n_results=len(res))
    out["per_keypoint"] = None
    if per_keypoint:
        out["per_keypoint"] = per_keypoint_summary(
            gt_data,
            res,
            sigmas=sigmas,
            use_area=use_area,
            coco_eval=ev if backend == "pycocotools" else None,
        )
    return out


def per_keypoint_summary(
    gt: dict,
    results: list[dict],
    *,
    sigmas: Any = None,
    use_area: bool = True,
    coco_eval: Any = None,
) -> dict[str, Any]:
    """Per-keypoint similarity over GT people matched at OKS >= 0.5 (see module docstring).

    ``coco_eval``: an already evaluated pycocotools ``COCOeval`` to reuse its matching;
    otherwise a pycocotools ``evaluate()`` runs here. Returns ``{"keypoints": {name: {n,
    mean_ks, ks50, ks75}}, "matched": int, "gt_people": int}``.
    """
    k = gt_num_keypoints(gt)
    names = _keypoint_names(gt, k)
    if sigmas is None:
        sigmas = default_sigmas(k)
    if coco_eval is None:
        gt_copy = copy.deepcopy(gt)
        if not use_area:
            # The same object scale faster-coco-eval uses with use_area=False.
            for ann in gt_copy["annotations"]:
                ann["area"] = ann["bbox"][2] * ann["bbox"][3] * BOX_AREA_FACTOR
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = _pycocotools_gt(gt_copy)
            coco_dt = _pycocotools_dt(coco_gt, [_plain(r) for r in results])
            coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
            if sigmas is not None:
                coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
            coco_eval.evaluate()
    p = coco_eval.params
    sigmas = np.asarray(p.kpt_oks_sigmas, dtype=np.float64)
    t50 = int(np.argmin(np.abs(np.asarray(p.iouThrs) - 0.5)))
    all_range = list(p.areaRng[0])
    ks_lists: list[list[float]] = [[] for _ in range(k)]
    matched = gt_people = 0
    gt_anns = coco_eval.cocoGt.anns
    dt_anns = coco_eval.cocoDt.anns
    for e in coco_eval.evalImgs:
        if e is None or list(e["aRng"]) != all_range:
            continue
        gt_ignore = np.asarray(e["gtIgnore"], dtype=bool)
        gt_people += int((~gt_ignore).sum())
        # dtMatches[t, d] = id of the GT matched to detection d at threshold t (0 = none).
        for d_id, g_id in zip(e["dtIds"], np.asarray(e["dtMatches"])[t50], strict=True):
            g_id = int(g_id)
            if g_id == 0:
                continue
            g = gt_anns[g_id]
            if g.get("iscrowd", 0) or g.get("num_keypoints", 0) == 0:
                continue
            matched += 1
            gk = np.asarray(g["keypoints"], dtype=np.float64).reshape(k, 3)
            dk = np.asarray(dt_anns[d_id]["keypoints"], dtype=np.float64).reshape(k, 3)
            d2 = ((dk[:, :2] - gk[:, :2]) ** 2).sum(axis=1)
            ks = np.exp(-d2 / ((2 * sigmas) ** 2) / (g["area"] + np.spacing(1)) / 2)
            for j in np.flatnonzero(gk[:, 2] > 0):
                ks_lists[j].append(float(ks[j]))
    table = {}
    for j, name in enumerate(names):
        v = np.asarray(ks_lists[j])
        table[name] = {
            "n": len(v),
            "mean_ks": float(v.mean()) if len(v) else float("nan"),
            "ks50": float((v >= 0.5).mean()) if len(v) else float("nan"),
            "ks75": float((v >= 0.75).mean()) if len(v) else float("nan"),
        }
    return {"keypoints": table, "matched": matched, "gt_people": gt_people}


def format_per_keypoint(per_kp: dict[str, Any]) -> str:
    """A plain-text table of :func:`per_keypoint_summary`, worst keypoint first."""
    rows = sorted(
        per_kp["keypoints"].items(), key=lambda kv: np.nan_to_num(kv[1]["mean_ks"], nan=2.0)
    )
    width = max([len(n) for n, _ in rows] + [8])
    lines = [
        f"per-keypoint similarity over {per_kp['matched']}/{per_kp['gt_people']} GT people "
        "matched at OKS>=0.5 (worst first)",
        f"{'keypoint':<{width}}  {'n':>5}  {'mean_ks':>7}  {'ks>=.5':>6}  {'ks>=.75':>7}",
    ]
    for name, r in rows:
        lines.append(
            f"{name:<{width}}  {r['n']:>5d}  {r['mean_ks']:>7.3f}  {r['ks50']:>6.3f}  {r['ks75']:>7.3f}"
        )
    return "\n".join(lines)


def bootstrap_ap(
    gt: str | os.PathLike | dict,
    results: list[dict],
    *,
    resamples: int = 100,
    seed: int = 0,
    backend: str = "faster",
    sigmas: Any = None,
) -> dict[str, float]:
    """How much the AP of ``results`` on ``gt`` depends on which images were held out.

    Draws ``resamples`` sets of as many images as ``gt`` has, with replacement (an image
    drawn twice counts twice: its copies get new ids), scores each with :func:`evaluate_coco`
    and returns ``AP_std`` (sample standard deviation) and the 2.5 / 97.5 percentiles
    ``AP_lo`` / ``AP_hi``. Two models scored on the same images whose APs differ by less than
    about twice ``AP_std`` are not told apart by this set.
    """
    data = copy.deepcopy(load_gt(gt)[0])
    images = data["images"]
    anns: dict[Any, list[dict]] = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    res: dict[Any, list[dict]] = {}
    for r in results:
        res.setdefault(r["image_id"], []).append(r)
    rng = np.random.default_rng(seed)
    aps = []
    for _ in range(int(resamples)):
        pick = rng.integers(0, len(images), len(images))
        imgs, gts, dts = [], [], []
        for new_id, j in enumerate(pick, 1):
            old = images[j]["id"]
            imgs.append({**images[j], "id": new_id})
            gts += [{**a, "id": len(gts) + k + 1, "image_id": new_id}
                    for k, a in enumerate(anns.get(old, []))]  # fmt: skip
            dts += [{**r, "image_id": new_id} for r in res.get(old, [])]
        m = evaluate_coco({**data, "images": imgs, "annotations": gts}, dts, backend=backend,
                          sigmas=sigmas, per_keypoint=False)  # fmt: skip
        aps.append(float(m["AP"]))
    a = np.asarray(aps)
    return {"AP_std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "AP_lo": float(np.percentile(a, 2.5)), "AP_hi": float(np.percentile(a, 97.5))}  # fmt: skip
