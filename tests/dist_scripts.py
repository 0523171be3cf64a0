"""Scripts the distributed tests run, alone (one process) or under ``torchrun`` (several):
``python tests/dist_scripts.py VERB ARGS...``. Each writes what it measured as JSON (rank 0).

- ``evaluate OUT ANN IMAGES MAX_IMAGES WORKERS``: :func:`evaluate_dataset` of a top-down model
  whose heatmaps are the encoded GT people (``top_down_gt_hook``; the network is a stand-in
  with the right shapes), so the AP is high and every person is a real prediction.
- ``agree OUT FAILING_RANK``: rank FAILING_RANK raises a DataError before a collective, the
  others do not; every rank must stop with that error (written per rank).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

K = 17


def gt_people(ann: str) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and keypoints (N, K, 3) of every person the GT-box protocol crops
    (non-crowd, a labelled joint, a box over 1 px), all images together."""
    gt = json.loads(Path(ann).read_text())
    anns = [a for a in gt["annotations"] if not a.get("iscrowd") and a["num_keypoints"] > 0
            and a["bbox"][2] > 1 and a["bbox"][3] > 1]  # fmt: skip
    kp = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, K, 3)
    return np.array([a["bbox"] for a in anns], dtype=np.float64), kp


def evaluate(out: str, ann: str, images: str, max_images: str, workers: str) -> None:
    from fusepose.distributed import get_rank
    from fusepose.inference import Predictor
    from fusepose.inference.dataset import evaluate_dataset
    from fusepose.inference.gt_outputs import top_down_gt_hook

    torch.manual_seed(0)
    pred = Predictor("sfm_coco", allow_random_weights=True, input_size=(128, 96), flip=False,
                     num_threads=1)  # fmt: skip

    def stand_in(x: np.ndarray) -> list[np.ndarray]:
        b, _, h, w = x.shape
        return [np.zeros((b, K, h // 4, w // 4), np.float32)]

    pred._net = stand_in
    pred.output_hook = top_down_gt_hook(pred, *gt_people(ann))
    m = evaluate_dataset(pred, ann, images, boxes="gt", max_images=int(max_images),
                         workers=int(workers))  # fmt: skip
    if get_rank() == 0:
        keep = ("AP", "AR", "results", "world_size", "images_per_rank", "n_results")
        Path(out).write_text(json.dumps({k: m[k] for k in keep}))


def agree(out: str, failing_rank: str) -> None:
    from fusepose.distributed import agree as agree_
    from fusepose.distributed import get_rank
    from fusepose.errors import DataError

    error = DataError("x.jpg: not a JPEG") if get_rank() == int(failing_rank) else None
    try:
        agree_(error)
        text = "passed"
    except DataError as e:
        text = f"{type(e).__name__}: {e}"
    Path(f"{out}.{get_rank()}").write_text(text)


if __name__ == "__main__":
    from fusepose.distributed import process_group

    # the group is left (destroy_process_group) before the interpreter exits: a Gloo group
    # still alive at exit can abort the process ("terminate called without an active exception")
    with process_group("cpu"):
        {"evaluate": evaluate, "agree": agree}[sys.argv[1]](*sys.argv[2:])
