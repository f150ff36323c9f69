#!/usr/bin/env bash
# What runtime.trace costs: the same 2-rank Fashion-MNIST cnn run with the trace off and on,
# alternating REPEATS times (default 5), 20 warm-up steps then 200 timed (from metrics.jsonl's
# step_ms). Prints each measurement and the ratio of the medians (on / off); writes the table to
# bench/results/trace_overhead.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${REPEATS:-5}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # run NAME TRACE -> samples/s over steps 21..220
  TERM=dumb mpirun "${flags[@]}" -np 2 build/bin/braid train configs/fashion_mnist_cnn.yaml \
    --run-dir "$work/$1" --set train.max_steps=220 --set train.log_every=20 \
    --set train.eval_every=0 --set data.test_limit=200 --set runtime.trace="$2" > "$work/$1.log" 2>&1
  python3 - "$work/$1/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l and json.loads(l)["step"] > 20]
seconds = sum(l["step_ms"] * 20 / 1000 for l in lines)
print(f"{len(lines) * 20 * 64 * 2 / seconds:.0f}")
PY
}
off=() on=()
for i in $(seq "$repeats"); do
  off+=("$(run "off$i" false)")
  on+=("$(run "on$i" true)")
  echo "repeat $i: trace off ${off[-1]} samples/s, trace on ${on[-1]} samples/s"
done
python3 - "${off[*]}" "${on[*]}" <<'PY' | tee bench/results/trace_overhead.md
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
print("| runtime.trace | samples/s, each repeat | median |")
print("|---|---|---|")
print(f"| false | {', '.join(f'{x:.0f}' for x in off)} | {statistics.median(off):.0f} |")
print(f"| true | {', '.join(f'{x:.0f}' for x in on)} | {statistics.median(on):.0f} |")
print(f"\nratio of medians, on / off: {statistics.median(on) / statistics.median(off):.3f}")
PY
