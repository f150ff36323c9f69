#!/usr/bin/env bash
# Compressed gradient exchange against dense in the same script: Fashion-MNIST cnn, np=4 (on a
# 2-core machine the ranks oversubscribe the cores; accuracy and bytes do not depend on that),
# 2 epochs, batch 64 per rank, evaluation every 117 steps, and for every method, dense included,
# SGD momentum 0.9 with lr 0.05 after 100 linear warm-up steps, then cosine decay (as the DGC
# paper warms up the learning rate; without it sign with error feedback diverges). At 4 ranks the compressors that cannot be summed (qsgd, topk, sign) are gathered
# (compression.exchange: auto); topk-1%-ef-two-phase forces the two-phase compressed allreduce
# to show its trade. sign with ef, and topk with ef, ef21 or econtrol, under momentum SGD
# accumulate the momentum before compressing by default (compression.momentum_correction); the
# -no-mc rows turn that off
# (sign then diverges: error feedback's delayed mass times the momentum's 1/(1 - m)). The -sgd
# rows are the error-feedback papers' own recipe (EF-signSGD: plain SGD, momentum 0) at the dense
# run's effective step lr / (1 - m) = 0.5, compared with the same dense row (plain dense SGD at lr
# 0.5 diverges in this recipe). sign-ef scales each tensor (compression.scale: tensor, the
# default), sign-ef-chunk every 512 elements. Per method: final test accuracy,
# bytes sent per rank (rank 0's, all traffic included), and compression_ratio from
# metrics.jsonl. Writes bench/results/compression.md and compression.png (test accuracy against
# bytes sent, scripts/plot_runs.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/methods.sh
methods=(
  "dense|"
  "fp16|--set compression.name=fp16"
  "qsgd-4bit|--set compression.name=qsgd --set compression.bits=4"
  "topk-1%-ef|--set compression.name=topk --set compression.ratio=0.01 --set compression.error_feedback=ef"
  "topk-1%-ef-no-mc|--set compression.name=topk --set compression.ratio=0.01 --set compression.error_feedback=ef --set compression.momentum_correction=false"
  "topk-1%-ef-two-phase|--set compression.name=topk --set compression.ratio=0.01 --set compression.error_feedback=ef --set compression.exchange=two_phase"
  "sign|--set compression.name=sign"
  "sign-ef|--set compression.name=sign --set compression.error_feedback=ef"
  "sign-ef-chunk|--set compression.name=sign --set compression.error_feedback=ef --set compression.scale=chunk"
  "sign-ef-no-mc|--set compression.name=sign --set compression.error_feedback=ef --set compression.momentum_correction=false"
  "powersgd-r2-ef|--set compression.name=powersgd --set compression.rank=2 --set compression.error_feedback=ef"
  "topk-1%-econtrol-mc|--set compression.name=topk --set compression.ratio=0.01 --set compression.error_feedback=econtrol --set compression.momentum_correction=true"
  "sign-ef-sgd|--set compression.name=sign --set compression.error_feedback=ef --set optimizer.momentum=0 --set optimizer.lr=0.5"
  "topk-1%-ef-sgd|--set compression.name=topk --set compression.ratio=0.01 --set compression.error_feedback=ef --set optimizer.momentum=0 --set optimizer.lr=0.5"
)
run_cnn_compression
/usr/bin/python3 - "$work" "${names[@]}" <<'PY' | tee bench/results/compression.md
import json, sys
work, names = sys.argv[1], sys.argv[2:]
def summary(n): return json.load(open(f"{work}/{n}/summary.json"))
def ratio(n):
    lines = [json.loads(l) for l in open(f"{work}/{n}/metrics.jsonl") if '"compression_ratio"' in l]
    return lines[-1]["compression_ratio"]
dense = summary("dense")
print("| method | test accuracy | vs dense (points) | MB sent per rank | fewer bytes than dense | compression_ratio |")
print("|---|---:|---:|---:|---:|---:|")
for n in names:
    s = summary(n)
    print(f"| {n} | {s['test_accuracy']:.4f} | {100 * (s['test_accuracy'] - dense['test_accuracy']):+.2f} "
          f"| {s['bytes_sent'] / 1e6:.1f} | {dense['bytes_sent'] / s['bytes_sent']:.1f}x | {ratio(n):.1f} |")
PY
/usr/bin/python3 scripts/plot_runs.py "${names[@]/#/$work/}" --x bytes_sent --y test_accuracy \
  -o bench/results/compression.png
echo "wrote bench/results/compression.md and compression.png (runs in $work)"
