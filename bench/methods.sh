# Sourced by the bench scripts that train one configuration per method against a baseline run
# in the same script (compression.sh, dgc.sh, onebit_adam.sh), from the repository root. Set
# `methods` (entries "name|--set key=value ..."), then `run_methods CONFIG METRIC ARGS...` runs
# each under mpirun with ARGS and its own settings into $work/<name> (log: $work/<name>.log,
# wall seconds: $work/<name>.seconds), prints METRIC from its summary.json and fills `names`.
# NP (default 4) and WORK (default a fresh temporary directory) come from the environment;
# ALLOW_FAIL=1 goes on after a failed run (a sweep that diverges somewhere) instead of exiting;
# SKIP_DONE=1 keeps the runs of an interrupted sweep in WORK that finished (have a summary.json).
np=${NP:-4}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
names=()

run_methods() {
  local config=$1 metric=$2 entry name start
  shift 2
  for entry in "${methods[@]}"; do
    name=${entry%%|*}
    names+=("$name")
    # shellcheck disable=SC2206
    local extra=(${entry#*|})
    if [ -n "${SKIP_DONE:-}" ] && [ -f "$work/$name/summary.json" ]; then
      echo "$name: kept from an earlier run"
      continue
    fi
    rm -rf "${work:?}/$name"
    start=$(date +%s)
    # ranks_per_node=1: the methods are compared as on separate machines, where the dense
    # baseline's gradients cross the network (on one node they would go through shared memory
    # and count no network bytes).
    TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid train "$config" --run-dir "$work/$name" \
      --set train.checkpoint_every=0 --set train.resume=never --set runtime.ranks_per_node=1 \
      --progress lines "$@" "${extra[@]}" \
      > "$work/$name.log" 2>&1 || { tail -5 "$work/$name.log"; [ -n "${ALLOW_FAIL:-}" ] || exit 1; }
    echo "$(($(date +%s) - start))" > "$work/$name.seconds"
    echo "$name: $(grep -o "\"$metric\":[0-9.]*" "$work/$name/summary.json") in $(cat "$work/$name.seconds") s"
  done
}

# bench/compression.sh's recipe (Fashion-MNIST cnn, EPOCHS epochs, evaluation every 117 steps, lr
# warm-up over 100 steps then cosine decay), shared by bench/econtrol_eta.sh so that its sweep
# compares with that table.
run_cnn_compression() {
  run_methods configs/fashion_mnist_cnn.yaml test_accuracy --set train.epochs="${EPOCHS:-2}" \
    --set train.eval_every=117 --set train.log_every=39 \
    --set optimizer.schedule=warmup_cosine --set optimizer.warmup_steps=100
}
