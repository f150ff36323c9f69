#!/usr/bin/env bash
# What a recording option costs: the same NP-rank (default 2) Fashion-MNIST cnn run with it off
# and on, alternating REPEATS times (default 5), 20 warm-up steps then 200 timed (from
# metrics.jsonl's step_ms). Usage: bench/trace_overhead.sh [KEY OFF ON], default runtime.trace
# false true (also: runtime.flight_recorder 0 2000; NP=4 runtime.link_probe_every 0 5). Prints
# each measurement and the ratio of the medians (on / off); writes the table to
# bench/results/<key without "runtime.">_overhead.md (with _npN before .md when NP is not 2).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${REPEATS:-5} np=${NP:-2}
key=${1:-runtime.trace} off_value=${2:-false} on_value=${3:-true}
out=bench/results/${key#runtime.}_overhead.md
[ "$np" = 2 ] || out=${out%.md}_np$np.md
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # run NAME VALUE -> samples/s over steps 21..220
  TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid train configs/fashion_mnist_cnn.yaml \
    --run-dir "$work/$1" --set train.max_steps=220 --set train.log_every=20 \
    --set train.eval_every=0 --set data.test_limit=200 --set "$key=$2" > "$work/$1.log" 2>&1
  python3 - "$work/$1/metrics.jsonl" "$np" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l and json.loads(l)["step"] > 20]
seconds = sum(l["step_ms"] * 20 / 1000 for l in lines)
print(f"{len(lines) * 20 * 64 * int(sys.argv[2]) / seconds:.0f}")
PY
}
off=() on=()
for i in $(seq "$repeats"); do
  off+=("$(run "off$i" "$off_value")")
  on+=("$(run "on$i" "$on_value")")
  echo "repeat $i: $key=$off_value ${off[-1]} samples/s, $key=$on_value ${on[-1]} samples/s"
done
python3 - "${off[*]}" "${on[*]}" "$key" "$off_value" "$on_value" <<'PY' | tee "$out"
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
key, off_value, on_value = sys.argv[3:6]
print(f"| {key} | samples/s, each repeat | median |")
print("|---|---|---|")
print(f"| {off_value} | {', '.join(f'{x:.0f}' for x in off)} | {statistics.median(off):.0f} |")
print(f"| {on_value} | {', '.join(f'{x:.0f}' for x in on)} | {statistics.median(on):.0f} |")
print(f"\nratio of medians, on / off: {statistics.median(on) / statistics.median(off):.3f}")
PY
