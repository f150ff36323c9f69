#!/usr/bin/env bash
# What a user gets who switches on a compressor in the shipped configs/fashion_mnist_cnn.yaml as
# it is (SGD lr 0.05, momentum 0.9, no lr warm-up), at np=4 for 2 epochs, against dense in the
# same script: every compressor that takes error feedback, with each feedback at its default
# (compression.momentum_correction resolved by braid train), and the rows that explain those
# defaults (-no-mc: correction off; randomk at 10% and at momentum 0). A run that diverges is
# reported as such. Writes bench/results/shipped_config.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ALLOW_FAIL=1
source bench/methods.sh
no_mc="--set compression.momentum_correction=false"
methods=("dense|")
for c in topk sign randomk; do
  methods+=("$c|--set compression.name=$c")
  for fb in ef ef21 econtrol; do
    methods+=("$c-$fb|--set compression.name=$c --set compression.error_feedback=$fb")
    [ "$c" = topk ] && methods+=("$c-$fb-no-mc|--set compression.name=$c --set compression.error_feedback=$fb $no_mc")
  done
done
methods+=(
  "randomk-10%|--set compression.name=randomk --set compression.ratio=0.1"
  "randomk-10%-ef|--set compression.name=randomk --set compression.ratio=0.1 --set compression.error_feedback=ef"
  "randomk-10%-ef-momentum-0|--set compression.name=randomk --set compression.ratio=0.1 --set compression.error_feedback=ef --set optimizer.momentum=0"
)
run_methods configs/fashion_mnist_cnn.yaml test_accuracy --set train.epochs=2
/usr/bin/python3 - "$work" "${names[@]}" <<'PY' | tee bench/results/shipped_config.md
import json, os, re, sys
work, names = sys.argv[1], sys.argv[2:]
def summary(n):
    path = f"{work}/{n}/summary.json"
    return json.load(open(path)) if os.path.exists(path) else None
def corrected(n):
    m = re.search(r"^\s*momentum_correction:\s*(\S+)", open(f"{work}/{n}/config.yaml").read(), re.M)
    return m.group(1) if m else "?"
dense = summary("dense")["test_accuracy"]
print("configs/fashion_mnist_cnn.yaml as shipped, np=4, 2 epochs; compression.ratio 0.01 unless named")
print()
print("| method | momentum_correction | test accuracy | vs dense (points) | at chance (< 0.2) |")
print("|---|---|---:|---:|---|")
for n in names:
    s = summary(n)
    if s is None:
        print(f"| {n} | | diverged or failed (see {n}.log) | | yes |")
        continue
    a = s["test_accuracy"]
    print(f"| {n} | {corrected(n) if n != 'dense' else ''} | {a:.4f} | {100 * (a - dense):+.2f} "
          f"| {'yes' if a < 0.2 else 'no'} |")
PY
echo "wrote bench/results/shipped_config.md (runs in $work)"
