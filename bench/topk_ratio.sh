#!/usr/bin/env bash
# What top-k needs to come within 1.5 points of dense in bench/compression.sh's recipe
# (Fashion-MNIST cnn, np=4, EPOCHS epochs, SGD momentum 0.9 with momentum correction, lr 0.05 after
# 100 warm-up steps, cosine decay): the kept ratio swept for error feedback (ef) and EControl
# (econtrol, eta ETA, default 0.001), each over SEEDS (default "1 2 3", run.seed: initial
# weights, data order, sampling), with dense run at the same seeds in the same script. EControl
# at 1% is run with both starts of its estimate (compression.estimate_init gradient, the
# default, and compressed). RATIOS (default "0.01 0.02 0.05 0.1") sets the sweep; a run that
# diverges is reported as such. EPOCHS (default 2) sets the training length (run names do not
# carry it: give each EPOCHS its own WORK when SKIP_DONE=1 reuses runs). Writes OUT.md (mean
# and range over seeds, points against dense's mean) and OUT.png (points below dense against the
# ratio), OUT defaulting to bench/results/topk_ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
ALLOW_FAIL=1
source bench/methods.sh
eta=${ETA:-0.001}
out=${OUT:-bench/results/topk_ratio}
seeds=(${SEEDS:-1 2 3})
topk="--set compression.name=topk --set compression.momentum_correction=true"
methods=()
for seed in "${seeds[@]}"; do
  s="--set run.seed=$seed"
  methods+=("dense-s$seed|$s")
  for r in ${RATIOS:-0.01 0.02 0.05 0.1}; do
    methods+=("ef-$r-s$seed|$s $topk --set compression.ratio=$r --set compression.error_feedback=ef")
    methods+=("econtrol-$r-s$seed|$s $topk --set compression.ratio=$r --set compression.error_feedback=econtrol --set compression.eta=$eta")
  done
  methods+=("econtrol_compressed-0.01-s$seed|$s $topk --set compression.ratio=0.01 --set compression.error_feedback=econtrol --set compression.eta=$eta --set compression.estimate_init=compressed")
done
run_cnn_compression
/usr/bin/python3 - "$work" "$eta" "$out" "${EPOCHS:-2}" "${names[@]}" <<'PY'
import collections, json, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
work, eta, out, epochs, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def accuracy(n):
    path = f"{work}/{n}/summary.json"
    return json.load(open(path))["test_accuracy"] if os.path.exists(path) else None
runs = collections.defaultdict(list)  # (method, ratio) -> accuracies (None: diverged)
for n in names:
    stem = n.rsplit("-s", 1)[0]
    method, _, ratio = stem.partition("-")
    runs[(method, float(ratio) if ratio else 1.0)].append(accuracy(n))
dense = runs.pop(("dense", 1.0))
mean = lambda xs: sum(xs) / len(xs)
base = mean(dense)
labels = {"ef": "top-k + EF", "econtrol": f"top-k + EControl (eta {eta})",
          "econtrol_compressed": f"top-k + EControl (eta {eta}), compressed start"}
with open(f"{out}.md", "w") as table:
    table.write(f"Fashion-MNIST cnn, np=4, {epochs} epochs, momentum 0.9 with momentum correction; "
                f"{len(dense)} seeds each, dense in the same run\n\n")
    table.write("| method | ratio | mean test accuracy | range over seeds | vs dense (points) | within 1.5 |\n")
    table.write("|---|---:|---:|---|---:|---|\n")
    table.write(f"| dense | 1 | {base:.4f} | {min(dense):.4f}-{max(dense):.4f} | +0.00 | |\n")
    for (method, ratio), xs in sorted(runs.items()):
        done = [x for x in xs if x is not None]
        if len(done) < len(xs):
            table.write(f"| {labels[method]} | {ratio:g} | {len(xs) - len(done)} of {len(xs)} diverged | | | no |\n")
            continue
        points = 100 * (mean(done) - base)
        table.write(f"| {labels[method]} | {ratio:g} | {mean(done):.4f} | {min(done):.4f}-{max(done):.4f} "
                  f"| {points:+.2f} | {'yes' if points >= -1.5 else 'no'} |\n")
print(open(f"{out}.md").read())
fig, ax = plt.subplots(figsize=(6, 4))
for method in ("ef", "econtrol"):
    pts = sorted((r, 100 * (mean(xs) - base)) for (m, r), xs in runs.items()
                 if m == method and None not in xs)
    ax.plot([r for r, _ in pts], [p for _, p in pts], "o-", label=labels[method])
ax.axhline(-1.5, color="gray", linestyle="--", label="1.5 points below dense")
ax.axhline(0, color="black", linewidth=0.8)
ax.set_xscale("log")
ax.set_xlabel("compression.ratio (fraction of each tensor kept)")
ax.set_ylabel("test accuracy vs dense (points, mean of seeds)")
ax.set_title(f"Fashion-MNIST cnn, np=4, {epochs} epochs")
ax.legend()
fig.tight_layout()
fig.savefig(f"{out}.png", dpi=100)
PY
echo "wrote $out.md and $out.png (runs in $work)"
