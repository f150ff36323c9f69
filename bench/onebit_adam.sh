#!/usr/bin/env bash
# 1-bit Adam (Tang et al., ICML 2021) against AdamW in the same script: the char_transformer on
# Debian's fortunes, np=4 (on a 2-core machine the ranks oversubscribe the cores; loss and bytes
# do not depend on that), 300 steps, the config's lr 0.003 with warm-up and cosine decay, weight
# decay 0.1, betas (0.9, 0.999) for both; onebit_adam freezes its variance after 40 steps.
# Reports final test loss and bytes sent per rank (rank 0's, all traffic included) from each
# run's summary.json, writes bench/results/onebit_adam.md and onebit_adam.png (test loss against
# step, scripts/plot_runs.py) and onebit_adam_bytes.png (test loss against bytes sent).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-300}
freeze=${FREEZE_STEP:-40}
source bench/methods.sh
methods=(
  "adamw|--set optimizer.name=adamw"
  "onebit_adam|--set optimizer.name=onebit_adam --set optimizer.freeze_step=$freeze"
)
run_methods configs/fortunes_char_transformer.yaml test_loss --set train.max_steps="$steps" --set train.eval_every=50 --set train.log_every=25
/usr/bin/python3 - "$work" "$np" "$steps" "$freeze" <<'PY' | tee bench/results/onebit_adam.md
import json, sys
work, np, steps, freeze = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def summary(n): return json.load(open(f"{work}/{n}/summary.json"))
def seconds(n): return int(open(f"{work}/{n}.seconds").read())
def ratio(n):
    lines = [json.loads(l) for l in open(f"{work}/{n}/metrics.jsonl") if '"compression_ratio"' in l]
    return lines[-1]["compression_ratio"]
a, o = summary("adamw"), summary("onebit_adam")
print(f"char_transformer, np={np}, {steps} steps, onebit_adam freeze_step {freeze}\n")
print("| method | final test loss | vs adamw (nats) | MB sent per rank | fewer bytes than adamw | compression_ratio | wall s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for n, s in (("adamw", a), ("onebit_adam", o)):
    print(f"| {n} | {s['test_loss']:.4f} | {s['test_loss'] - a['test_loss']:+.4f} "
          f"| {s['bytes_sent'] / 1e6:.2f} | {a['bytes_sent'] / s['bytes_sent']:.2f}x | {ratio(n):.2f} | {seconds(n)} |")
PY
/usr/bin/python3 scripts/plot_runs.py "${names[@]/#/$work/}" --x step --y test_loss \
  -o bench/results/onebit_adam.png
/usr/bin/python3 scripts/plot_runs.py "${names[@]/#/$work/}" --x bytes_sent --y test_loss \
  -o bench/results/onebit_adam_bytes.png
echo "wrote bench/results/onebit_adam.md, onebit_adam.png and onebit_adam_bytes.png (runs in $work)"
