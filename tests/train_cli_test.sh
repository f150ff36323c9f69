#!/usr/bin/env bash
# End-to-end tests of `braid train` under mpirun. Usage: train_cli_test.sh MODE BRAID SOURCE_DIR
#   accuracy      mlp, 2 ranks, one epoch: final test accuracy >= 0.80
#   resume        an interrupted and resumed run logs the same losses, bit for bit, as an
#                 uninterrupted one; a corrupt checkpoint is then refused
#   bad_configs   every file in tests/bad_configs exits 2 on all ranks, prints one message and
#                 creates no run directory
#   uneven        5 ranks on a data set of 1003 samples finish
#   configs       every ready config in configs/ passes `config check` and trains a few steps
set -euo pipefail
mode=$1 braid=$(realpath "$2") src=$(realpath "$3")
mpirun=(mpirun --oversubscribe)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
train() { "${mpirun[@]}" -np "$1" "$braid" train "${@:2}"; }
json_number() { grep -o "\"$2\":[-0-9.e+]*" "$1" | tail -1 | cut -d: -f2; }

case $mode in
accuracy)
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/run" --set train.log_every=0
  acc=$(json_number "$work/run/summary.json" test_accuracy)
  echo "test accuracy $acc"
  awk -v a="$acc" 'BEGIN { exit !(a >= 0.80) }' || fail "test accuracy $acc < 0.80"
  grep -q '"test_accuracy"' "$work/run/metrics.jsonl" || fail "no evaluation line in metrics.jsonl"
  [ -f "$work/run/config.yaml" ] || fail "resolved config not written"
  ;;
resume)
  common=(--set train.log_every=5 --set train.checkpoint_every=20 --set data.train_limit=4096
          --set model.hidden=64)
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/a" "${common[@]}" --set train.max_steps=40
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=20 \
    --set train.resume=auto
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=40 \
    --set train.resume=auto
  losses() { grep '"loss"' "$1/metrics.jsonl" | grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*'; }
  diff <(losses "$work/a") <(losses "$work/b") || fail "resumed run's losses differ"
  [ "$(losses "$work/b" | wc -l)" -eq 8 ] || fail "expected 8 loss lines, got $(losses "$work/b" | wc -l)"
  echo "resumed losses identical: $(losses "$work/b" | tail -1)"
  # Flip one byte in the middle of rank 0's newest checkpoint.
  ckpt="$work/b/checkpoints/$(cat "$work/b/checkpoints/latest")/rank-00000.ckpt"
  size=$(stat -c %s "$ckpt")
  printf '\xff' | dd of="$ckpt" bs=1 seek=$((size / 2)) conv=notrunc status=none
  set +e
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" \
        --set train.max_steps=60 --set train.resume=auto 2>&1)
  code=$?
  set -e
  echo "$out" | tail -3
  [ "$code" -ne 0 ] || fail "a corrupt checkpoint was accepted"
  echo "$out" | grep -q "corrupt: CRC-32 mismatch" || fail "no corrupt-checkpoint message"
  grep -q '"step":45' "$work/b/metrics.jsonl" && fail "training went on past the corrupt checkpoint"
  ;;
bad_configs)
  n=0
  for config in "$src"/tests/bad_configs/*.yaml; do
    set +e
    out=$(cd "$work" && train 2 "$config" --run-dir "$work/run-$n" 2>&1)
    code=$?
    set -e
    messages=$(echo "$out" | grep -c '^braid: ' || true)
    echo "$(basename "$config"): exit $code: $(echo "$out" | grep '^braid: ' | head -1)"
    [ "$code" -eq 2 ] || fail "$config: exit $code, expected 2"
    [ "$messages" -eq 1 ] || fail "$config: $messages messages, expected 1"
    [ ! -e "$work/run-$n" ] || fail "$config: a run directory was created"
    n=$((n + 1))
  done
  [ "$n" -ge 10 ] || fail "only $n malformed configs"
  # A second run into a finished run's directory is refused, and nothing is overwritten.
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/done" --set train.max_steps=3 \
    --set train.log_every=1
  before=$(md5sum "$work/done/metrics.jsonl")
  set +e
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/done" --set train.max_steps=3 > "$work/out" 2>&1
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "reusing a run directory: exit $code, expected 2"
  grep -q "already holds a run" "$work/out" || fail "no message about the existing run"
  [ "$before" = "$(md5sum "$work/done/metrics.jsonl")" ] || fail "metrics.jsonl was overwritten"
  # Ranks whose resolved configs differ (an MPMD launch with another --set) refuse to start.
  set +e
  "${mpirun[@]}" -np 1 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/mpmd" \
    --set train.max_steps=3 : -np 1 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" \
    --run-dir "$work/mpmd" --set train.max_steps=4 > "$work/out" 2>&1
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "differing configs: exit $code, expected 2"
  grep -q "resolved config differs between rank 0 and rank 1" "$work/out" || fail "no config-hash message"
  [ ! -e "$work/mpmd" ] || fail "differing configs created a run directory"
  echo "$n malformed configs refused"
  ;;
uneven)
  train 5 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/run" --set data.train_limit=1003 \
    --set data.batch_size=16 --set train.epochs=2 --set train.log_every=4 --set train.eval_every=5
  # 1003 samples / (5 ranks x 16) = 12 steps per epoch, 2 epochs
  [ "$(json_number "$work/run/summary.json" steps)" -eq 24 ] || fail "expected 24 steps"
  ;;
configs)
  for config in "$src"/configs/*.yaml; do
    "$braid" config check "$config" > "$work/resolved.yaml"
    grep -q '^  strategy: "allreduce"' "$work/resolved.yaml" || fail "$config: resolved config lacks sync.strategy"
    name=$(basename "$config" .yaml)
    train 2 "$config" --run-dir "$work/$name" --set train.max_steps=6 --set train.log_every=3 \
      --set train.eval_every=0 --set data.test_limit=200
    [ "$(json_number "$work/$name/summary.json" steps)" -eq 6 ] || fail "$config: expected 6 steps"
    echo "$name: $(grep -o '"test_accuracy":[0-9.]*' "$work/$name/summary.json")"
  done
  ;;
*)
  echo "unknown mode $mode"; exit 2 ;;
esac
echo "PASS: $mode"
