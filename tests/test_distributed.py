"""Evaluation and prediction over several processes give what one process gives.

Under ``torchrun`` (Gloo on CPU, 2 processes, launched in a subprocess) the dataset loop
shards the images, gathers the results into the one-process order and scores them once;
``fusepose predict`` writes one merged results file; a failure on any rank stops every rank
with one line. ``--workers`` reader threads change nothing but speed.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from dist_helpers import SCRIPTS, _cli, _error_lines, _python, _torchrun, _user_error_exit

from fusepose.distributed import agree, all_gather_checked, merge_in_order, shard
from fusepose.errors import DataError
from fusepose.inference.sources import prefetch

# ------------------------------------------------------------------------ the helpers


def test_shards_cover_every_position_once_without_padding():
    for n in range(0, 12):
        for world in (1, 2, 3, 8):
            parts = [list(shard(n, r, world)) for r in range(world)]
            assert sorted(p for part in parts for p in part) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [list(shard(4, r, 2)) for r in (0, 1)] == [[0, 2], [1, 3]]
    assert [list(shard(3, r, 2)) for r in (0, 1)] == [[0, 2], [1]]
    # the ranks' (position, value) lists come back in the one-process order
    assert merge_in_order([[(0, "a"), (2, "c")], [(1, "b")]]) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        shard(4, 2, 2)


def test_one_process_collectives_are_identities():
    assert all_gather_checked({"x": 1}) == [{"x": 1}]
    agree(None)
    with pytest.raises(DataError, match="bad.jpg"):
        agree(DataError("bad.jpg: broken"))


def test_prefetch_keeps_order_and_raises_at_the_item():
    def slow_square(i: int) -> int:
        time.sleep(0.01 * (5 - i % 5))  # later items finish first
        if i == 7:
            raise DataError("item 7")
        return i * i

    seen = []
    with pytest.raises(DataError, match="item 7"):
        for i, sq in prefetch(range(12), slow_square, workers=3):
            seen.append((i, sq))
    assert seen == [(i, i * i) for i in range(7)]
    assert list(prefetch(range(5), slow_square, 0)) == list(prefetch(range(5), slow_square, 2))


def test_a_failure_on_one_rank_stops_every_rank(tmp_path):
    """Rank 1 fails before a collective, rank 0 does not: both raise rank 1's error."""
    proc = _torchrun(SCRIPTS, "agree", tmp_path / "out", 1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"out.{rank}").read_text() == "DataError: x.jpg: not a JPEG"


# ------------------------------------------------------------------------ the dataset loop


