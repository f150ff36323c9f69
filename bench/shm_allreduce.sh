#!/usr/bin/env bash
# Shared-memory and hierarchical allreduce (the measured result), REPEATS times (default
# 3), medians:
#  (1) the machine's limit, measured here: `braid bench allreduce --stream` runs a[i] += b[i] over
#      64 MiB of float32 on 2 ranks at once (STREAM-style, 3 x 64 MiB of traffic per pass each);
#      limit = that bandwidth / 5 (a single-copy allreduce moves about 5 S bytes for S bytes).
#      Then np=2, 64 MiB float32: every braid algorithm and MPI_Allreduce (native), plus shm with
#      the buffer registered in shared memory (--registered). Reports busbw / limit (target >=
#      0.8) and busbw / native's (target >= 2).
#  (2) np=4 as two emulated nodes of two ranks (--ranks-per-node 2) under
#      `launch/braid-slowlink --rate 1gbit` (needs root), 16 MiB float32: hierarchical against
#      flat ring (target: >= 2.5x faster). SKIP_SLOWLINK=1 leaves it out.
# Writes bench/results/shm_allreduce.md and shm_allreduce.png (Debian's python3-matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${REPEATS:-3}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
braid=build/bin/braid
: > "$work/stream.jsonl"
: > "$work/np2.jsonl"
: > "$work/np2_registered.jsonl"
: > "$work/slowlink.jsonl"
cut -d' ' -f1-3 /proc/loadavg > "$work/load"
one=(--min-bytes 64M --max-bytes 64M --iters 10 --warmup 3 --json)
for _ in $(seq "$repeats"); do
  mpirun "${flags[@]}" -np 2 $braid bench allreduce --stream --max-bytes 64M --iters 10 --json \
    >> "$work/stream.jsonl"
  mpirun "${flags[@]}" -np 2 $braid bench allreduce --algorithm all "${one[@]}" >> "$work/np2.jsonl"
  mpirun "${flags[@]}" -np 2 $braid bench allreduce --algorithm shm --registered "${one[@]}" \
    >> "$work/np2_registered.jsonl"
done
if [ "${SKIP_SLOWLINK:-0}" != 1 ]; then
  for _ in $(seq "$repeats"); do
    for algorithm in ring hierarchical; do
      launch/braid-slowlink --quiet --rate 1gbit -- mpirun "${flags[@]}" -np 4 $braid bench \
        allreduce --ranks-per-node 2 --algorithm "$algorithm" --min-bytes 16M --max-bytes 16M \
        --iters 3 --warmup 1 --min-time-ms 0 --json >> "$work/slowlink.jsonl"
    done
  done
fi
cut -d' ' -f1-3 /proc/loadavg >> "$work/load"
/usr/bin/python3 bench/shm_allreduce_report.py "$work" bench/results/shm_allreduce.md \
  bench/results/shm_allreduce.png "REPEATS=$repeats bench/shm_allreduce.sh"
