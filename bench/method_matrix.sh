#!/usr/bin/env bash
# The method x bandwidth matrix: for configs/fortunes_char_transformer.yaml at np=NP (default 4,
# every rank a node of its own), each method's time to a target test loss, its loss after a
# fixed wall-clock budget, bytes per rank and compute utilisation at each link rate of
# bench/plan.sh, with `braid plan`'s first choice marked.
#
# How, in two parts that each measure what they can measure well on a 2-core machine:
#  1. Loss against steps: every method trains once on the unlimited link (plain mpirun), with
#     a test evaluation every EVAL_EVERY steps (default 30): sync STEPS (default 300), the
#     compressed ones COMPRESSED_STEPS (600), the local ones LOCAL_STEPS (900); the same inner
#     learning rate LR (0.01) and H = outer.steps = 20 for all (bench/results/slowlink_local_lr.md
#     found 0.01 near the best for every method). A method's loss after n steps does not depend
#     on the link: every exchange completes the same way, only later.
#  2. Time per step at each rate: bench/plan.sh's measured step and compute times (PLAN_WORK, its
#     work directory: the same methods and overrides, under launch/braid-slowlink).
# Time to target = the first evaluated step at or below the target (sync's final loss + 0.1 on
# the unlimited link) x that method's measured step time at the rate (evaluation excluded).
# Loss after the budget (sync's wall-clock for its STEPS steps on the unlimited link): the last
# evaluation at or before the steps the method completes in that time at the rate.
# Utilisation = compute time / step time, from the same measurement.
# Writes bench/results/method_matrix.md, method_matrix_time.png (heatmap of time to target,
# the planner's pick boxed) and method_matrix_utilisation.png.
set -euo pipefail
cd "$(dirname "$0")/.."
np=${NP:-4} eval_every=${EVAL_EVERY:-30} lr=${LR:-0.01}
plan_work=${PLAN_WORK:?set PLAN_WORK to the work directory of a bench/plan.sh run}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
source bench/plan_methods.sh
config=$plan_config
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
declare -A steps_of=([exact]=${STEPS:-300} [compressed]=${COMPRESSED_STEPS:-600} [local]=${LOCAL_STEPS:-900})
for entry in "${plan_methods[@]}"; do
  IFS='|' read -r name class extra <<< "$entry"
  steps=${steps_of[$class]}
  # shellcheck disable=SC2206
  extra=($extra)
  if [ -f "$work/$name/summary.json" ]; then continue; fi  # WORK reused: keep finished runs
  rm -rf "${work:?}/$name"
  TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid train "$config" --run-dir "$work/$name" \
    --set train.max_steps="$steps" --set train.epochs=1000 --set train.eval_every="$eval_every" \
    --set train.log_every="$eval_every" --set train.checkpoint_every=0 --set train.resume=never \
    --set optimizer.lr="$lr" "${plan_common[@]}" --progress lines "${extra[@]}" > "$work/$name.log" 2>&1 ||
    { tail -5 "$work/$name.log"; exit 1; }
  echo "$name: $(grep -o '"test_loss":[0-9.]*' "$work/$name/summary.json")"
done
/usr/bin/python3 bench/method_matrix_report.py "$work" "$plan_work" bench/results/method_matrix \
  "bench/method_matrix.sh (NP=$np, PLAN_WORK from bench/plan.sh)"
echo "wrote bench/results/method_matrix.md and its PNGs (work: $work)"
