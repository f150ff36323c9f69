#!/usr/bin/env bash
# Allreduce sweep: braid's algorithms and MPI's own (native) in the same run, then each
# algorithm's busbw as a ratio of native's at every size.
#   bench/allreduce.sh                 # np=2, 4 KiB .. 256 MiB
#   NP=4 bench/allreduce.sh            # oversubscribed on a 2-core machine
# Environment: NP, MIN, MAX, ITERS, OUT (jsonl file, default bench/results/allreduce_np$NP.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
np=${NP:-2}
out=${OUT:-bench/results/allreduce_np$np.jsonl}
mkdir -p "$(dirname "$out")"
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
mpirun "${flags[@]}" -np "$np" build/bin/braid bench allreduce --algorithm all \
  --min-bytes "${MIN:-4K}" --max-bytes "${MAX:-256M}" --iters "${ITERS:-20}" --warmup 3 --json > "$out"
python3 bench/allreduce_ratios.py "$out"