def _gt_eval(tmp_path: Path, coco_dir: Path, nproc: int, max_images: int = 0,
             workers: int = 0) -> dict:  # fmt: skip
    out = tmp_path / f"eval_{nproc}_{max_images}_{workers}.json"
    args = (SCRIPTS, "evaluate", out, coco_dir / "test_coco.json", coco_dir, max_images, workers)
    proc = _python(*args) if nproc == 1 else _torchrun(*args, nproc=nproc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("max_images, split", [(0, [2, 2]), (3, [2, 1])])
def test_two_ranks_score_what_one_process_scores(tmp_path, coco_dir, max_images, split):
    """evaluate_dataset on 2 ranks: each rank predicts its share of the images, nothing is
    predicted twice, and the AP and results equal one process's (same order)."""
    one = _gt_eval(tmp_path, coco_dir, 1, max_images)
    two = _gt_eval(tmp_path, coco_dir, 2, max_images)
    assert one["images_per_rank"] == [sum(split)] and one["world_size"] == 1
    assert two["images_per_rank"] == split and two["world_size"] == 2
    assert one["AP"] > 0.5  # the GT heatmaps decode to real people: not a 0 == 0 comparison
    assert two["AP"] == one["AP"] and two["AR"] == one["AR"]
    assert two["results"] == one["results"] and len(one["results"]) == one["n_results"] > 0
    people = {(r["image_id"], tuple(r["keypoints"][:6])) for r in two["results"]}
    assert len(people) == len(two["results"])  # no person twice


def test_reader_threads_change_nothing(tmp_path, coco_dir):
    """workers=2 (images read and prepared in threads ahead of the network) == workers=0."""
    a = _gt_eval(tmp_path, coco_dir, 1, workers=0)
    b = _gt_eval(tmp_path, coco_dir, 1, workers=2)
    assert b["results"] == a["results"] and b["AP"] == a["AP"] and len(a["results"]) > 0


# ------------------------------------------------------------------------ fusepose eval


@pytest.fixture(scope="module")
def sfm_weights(tmp_path_factory) -> Path:
    """Random (seeded) sfm_coco weights: a real forward pass, one person per GT box."""
    import torch

    from fusepose import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sfm") / "w.pth"
    torch.save(create_model("sfm_coco").state_dict(), path)
    return path


def _eval_model(tmp_path: Path, coco_dir: Path, weights: Path, nproc: int, *extra: object):
    tag = f"{nproc}{'_'.join(map(str, extra))}"
    report, saved = tmp_path / f"report{tag}.json", tmp_path / f"res{tag}.json"
    proc = _cli("eval", "--model", "sfm_coco", "--weights", weights, "--gt-boxes",
                "--data", coco_dir / "test_coco.json", "--images", coco_dir,
                "--input-size", 128, 96, "--threads", 1, "--no-per-keypoint",
                "--report", report, "--save-results", saved, *extra, nproc=nproc)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(report.read_text()), json.loads(saved.read_text()), proc


def test_eval_under_torchrun_equals_one_process(tmp_path, coco_dir, sfm_weights):
    """`torchrun --nproc-per-node 2 ... fusepose eval`: the same AP and results file as one
    process, and the report says how the 4 images were split."""
    r1, res1, _ = _eval_model(tmp_path, coco_dir, sfm_weights, 1)
    r2, res2, p2 = _eval_model(tmp_path, coco_dir, sfm_weights, 2, "--workers", 1)
    assert (r1["world_size"], r1["images_per_rank"]) == (1, [4])
    assert (r2["world_size"], r2["images_per_rank"]) == (2, [2, 2])
    assert len(res1) == 12  # one person per labelled GT box
    assert res2 == res1  # identical, in order
    for key in ("AP", "AP50", "AR", "n_results"):
        assert r2[key] == r1[key], key
    assert p2.stdout.count("AP50") == 1  # rank 0 alone prints the table


def test_a_bad_argument_under_torchrun_is_one_line(tmp_path, coco_dir):
    """Every rank checks the arguments before any collective: rank 0 prints one line, every
    rank exits 2 (torchrun reports the exit codes), and nothing waits for a timeout."""
    start = time.monotonic()
    proc = _cli("eval", "--weights", tmp_path / "missing.pth", "--data",
                coco_dir / "test_coco.json", "--images", coco_dir, nproc=2)  # fmt: skip
    assert time.monotonic() - start < 120
    lines = _error_lines(proc.stderr, "eval")
    assert len(lines) == 1 and "missing.pth" in lines[0], proc.stderr[-3000:]
    _user_error_exit(proc.stderr)


def test_an_unreadable_image_on_one_rank_stops_both(tmp_path, coco_dir, sfm_weights):
    """The image only rank 1 reads is broken: rank 1 fails mid-loop, rank 0 finishes its
    share, learns of it at the gather, and both stop with rank 1's one-line error."""
    images = tmp_path / "images"
    shutil.copytree(coco_dir, images, ignore=shutil.ignore_patterns("*.json"))
    names = [
        im["file_name"] for im in json.loads((coco_dir / "test_coco.json").read_text())["images"]
    ]
    (images / names[1]).write_bytes(b"not a jpeg")  # position 1: rank 1's
    start = time.monotonic()
    proc = _cli("eval", "--model", "sfm_coco", "--weights", sfm_weights, "--gt-boxes",
                "--data", coco_dir / "test_coco.json", "--images", images,
                "--input-size", 128, 96, "--threads", 1, nproc=2)  # fmt: skip
    assert time.monotonic() - start < 180
    lines = _error_lines(proc.stderr, "eval")
    assert len(lines) == 1 and names[1] in lines[0], proc.stderr[-3000:]
    _user_error_exit(proc.stderr)
