#!/usr/bin/env bash
# Images per second of `fusepose eval` over a COCO-format set of N images (default 100: the 4
# real COCO val2017 samples of ../shared/data, each copied N/4 times under new ids), with four
# ways to use a machine's cores, and one process on one core as the baseline:
#   1p x 1t            one process, --threads 1
#   1p x Tt            one process, --threads T                   (T = FUSEPOSE_THREADS, default 2)
#   Tp x 1t            torchrun --nproc-per-node T, --threads 1
#   1p x Tt + workers  one process, --threads T, --workers T      (reader threads)
#   1p x 1t + workers  one process, --threads 1, --workers T
# Each row is the report's predict_s (prediction and gathering, not start-up or scoring);
# every run must give the same AP (checked). Run it on an idle machine; prints a Markdown
# table and writes the reports under OUT (default runs/eval_throughput).
#   scripts/eval_throughput.sh [MODEL_FILE] [N]     (default runs/overfit_lmfnet/best.pth 100)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
[[ -x "$py" ]] || py=python3
model="${1:-runs/overfit_lmfnet/best.pth}"
n="${2:-100}"
t="${FUSEPOSE_THREADS:-2}"
out="${OUT:-runs/eval_throughput}"
samples="${FUSEPOSE_SHARED_DATA:-../shared/data}/mmpose_coco"
[[ -f "$model" ]] || { echo "eval_throughput: $model not found (see the README's first steps)" >&2; exit 2; }
mkdir -p "$out/images"
"$py" - "$samples" "$out" "$n" <<'EOF'
import json, shutil, sys
from pathlib import Path

samples, out, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
gt = json.loads((samples / "test_coco.json").read_text())
images, anns = [], []
for i in range(n):
    src = gt["images"][i % len(gt["images"])]
    name = f"{i:06d}_{src['file_name']}"
    shutil.copy(samples / src["file_name"], out / "images" / name)
    images.append({**src, "id": i + 1, "file_name": name})
    for a in gt["annotations"]:
        if a["image_id"] == src["id"]:
            anns.append({**a, "id": len(anns) + 1, "image_id": i + 1})
(out / "data.json").write_text(json.dumps({**gt, "images": images, "annotations": anns}))
EOF
data=(--data "$out/data.json" --images "$out/images" --no-per-keypoint)
run() {  # NAME COMMAND...
  local name="$1"; shift
  "$@" "${data[@]}" --report "$out/$name.json" >/dev/null 2>"$out/$name.log" \
    || { echo "eval_throughput: $name failed, see $out/$name.log" >&2; exit 1; }
}
run one_thread "$py" -m fusepose.cli.main eval --weights "$model" --threads 1
run one_process "$py" -m fusepose.cli.main eval --weights "$model" --threads "$t"
run torchrun "$py" -m torch.distributed.run --standalone --nproc-per-node "$t" \
  -m fusepose.cli.main eval --weights "$model" --threads 1
run workers "$py" -m fusepose.cli.main eval --weights "$model" --threads "$t" --workers "$t"
run workers_1t "$py" -m fusepose.cli.main eval --weights "$model" --threads 1 --workers "$t"
"$py" - "$out" "$t" <<'EOF'
import json, sys
from pathlib import Path

out, t = Path(sys.argv[1]), sys.argv[2]
rows = [("one_thread", "1 process x 1 thread"), ("one_process", f"1 process x {t} threads"), ("torchrun", f"{t} processes x 1 thread"),
        ("workers", f"1 process x {t} threads, --workers {t}"),
        ("workers_1t", f"1 process x 1 thread, --workers {t}")]
reports = {k: json.loads((out / f"{k}.json").read_text()) for k, _ in rows}
aps = {r["AP"] for r in reports.values()}
assert len(aps) == 1, f"the runs disagree on AP: {aps}"
n = sum(reports["one_process"]["images_per_rank"])
print(f"| how ({n} images, AP {aps.pop():.4f}) | images per rank | seconds | images/s |")
print("|---|---|---|---|")
for k, label in rows:
    r = reports[k]
    print(f"| {label} | {r['images_per_rank']} | {r['predict_s']:.1f} | {n / r['predict_s']:.2f} |")
EOF
