#!/usr/bin/env bash
# EControl's eta (compression.eta) swept for top-k 1% with momentum correction, against dense in
# the same script, with bench/compression.sh's recipe: Fashion-MNIST cnn, np=4, 2 epochs, batch 64
# per rank, SGD momentum 0.9, lr 0.05 after 100 linear warm-up steps, then cosine decay. ETAS
# (default "0 0.0005 0.001 0.002 0.005 0.02 0.1 0.5") sets the sweep; a run that diverges (stops
# on a non-finite gradient, train.nonfinite: error) is reported as such. Writes
# bench/results/econtrol_eta.md.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${EPOCHS:-2}
ALLOW_FAIL=1
source bench/methods.sh
methods=("dense|")
for eta in ${ETAS:-0 0.0005 0.001 0.002 0.005 0.02 0.1 0.5}; do
  methods+=("econtrol-eta-$eta|--set compression.name=topk --set compression.ratio=0.01 --set compression.error_feedback=econtrol --set compression.eta=$eta --set compression.momentum_correction=true")
done
run_methods configs/fashion_mnist_cnn.yaml test_accuracy --set train.epochs="$epochs" --set train.eval_every=117 --set train.log_every=39 \
  --set optimizer.schedule=warmup_cosine --set optimizer.warmup_steps=100
/usr/bin/python3 - "$work" "${names[@]}" <<'PY' | tee bench/results/econtrol_eta.md
import json, os, re, sys
work, names = sys.argv[1], sys.argv[2:]
def summary(n): return json.load(open(f"{work}/{n}/summary.json"))
def diverged(n):
    m = re.search(r"at step (\d+)", open(f"{work}/{n}.log").read())
    return f"diverged (non-finite gradient at step {m.group(1)})" if m else "failed (see its log)"
dense = summary("dense")
print("Fashion-MNIST cnn, np=4, 2 epochs, top-k 1% + EControl + momentum correction, by eta")
print()
print("| method | test accuracy | vs dense (points) |")
print("|---|---:|---:|")
for n in names:
    if not os.path.exists(f"{work}/{n}/summary.json"):
        print(f"| {n} | {diverged(n)} | |")
        continue
    s = summary(n)
    print(f"| {n} | {s['test_accuracy']:.4f} | {100 * (s['test_accuracy'] - dense['test_accuracy']):+.2f} |")
PY
echo "wrote bench/results/econtrol_eta.md (runs in $work)"
