#!/usr/bin/env bash
# EControl's eta (compression.eta) swept for top-k 1% with momentum correction, against dense in
# the same script, with bench/compression.sh's recipe: Fashion-MNIST cnn, np=4, 2 epochs, batch 64
# per rank, SGD momentum 0.9, lr 0.05 after 100 linear warm-up steps, then cosine decay. ETAS
# (default "0 0.0005 0.001 0.002 0.005 0.02 0.1 0.5") sets the sweep; a run that diverges (stops
# on a non-finite gradient, train.nonfinite: error) is reported as such. Writes
# bench/results/econtrol_eta.md and econtrol_eta.png (test accuracy against eta, dense as a line).
set -euo pipefail
cd "$(dirname "$0")/.."
ALLOW_FAIL=1
source bench/methods.sh
methods=("dense|")
for eta in ${ETAS:-0 0.0005 0.001 0.002 0.005 0.02 0.1 0.5}; do
  methods+=("econtrol-eta-$eta|--set compression.name=topk --set compression.ratio=0.01 --set compression.error_feedback=econtrol --set compression.eta=$eta --set compression.momentum_correction=true")
done
run_cnn_compression
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
/usr/bin/python3 - "$work" "${names[@]}" <<'PY'
import json, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
work, names = sys.argv[1], sys.argv[2:]
def accuracy(n):
    path = f"{work}/{n}/summary.json"
    return json.load(open(path))["test_accuracy"] if os.path.exists(path) else None
runs = [(float(n.rsplit("-", 1)[1]), accuracy(n)) for n in names if n != "dense"]
done = [(eta, a) for eta, a in runs if a is not None]
# eta 0 has no place on a log axis: it is drawn at a tenth of the smallest positive eta.
floor = min(eta for eta, _ in runs if eta > 0) / 10
xs = [eta if eta > 0 else floor for eta, _ in done]
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(xs, [a for _, a in done], "o-", label="top-k 1% + EControl + momentum correction")
ax.axhline(accuracy("dense"), color="gray", linestyle="--", label="dense")
for eta, a in runs:
    if a is None:  # a cross at the bottom, so the axis reaches it
        y = min(a for _, a in done)
        ax.plot([eta], [y], "rx")
        ax.annotate("diverged", (eta, y), textcoords="offset points", xytext=(0, 8), ha="center")
ax.set_xscale("log")
ax.set_xlabel(f"compression.eta (eta 0 drawn at {floor:g})")
ax.set_ylabel("test accuracy")
ax.set_title("Fashion-MNIST cnn, np=4, 2 epochs")
ax.legend()
fig.tight_layout()
fig.savefig("bench/results/econtrol_eta.png", dpi=100)
PY
echo "wrote bench/results/econtrol_eta.md and econtrol_eta.png (runs in $work)"
