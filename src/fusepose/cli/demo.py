"""``fusepose demo [--out DIR] [--images N] [--epochs E]``: the whole pipeline on CPU.

1. render a synthetic multi-person COCO-format set (``fusepose.data.synth``);
2. train a reduced L-MFNet on it (``configs/lmfnet_synth-128_1xb4-30e.yaml``) with a progress bar;
3. score COCO OKS AP (pycocotools) on the held-out images, beside the same network untrained;
4. draw the trained model's predictions on the held-out images;
5. write ``DIR/summary.json`` (AP, AP_untrained, throughput, epochs, time).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

CONFIG = "lmfnet_synth-128_1xb4-30e"  # a bundled config (fusepose configs), found by name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument(
        "--images",
        type=int,
        default=600,
        help="synthetic images to render (10%% held out; default 600)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="training epochs (default 10: 540 images x 10 = 1350 steps of 4, a few CPU minutes)",
    )
    parser.add_argument("--config", default=None, help=f"training config (default {CONFIG})")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config overrides",
    )
    parser.add_argument("--draw", type=int, default=8, help="held-out images to draw (default 8)")


def run(args: argparse.Namespace) -> int:
    import cv2
    import torch

    from fusepose.data.synth import SynthConfig, generate_synthetic
    from fusepose.engine.config import load_config
    from fusepose.engine.trainer import Trainer, evaluate_model
    from fusepose.errors import ConfigError

    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = args.config or CONFIG
    if args.images < 10:
        raise ConfigError(f"--images: need at least 10 images (got {args.images})")

    base = load_config(config_path)
    size = int(base.data.input_size[0])
    data_dir = out / "synth"
    print(f"[1/4] rendering {args.images} synthetic images ({size} px) into {data_dir}")
    from tqdm import tqdm

    with tqdm(total=args.images, desc="render", leave=False) as bar:
        paths = generate_synthetic(
            data_dir, args.images, seed=0, size=size, val_fraction=0.1,
            # 1-2 people of a size the 1/4-resolution heatmaps resolve, kept off the border
            # (edge < 0), few distractor blobs: learnable in a few CPU minutes from scratch
            config=SynthConfig(size=size, min_people=1, max_people=2, min_torso=0.18,
                               max_torso=0.26, edge=-0.15, max_blobs=2),
            progress=lambda n: bar.update(n - bar.n),
        )  # fmt: skip
    overrides = [
        f"data.train_ann={paths['train']}",
        f"data.train_images={paths['images']}",
        f"data.val_ann={paths['val']}",
        f"data.val_images={paths['images']}",
        *(([f"train.epochs={args.epochs}"]) if args.epochs is not None else []),
        *args.overrides,
    ]
    cfg = load_config(config_path, overrides)
    run_dir = out / "train"

    torch.manual_seed(cfg.train.seed)
    trainer = Trainer(cfg, run_dir=run_dir, config_path=config_path)
    device = trainer.device
    print(f"[2/4] scoring the untrained network on {paths['val'].name} (held out)")
    untrained = evaluate_model(trainer.model, cfg, device)

    n_train = len(trainer.train_set)
    print(
        f"[3/4] training {trainer.model_name} ({_params(trainer.model):.2f} M params) on "
        f"{n_train} images for {cfg.train.epochs} epochs"
    )
    t0 = time.perf_counter()
    result = trainer.fit()
    train_s = time.perf_counter() - t0
    images_seen = n_train * cfg.train.epochs
    trained_model = trainer.ema.module if trainer.ema is not None else trainer.model
    trained = evaluate_model(trained_model, cfg, device)

    print("[4/4] drawing held-out predictions")
    drawn = _draw(trained_model, trainer.description, cfg, device, out / "predictions",
                  args.draw, cv2)
    summary = {
        "AP": trained["AP"],
        "AP_untrained": untrained["AP"],
        "AP50": trained["AP50"],
        "AR": trained["AR"],
        "AP50_untrained": untrained["AP50"],
        "epochs": cfg.train.epochs,
        "train_images": n_train,
        "val_images": _count_images(paths["val"]),
        "input_size": list(cfg.data.input_size),
        "model": trainer.model_name,
        "params_m": _params(trainer.model),
        "train_seconds": train_s,
        "train_images_per_s": images_seen / train_s if train_s > 0 else None,
        "total_seconds": time.perf_counter() - t_start,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "final_loss": result["last"].get("loss"),
        "run_dir": str(run_dir),
        "predictions": [str(p) for p in drawn],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"\nheld-out COCO AP (pycocotools): trained {summary['AP']:.3f}  vs  untrained "
        f"{summary['AP_untrained']:.3f}  (AP50 {summary['AP50']:.3f})\n"
        f"training: {images_seen} images in {train_s:.0f} s = "
        f"{summary['train_images_per_s']:.1f} images/s\n"
        f"data:        {data_dir}\n"
        f"run folder:  {run_dir}  (config.yaml, train.csv, last.pth)\n"
        f"drawings:    {out / 'predictions'}  ({len(drawn)} images)\n"
        f"summary:     {out / 'summary.json'}"
    )
    return 0


def _params(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def _count_images(ann: Path) -> int:
    return len(json.loads(Path(ann).read_text())["images"])


def _draw(model, desc, cfg, device, folder: Path, limit: int, cv2) -> list[Path]:
    from fusepose.data import load_coco_keypoints, read_image
    from fusepose.inference.predictor import Predictor
    from fusepose.visualization.skeleton import draw_poses

    folder.mkdir(parents=True, exist_ok=True)
    index = load_coco_keypoints(cfg.data.val_ann)
    predictor = Predictor(model, device=str(device), description=desc)
    written = []
    for iid in index.image_ids[:limit]:
        name = str(index.images[iid]["file_name"])
        img = read_image(Path(cfg.data.val_images) / name)
        result = predictor.predict_frame(img, image_id=iid)
        canvas = draw_poses(img, result, predictor.skeleton, kpt_thr=0.1)
        canvas = cv2.resize(canvas, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
        path = folder / f"{Path(name).stem}_pred.png"
        cv2.imwrite(str(path), canvas)
        written.append(path)
    return written
