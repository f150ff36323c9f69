#!/usr/bin/env bash
# Allreduce sweep: braid's algorithms and MPI's own (native) in the same run, repeated REPEATS
# times (default 3); then, per size, each algorithm's median busbw as a ratio of native's.
#   bench/allreduce.sh                 # np=2, 4 KiB .. 256 MiB
#   NP=4 bench/allreduce.sh            # oversubscribed on a 2-core machine
#   COST_MODEL=cost.yaml ...           # `auto` from a calibration (braid bench allreduce --calibrate)
# Environment: NP, MIN, MAX, ITERS, REPEATS, COST_MODEL (passed as --cost-model),
#   OUT (jsonl, default bench/results/allreduce_np$NP.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
np=${NP:-2}
out=${OUT:-bench/results/allreduce_np$np.jsonl}
mkdir -p "$(dirname "$out")"
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
extra=()
[ -z "${COST_MODEL:-}" ] || extra+=(--cost-model "$COST_MODEL")
: > "$out"
for _ in $(seq "${REPEATS:-3}"); do
  mpirun "${flags[@]}" -np "$np" build/bin/braid bench allreduce --algorithm all \
    --min-bytes "${MIN:-4K}" --max-bytes "${MAX:-256M}" --iters "${ITERS:-20}" --warmup 3 --json "${extra[@]}" >> "$out"
done
python3 bench/allreduce_ratios.py "$out"
