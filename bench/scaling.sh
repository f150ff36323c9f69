#!/usr/bin/env bash
# Training scaling on one machine: `braid bench train` on the Fashion-MNIST cnn config at
# np = 1, 2, 4 (NPS), batch 64 per rank, 1 torch thread per rank, 5 warm-up + STEPS timed steps
# (default 100), REPEATS rounds (default 5) that each run every np once (np order 1, 2, 4, so a
# slow spell of the machine hits all rank counts alike). Reports, per np, the run with the
# median samples/s (a real run, so its compute_ms + comm_ms = step_ms); efficiency = that
# samples/s at P / (P * that samples/s at 1). Writes
# bench/results/scaling.md (table, with every run and the machine) and bench/results/scaling.png
# (throughput against ideal; step time split into compute and exposed communication).
# Needs Debian's python3-matplotlib for the plot (installed if missing; run by /usr/bin/python3,
# since another python3 on PATH does not see Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${REPEATS:-5} steps=${STEPS:-100} nps=(${NPS:-1 2 4})
config=configs/fashion_mnist_cnn.yaml
/usr/bin/python3 -c "import matplotlib" 2>/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq "$repeats"); do
  for np in "${nps[@]}"; do
    # np=1 writes the baseline file that the larger runs of this round read.
    TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid bench train "$config" --steps "$steps" \
      --set runtime.threads=1 --set data.batch_size=64 --baseline "$work/baseline$i.json" --json \
      2> "$work/err" | grep '^{' | sed "s/^{/{\"repeat\":$i,/" | tee -a "$work/runs.jsonl" ||
      { cat "$work/err"; exit 1; }
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/python3 - "$work/runs.jsonl" "$config" "$steps" "$(nproc)" "$load_before" "$load_after" <<'PY'
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

runs = [json.loads(l) for l in open(sys.argv[1])]
config, steps, cores, load_before, load_after = sys.argv[2:7]
nps = sorted({r["ranks"] for r in runs})
def median_run(p):
    at_p = sorted((r for r in runs if r["ranks"] == p), key=lambda r: r["samples_per_s"])
    return at_p[(len(at_p) - 1) // 2]
med = {p: median_run(p) for p in nps}
base = med[1]["samples_per_s"]
rows = ["| ranks | samples/s | step_ms | compute_ms | comm_ms | efficiency |",
        "|---:|---:|---:|---:|---:|---:|"]
for p in nps:
    m = med[p]
    rows.append(f"| {p} | {m['samples_per_s']:.0f} | {m['step_ms']:.1f} | {m['compute_ms']:.1f} "
                f"| {m['comm_ms']:.1f} | {m['samples_per_s'] / (p * base):.2f} |")
every = ["| repeat | ranks | samples/s | step_ms | compute_ms | comm_ms | efficiency (own baseline) |",
         "|---:|---:|---:|---:|---:|---:|---:|"]
for r in runs:
    eff = "-" if r["efficiency"] is None else f"{r['efficiency']:.2f}"
    every.append(f"| {r['repeat']} | {r['ranks']} | {r['samples_per_s']:.0f} | {r['step_ms']:.1f} "
                 f"| {r['compute_ms']:.1f} | {r['comm_ms']:.1f} | {eff} |")
repeats = max(r["repeat"] for r in runs)
with open("bench/results/scaling.md", "w") as f:
    f.write(f"""# Training scaling on one machine

`bench/scaling.sh`: `braid bench train {config}` (cnn, batch 64 per rank, 1 torch thread
per rank, synchronous allreduce with overlap), {steps} timed steps after 5 warm-up; per rank
count, the run with the median samples/s of {repeats} rounds. Efficiency = samples/s at P / (P x samples/s at 1 rank).

Machine: {cores} cores; load average {load_before} before, {load_after} after (a load above
the core count means other jobs shared the machine). With more ranks than cores the ranks **oversubscribe** the cores: at
np={max(nps)} on {cores} cores, ranks take turns on a core, so compute_ms grows and waiting for
a descheduled peer shows up as comm_ms. These numbers measure the machine's core count, not
braid's scaling; the command is meant for clusters, one rank per core group or GPU.

{chr(10).join(rows)}

![scaling](scaling.png)

Every run:

{chr(10).join(every)}
""")

fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
a.plot(nps, [med[p]["samples_per_s"] for p in nps], "o-", label="braid (median)")
a.plot(nps, [p * base for p in nps], "--", color="gray", label="ideal (P x one rank)")
a.set_xlabel("ranks"); a.set_ylabel("samples/s"); a.set_xticks(nps); a.set_ylim(bottom=0); a.legend()
a.set_title(f"throughput ({cores} cores)")
compute = [med[p]["compute_ms"] for p in nps]
comm = [med[p]["comm_ms"] for p in nps]
b.bar([str(p) for p in nps], compute, label="compute")
b.bar([str(p) for p in nps], comm, bottom=compute, label="exposed communication")
b.set_xlabel("ranks"); b.set_ylabel("ms per step"); b.legend(); b.set_title("step time")
fig.suptitle(f"braid bench train {config}, batch 64 per rank")
fig.tight_layout()
fig.savefig("bench/results/scaling.png", dpi=100)
print("\n".join(rows))
PY
echo "wrote bench/results/scaling.md and bench/results/scaling.png"
