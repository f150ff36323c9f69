#!/usr/bin/env bash
# Deep Gradient Compression (Lin et al., ICLR 2018) against dense momentum SGD in the same script:
# Fashion-MNIST mlp, np=4 (oversubscribed on a 2-core machine; accuracy and bytes do not depend
# on that), 2 epochs, batch 64 per rank, optimizer.momentum 0.9, compression.ratio 0.001 with
# the warm-up over the first epoch (kept ratio 0.001^(1/2) = 3.2% in epoch 0, 0.1% in epoch 1).
# Every method, dense included, uses the paper's learning-rate warm-up (DGC
# warms up the learning rate together with the sparsity): lr 0.1, 100 linear warm-up steps, then
# cosine decay to 0 (optimizer.schedule warmup_cosine).
# Per method: final test accuracy, and bytes sent per step in the second epoch (rank 0's, all
# traffic included): metrics.jsonl logs bytes_sent cumulatively, so the difference between the
# last line of epoch 0 and of epoch 1 divided by the steps between them. "topk-0.1%-ef" is plain
# top-k with error feedback and the optimizer's own momentum (no DGC corrections, no warm-up);
# "dgc-0.1%-no-masking" is DGC without momentum factor masking.
# Writes bench/results/dgc.md and dgc.png (test accuracy against bytes sent, scripts/plot_runs.py).
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${EPOCHS:-2}
source bench/methods.sh
methods=(
  "dense|"
  "dgc-0.1%|--set compression.name=dgc --set compression.ratio=0.001 --set compression.warmup_epochs=1"
  "dgc-0.1%-no-masking|--set compression.name=dgc --set compression.ratio=0.001 --set compression.warmup_epochs=1 --set compression.momentum_masking=false"
  "topk-0.1%-ef|--set compression.name=topk --set compression.ratio=0.001 --set compression.error_feedback=ef"
)
run_methods configs/fashion_mnist_mlp.yaml test_accuracy --set train.epochs="$epochs" --set train.eval_every=117 --set train.log_every=1 \
  --set optimizer.lr=0.1 --set optimizer.schedule=warmup_cosine --set optimizer.warmup_steps=100
/usr/bin/python3 - "$work" "$epochs" "${names[@]}" <<'PY' | tee bench/results/dgc.md
import json, sys
work, epochs, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def summary(n): return json.load(open(f"{work}/{n}/summary.json"))
def per_step_last_epoch(n):
    lines = [json.loads(l) for l in open(f"{work}/{n}/metrics.jsonl")]
    lines = [l for l in lines if "loss" in l and "bytes_sent" in l]
    end = {l["epoch"]: l for l in lines}  # the last training line of each epoch
    a, b = end[epochs - 2], end[epochs - 1]
    return (b["bytes_sent"] - a["bytes_sent"]) / (b["step"] - a["step"])
dense = summary("dense")
dense_step = per_step_last_epoch("dense")
print(f"Fashion-MNIST mlp, np=4, {epochs} epochs; bytes per step over epoch {epochs} (rank 0, all traffic)")
print()
print("| method | test accuracy | vs dense (points) | bytes per step, last epoch | fewer bytes per step than dense | MB sent per rank, whole run |")
print("|---|---:|---:|---:|---:|---:|")
for n in names:
    s, step = summary(n), per_step_last_epoch(n)
    print(f"| {n} | {s['test_accuracy']:.4f} | {100 * (s['test_accuracy'] - dense['test_accuracy']):+.2f} "
          f"| {step:.0f} | {dense_step / step:.0f}x | {s['bytes_sent'] / 1e6:.1f} |")
PY
/usr/bin/python3 scripts/plot_runs.py "${names[@]/#/$work/}" --x bytes_sent --y test_accuracy \
  -o bench/results/dgc.png
echo "wrote bench/results/dgc.md and dgc.png (runs in $work)"
