#!/usr/bin/env bash
# Robust aggregation (sync.aggregator) against Byzantine ranks (inject.attack), with plain
# averaging (`mean`) as the baseline and negative control in the same script.
#   1. Overhead: `braid bench train` step time of every rule against mean, clean, np=NP, for the
#      Fashion-MNIST cnn and the fortunes char_transformer (WARMUP, then STEPS timed steps).
#   2. Robustness: the Fashion-MNIST cnn, np=NP (default 8), EPOCHS (default 2) epochs, final test
#      accuracy for every rule x attack (none, sign_flip, scale, alie, ipm, random, drop, nan) with
#      f = 1 and f = 2 bad ranks (the last ranks), sync.byzantine = f (mean: 0), and a clean mean
#      run. train.nonfinite=skip, so a run whose model blows up finishes and reports its accuracy
#      instead of stopping.
# Writes bench/results/robust.md and robust.png (heatmaps of accuracy, one per f). Runs in WORK
# (default a fresh temporary directory); with SKIP_DONE=1 and the WORK of an interrupted run, the
# finished runs (and a complete overhead table) are kept. Expected: mean collapses under sign_flip, scale, alie;
# the best rule within 2 points of clean mean under sign_flip, alie and scale at f = 2.
set -euo pipefail
cd "$(dirname "$0")/.."
export NP=${NP:-8} ALLOW_FAIL=1
epochs=${EPOCHS:-2}
source bench/methods.sh
rules=(mean median trimmed_mean krum multi_krum centered_clip flag)
attacks=(none sign_flip scale alie ipm random drop nan)

# 1. Overhead, clean, before the long runs (quiet machine).
overhead=$work/overhead.jsonl
[ -n "${SKIP_DONE:-}" ] && [ "$(wc -l < "$overhead" 2>/dev/null || echo 0)" -eq 14 ] ||
  : > "$overhead"
[ -s "$overhead" ] || for config in configs/fashion_mnist_cnn.yaml configs/fortunes_char_transformer.yaml; do
  for rule in "${rules[@]}"; do
    f=1
    [ "$rule" = mean ] && f=0
    json=$(TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid bench train "$config" --json \
      --warmup "${WARMUP:-10}" --steps "${STEPS:-40}" --set runtime.ranks_per_node=1 \
      --set sync.aggregator="$rule" --set sync.byzantine="$f" | tail -1)
    echo "{\"config\":\"$(basename "$config" .yaml)\",\"rule\":\"$rule\",\"bench\":$json}" |
      tee -a "$overhead"
  done
done

# 2. Robustness.
methods=("clean_mean|--set sync.aggregator=mean")
for f in 1 2; do
  bad=$((np - 1))
  [ "$f" = 2 ] && bad="$((np - 2)),$((np - 1))"
  for attack in "${attacks[@]}"; do
    for rule in "${rules[@]}"; do
      [ "$attack" = none ] && [ "$rule" = mean ] && continue  # clean_mean
      settings="--set sync.aggregator=$rule --set sync.byzantine=$([ "$rule" = mean ] && echo 0 || echo "$f")"
      [ "$attack" = none ] ||
        settings+=" --set inject.attack=$attack --set inject.byzantine_ranks=[$bad]"
      methods+=("f${f}_${attack}_${rule}|$settings")
    done
  done
done
run_methods configs/fashion_mnist_cnn.yaml test_accuracy --set train.epochs="$epochs" \
  --set train.eval_every=0 --set train.log_every=117 --set train.nonfinite=skip

command="NP=$np EPOCHS=$epochs bench/robust.sh"
/usr/bin/python3 bench/robust_report.py "$work" "$np" "$epochs" "$command" \
  bench/results/robust.md bench/results/robust.png
echo "wrote bench/results/robust.md and robust.png (runs in $work)"
