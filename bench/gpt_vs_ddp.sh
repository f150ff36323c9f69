#!/usr/bin/env bash
# braid against PyTorch DDP (Gloo) at a realistic size: a TorchScript GPT of 19,243,008
# parameters (77 MB of float32 gradients; examples/python/gpt.py --layers 6 --d-model 512
# --heads 8 --context 128) on token files made from Debian's fortunes corpus
# (examples/python/prepare.py), 2 ranks, 4 windows of 128 tokens per rank and step, AdamW
# (lr 6e-4, no weight decay), one torch thread per rank. Both train the same scripted file.
#
#   bench/gpt_vs_ddp.sh    # STEPS=40 WARMUP=5 RATE=1gbit REPEATS=2; writes bench/results/gpt_vs_ddp.{md,png}
#
# Runs, in this order:
#   unlimited link: braid (dense allreduce) and PyTorch DDP, alternating, REPEATS times each;
#                   two independent braid processes (np 1 each, at the same time: no
#                   communication at all, the limit), once;
#   RATE (launch/braid-slowlink, MPI and Gloo on TCP over the shaped loopback): braid dense and
#                   DDP dense, alternating, REPEATS times; braid compression.name powersgd (rank
#                   4, error feedback ef, 2 dense steps) and DDP with PyTorch's powerSGD_hook
#                   (rank 4, error feedback, warm start, start_powerSGD_iter 2), once each.
# Both read the same windows in the same order (bench/ddp_gpt.py reproduces braid's sampler), so
# the dense runs' losses agree step by step; throughput is the median over the repeats.
# samples/s counts the steps after WARMUP (braid: from time_s in metrics.jsonl; DDP: from a
# barrier to a barrier); losses are the mean over ranks at each step. Needs root for the slow
# link (network namespaces) and Debian's python3-torch (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-40} warmup=${WARMUP:-5} rate=${RATE:-1gbit} repeats=${REPEATS:-2}
out=${OUT:-bench/results}
/usr/bin/python3 -c "import torch, matplotlib" 2>/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-matplotlib
[ -x build/bin/braid ] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TERM=dumb
work=$(mktemp -d "${TMPDIR:-/tmp}/braid-gpt-vs-ddp.XXXXXX")
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 examples/python/prepare.py /usr/share/games/fortunes "$work/data"
/usr/bin/python3 examples/python/gpt.py "$work/gpt.pt" --layers 6 --d-model 512 --heads 8 \
  --context 128 | tee "$work/model.txt"
cat > "$work/gpt.yaml" <<EOF
run: {seed: 1}
model: {name: torchscript, path: $work/gpt.pt, loss: cross_entropy}
data: {name: tokens, path: $work/data, token_dtype: uint16, context: 128, batch_size: 4, test_limit: 16}
optimizer: {name: adamw, lr: 0.0006, weight_decay: 0.0}
train: {epochs: 1, max_steps: $steps, log_every: 1, eval_batch_size: 16}
runtime: {threads: 1, progress: lines}
EOF

run_braid() {  # run_braid NAME NP [--set ...]: one braid run into $work/NAME
  local name=$1 np=$2
  shift 2
  mpirun --oversubscribe ${MPI_BIND:-} -np "$np" build/bin/braid train "$work/gpt.yaml" --run-dir "$work/$name" "$@" \
    > "$work/$name.log" 2>&1 || { tail -20 "$work/$name.log"; exit 1; }
  echo "  braid $name done"
}
run_ddp() {  # run_ddp NAME [--powersgd-rank R]: PyTorch DDP into $work/NAME.json
  local name=$1
  shift
  mpirun --oversubscribe -np 2 /usr/bin/python3 bench/ddp_gpt.py --model "$work/gpt.pt" \
    --data "$work/data" --batch 4 --context 128 --steps "$steps" --warmup "$warmup" \
    --out "$work/$name.json" "$@" > "$work/$name.log" 2>&1 || { tail -20 "$work/$name.log"; exit 1; }
  echo "  ddp $name done"
}
slow() { launch/braid-slowlink --quiet --rate "$rate" -- bash -c "$1"; }
export -f run_braid run_ddp
export work steps warmup

echo "unlimited link"
for i in $(seq "$repeats"); do
  run_braid "braid_unlimited_$i" 2
  run_ddp "ddp_unlimited_$i"
done
# Two mpiruns would each bind their rank to core 0: unbound, the kernel gives each a core.
MPI_BIND="--bind-to none" run_braid independent_0 1 & first=$!
MPI_BIND="--bind-to none" run_braid independent_1 1 --set run.seed=2 & second=$!
wait "$first" && wait "$second"
echo "slow link ($rate)"
for i in $(seq "$repeats"); do
  slow "run_braid braid_slow_$i 2"
  slow "run_ddp ddp_slow_$i"
done
slow "run_braid braid_powersgd_slow 2 --set compression.name=powersgd --set compression.rank=4 \
  --set compression.error_feedback=ef --set compression.dense_steps=2"
slow "run_ddp ddp_powersgd_slow --powersgd-rank 4"

/usr/bin/python3 bench/gpt_vs_ddp_report.py "$work" --warmup "$warmup" --rate "$rate" --repeats "$repeats" \
  --model "$(cat "$work/model.txt")" --md "$out/gpt_vs_ddp.md" --png "$out/gpt_vs_ddp.png"
