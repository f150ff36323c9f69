#!/usr/bin/env bash
# End-to-end tests of `braid train` under mpirun. Usage: train_cli_test.sh MODE BRAID SOURCE_DIR
#   accuracy      mlp, 2 ranks, one epoch: final test accuracy >= 0.80
#   resume        an interrupted and resumed run logs the same losses, bit for bit, as an
#                 uninterrupted one; a changed batch size is refused (exit 2); a corrupt newest
#                 checkpoint falls back to the older one; corrupt checkpoints only are an error
#   bad_configs   every file in tests/bad_configs exits 2 on all ranks, prints one message and
#                 creates no run directory
#   uneven        5 ranks on a data set of 1003 samples finish
#   configs       every ready config in configs/ passes `config check` and trains a few steps
#   trace         runtime.trace writes a Chrome trace per rank with every phase of a step
#   config_check  `config check` refuses (exit 2) what `train` refuses at start, with the same
#                 message; --debug-checks and --progress reach the resolved config
#   interrupt     SIGTERM and SIGINT to the ranks: a checkpoint on every rank, exit 143 / 130,
#                 and rerunning continues with the losses of an uninterrupted run; SIGINT to
#                 mpirun (a Ctrl-C): the ranks stop on mpirun's immediate SIGCONT
#   run_dir_lock  a second job in a running job's run.dir (resume auto or never) exits 2 naming the
#                 directory and the owner (host, pid, since) and writes nothing; the lock is free
#                 once the owner ends, also when it was killed with SIGKILL
#   rerun         a finished run rerun changes nothing; byte totals continue across a resume;
#                 a run resumed at another rank count continues at the same sample
#   compression   top-k 10% with error feedback, and dgc across its warm-up: the residuals (and
#                 dgc's velocities) are saved, so a resumed run logs the losses of an uninterrupted
#                 one; resuming the residuals at another rank count is refused naming them;
#                 compression_ratio is reported
#   local_update  diloco, local_sgd and co2 at 2 ranks: a run resumed from a mid-round checkpoint
#                 logs the losses of an uninterrupted one; a changed outer.lr is refused;
#                 outer.steps 0 exits 2 naming the key
#   streaming_diloco  at 2 ranks: a run resumed from a checkpoint with a fragment in flight logs
#                 the losses of an uninterrupted one; a changed outer.wire is refused;
#                 outer.delay_steps >= outer.steps exits 2 naming the key
#   onebit_adam   1-bit Adam on 3 ranks, freezing after 5 steps: momentum, frozen variance and both
#                 error buffers are saved, so a run resumed in the compression phase logs the
#                 losses of an uninterrupted one; compression_ratio is reported; resumed at 2
#                 ranks, the error buffers start again from zero (logged) and the run goes on
#   gradient_coding  2 ranks, rank 1 slowed 3x with inject: (the warning is logged): a
#                 gradient_coding run, interrupted by a checkpoint and resumed, logs the losses of
#                 synchronous allreduce on the same global batch (float32: to 1e-4)
#   nonfinite     a diverging run (optimizer.lr=5): with train.nonfinite error (the default) every
#                 rank exits 1 and the message naming rank, parameter and step is printed once;
#                 with skip the run finishes (exit 0) and metrics.jsonl counts skipped_steps
#   stall         3 ranks: SIGUSR1 writes every rank's flight record and `braid doctor` finds
#                 nothing wrong; rank 1 stopped (SIGSTOP): the others report the stall naming
#                 rank 1 before runtime.timeout_s, the job exits 1, and the doctor names rank 1
#   straggler     rank 2 of 3 slowed 3x (inject:): named in the log and on metrics.jsonl's
#                 training lines from step 21 on; ranks 0 and 1 never are
#   straggler_trace  3 ranks, rank 2 delayed 30 ms at every step by an inject.trace file: named as
#                 the straggler, the others never; bench/traces/bursty_trace.py's output is
#                 accepted; a malformed line exits 2 naming the file and the line, creating nothing
#   slow_link     4 ranks, one per emulated node, the link between ranks 1 and 2 slowed 10x and
#                 2 ms per message in the transport (inject.slow_links): named by the link probe
#                 (runtime.link_probe_every=5) in the log and on metrics.jsonl's last training
#                 line, and no other link is
#   restart       launch/braid-restart over 3 ranks, one emulated node per rank, rank 2 killing
#                 itself in every run (inject.crash_rank): two restarts, the node excluded, the
#                 run finishes on 2 ranks resuming from a checkpoint; a bad config (exit 2) and
#                 --max-restarts 0 are not restarted
#   robust        4 ranks, rank 1 sending -10 g (inject.attack scale): under sync.aggregator
#                 median the loss falls and test accuracy passes 0.6, under mean (the negative
#                 control) the run stops on a non-finite gradient; centered_clip, interrupted by a
#                 checkpoint and resumed, logs the losses of an uninterrupted run (its center is
#                 saved); krum beyond its limit at 4 ranks exits 2 naming it
#   sequential_coding  4 ranks, ranks 2, 1 and 3 delayed 400 ms once each (inject.trace): m_sgc
#                 (burst 2, window 3, lambda 1), interrupted by a checkpoint and resumed (the
#                 pipeline restarts, logged), and sr_sgc both learn (test accuracy >= 0.4, where a
#                 diverged run stays at 0.1)
#   progress      --progress auto draws no bar into a file even though mpirun gives ranks a
#                 pseudo-terminal; bar draws one, and evaluation lines never share its line;
#                 model.pt is written
set -euo pipefail
mode=$1 braid=$(realpath "$2") src=$(realpath "$3")
mpirun=(mpirun --oversubscribe)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
train() { "${mpirun[@]}" -np "$1" "$braid" train "${@:2}"; }
# Bounded wait (60 s) until run directory $1 has logged $2 training lines; false if it never does.
await_losses() {
  for _ in $(seq 600); do
    [ -f "$1/metrics.jsonl" ] && [ "$(grep -c '"loss"' "$1/metrics.jsonl")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
json_number() { grep -o "\"$2\":[-0-9.e+]*" "$1" | tail -1 | cut -d: -f2; }

# The pid of rank $2 of the job started by launcher pid $1.
rank_pid() {
  for pid in $(pgrep -P "$1"); do
    tr '\0' '\n' < "/proc/$pid/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" &&
      { echo "$pid"; return 0; }
  done
  return 1
}
# Bounded wait (60 s) until $1 exists.
await_file() {
  for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.1; done
  return 1
}

case $mode in
stall)
  run="$work/stall"
  "${mpirun[@]}" -np 3 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$run" \
    --set train.log_every=1 --set train.max_steps=1000000 --set data.train_limit=4096 \
    --set model.hidden=64 --set runtime.timeout_s=6 > "$work/out" 2>&1 &
  launcher=$!
  await_losses "$run" 5 || { cat "$work/out"; fail "training did not start"; }
  pkill -USR1 -P "$launcher"
  for r in 0 1 2; do
    await_file "$run/flight/rank-0000$r.json" || fail "SIGUSR1: no flight record of rank $r"
  done
  "$braid" doctor "$run" > "$work/doctor.live" || { cat "$work/doctor.live"; fail "a live job diagnosed"; }
  grep -q "^ok: " "$work/doctor.live" || fail "no ok line: $(cat "$work/doctor.live")"
  victim=$(rank_pid "$launcher" 1) || fail "rank 1 not found"
  kill -STOP "$victim"
  set +e
  wait "$launcher"
  code=$?
  set -e
  kill -KILL "$victim" 2> /dev/null || true
  [ "$code" -eq 1 ] || { cat "$work/out"; fail "stopped rank: exit $code, expected 1"; }
  grep -Eq "\[rank [02]\] \[warning\] stall: .* has waited [0-9.]+ s for rank 1" "$work/out" ||
    { cat "$work/out"; fail "no stall report naming rank 1"; }
  set +e
  "$braid" doctor "$run" > "$work/doctor.txt"
  code=$?
  "$braid" doctor --json "$run" > "$work/doctor.json"
  set -e
  cat "$work/doctor.txt"
  [ "$code" -eq 1 ] || fail "doctor: exit $code on a failed run, expected 1"
  culprit=$(/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["culprit"]["rank"])' \
            < "$work/doctor.json")
  [ "$culprit" = 1 ] || fail "doctor named rank $culprit, not the stopped rank 1"
  bash "$src/tests/expect_exit.sh" 2 "does not exist" -- "$braid" doctor "$work/nowhere"
  ;;
straggler)
  common=(--set train.log_every=5 --set train.max_steps=40 --set data.train_limit=4096
          --set model.hidden=64 --set train.eval_every=0 --set data.test_limit=200)
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  train 3 "$cfg" --run-dir "$work/slow" "${common[@]}" --set inject.slow_ranks=[2] \
    --set inject.slowdown=3 > "$work/slow.log" 2>&1 || { cat "$work/slow.log"; fail "slowed run"; }
  grep -q "straggler: rank 2 computes" "$work/slow.log" || fail "no straggler line: $(cat "$work/slow.log")"
  # Lines at steps 5..20 cannot name it yet (20 slow steps are read one step late); 25.. must.
  flagged=$(grep '"loss"' "$work/slow/metrics.jsonl" | grep -c '"straggler":{"rank":2,' || true)
  [ "$flagged" -eq 4 ] || fail "straggler on $flagged training lines, expected 4: $(cat "$work/slow/metrics.jsonl")"
  # Negative control in the same run: the unslowed ranks are never named. (A separate clean run
  # is no control on a shared machine: a rank the other tests starve is a straggler.)
  ! grep -Eq '"straggler":\{"rank":[01],|straggler: rank [01] ' "$work/slow/metrics.jsonl" "$work/slow.log" ||
    fail "an unslowed rank named: $(grep straggler "$work/slow.log")"
  ;;
straggler_trace)
  common=(--set train.log_every=5 --set train.max_steps=40 --set data.train_limit=4096
          --set model.hidden=64 --set train.eval_every=0 --set data.test_limit=200)
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  { echo "step,rank,delay_ms"; for s in $(seq 0 39); do echo "$s,2,30"; done; } > "$work/trace.csv"
  train 3 "$cfg" --run-dir "$work/slow" "${common[@]}" --set inject.trace="$work/trace.csv" \
    > "$work/slow.log" 2>&1 || { cat "$work/slow.log"; fail "traced run"; }
  grep -q "trace $work/trace.csv (40 delayed" "$work/slow.log" || fail "no trace warning: $(cat "$work/slow.log")"
  grep -q "straggler: rank 2 computes" "$work/slow.log" || fail "rank 2 not named: $(cat "$work/slow.log")"
  ! grep -Eq 'straggler: rank [01] ' "$work/slow.log" || fail "an undelayed rank named"
  # The synthetic bursty trace of bench/traces is accepted as it is.
  python3 "$src/bench/traces/bursty_trace.py" --ranks 3 --steps 10 --burst 2 --window 4 \
    --lambda 1 --delay-ms 1 -o "$work/bursty.csv"
  train 3 "$cfg" --run-dir "$work/bursty" "${common[@]}" --set train.max_steps=10 \
    --set inject.trace="$work/bursty.csv" > /dev/null 2>&1 || fail "bursty trace refused"
  printf 'step,rank,delay_ms\n0,1,5\n1,1,five\n' > "$work/bad.csv"
  set +e
  out=$(train 3 "$cfg" --run-dir "$work/bad" "${common[@]}" --set inject.trace="$work/bad.csv" 2>&1)
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "malformed trace: exit $code, expected 2"
  echo "$out" | grep -q "inject.trace $work/bad.csv line 3: delay_ms is not a number in \[0, 3600000\]" ||
    fail "malformed trace: $out"
  [ ! -e "$work/bad" ] || fail "malformed trace: a run directory was created"
  ;;
slow_link)
  common=(--set train.log_every=10 --set train.max_steps=60 --set data.train_limit=4096
          --set model.hidden=64 --set train.eval_every=0 --set data.test_limit=200
          --set runtime.ranks_per_node=1 --set sync.algorithm=ring --set runtime.link_probe_every=5)
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  train 4 "$cfg" --run-dir "$work/slow" "${common[@]}" --set "inject.slow_links=[[1, 2]]" \
    --set inject.link_slowdown=10 --set inject.link_delay_ms=10 > "$work/slow.log" 2>&1 || { cat "$work/slow.log"; fail "slowed run"; }
  grep -q "slow link: rank 1 <-> rank 2" "$work/slow.log" || fail "no slow link line: $(cat "$work/slow.log")"
  grep '"loss"' "$work/slow/metrics.jsonl" | tail -1 | grep -q '"slow_link":{"ranks":\[1,2\]' ||
    fail "the last training line names no slow link: $(tail -1 "$work/slow/metrics.jsonl")"
  # The probes of steps 5, 10 and 15 fill the window: named by step 20 (the issue's goal).
  grep '"step":20,' "$work/slow/metrics.jsonl" | grep -q '"slow_link":{"ranks":\[1,2\]' ||
    fail "not named by step 20: $(grep '"step":20,' "$work/slow/metrics.jsonl")"
  ! grep -q "slow link: rank [0-9] <-> rank [0-9]" <(grep -v "rank 1 <-> rank 2" "$work/slow.log") ||
    fail "another link named: $(grep 'slow link' "$work/slow.log")"
  ;;
restart)
  restart="$src/launch/braid-restart"
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  common=(--set train.log_every=50 --set data.train_limit=4096 --set model.hidden=64
          --set train.eval_every=0 --set data.test_limit=200 --set train.checkpoint_every=50
          --set runtime.ranks_per_node=1 --set inject.crash_rank=2 --set inject.crash_after_s=2)
  "$restart" --max-restarts 3 -- "${mpirun[@]}" -np 3 "$braid" train "$cfg" --run-dir "$work/r" \
    "${common[@]}" --set train.max_steps=3000 > "$work/r.log" 2>&1 ||
    { cat "$work/r.log"; fail "braid-restart did not finish the run"; }
  [ "$(grep -c '^braid-restart: run [0-9] failed with exit [0-9]*.*rank 2' "$work/r.log")" -eq 2 ] ||
    { cat "$work/r.log"; fail "expected two failures blamed on rank 2"; }
  grep -q "^braid-restart: node 2 (1 rank) excluded: -np lowered after 2 failures in a row" "$work/r.log" ||
    fail "node 2 not excluded: $(grep braid-restart "$work/r.log")"
  grep -q "inject.crash_rank 2 is ignored" "$work/r.log" || fail "the last run still had rank 2"
  grep -q "resumed from .*/checkpoints/step-" "$work/r.log" || fail "the reruns did not resume"
  [ "$(json_number "$work/r/summary.json" ranks)" = 2 ] || fail "the run did not finish on 2 ranks"
  [ "$(json_number "$work/r/summary.json" steps)" = 3000 ] || fail "the run did not reach its end"
  bash "$src/tests/expect_exit.sh" 2 "not restarting: bad input" -- \
    "$restart" -- "${mpirun[@]}" -np 2 "$braid" train "$cfg" --run-dir "$work/bad" --set train.max_stepz=3
  bash "$src/tests/expect_exit.sh" nonzero "giving up after 0 restarts" -- \
    "$restart" --max-restarts 0 -- "${mpirun[@]}" -np 3 "$braid" train "$cfg" --run-dir "$work/once" \
    "${common[@]}" --set train.max_steps=100000
  ;;
nonfinite)
  diverging=(--set optimizer.lr=5 --set train.max_steps=30 --set train.log_every=10
             --set data.train_limit=4096)
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  message="braid: non-finite gradient on rank [0-9]+: parameter 'fc[0-9]\.(weight|bias)' at step [0-9]+ "
  bash "$src/tests/expect_exit.sh" 1 "$message" -- \
    "${mpirun[@]}" -np 2 "$braid" train "$cfg" --run-dir "$work/error" "${diverging[@]}" \
    > "$work/error.log" || { cat "$work/error.log"; fail "train.nonfinite=error"; }
  [ "$(grep -c '^braid: non-finite gradient' "$work/error.log")" -eq 1 ] ||
    fail "expected the message once: $(cat "$work/error.log")"
  train 2 "$cfg" --run-dir "$work/skip" "${diverging[@]}" --set train.nonfinite=skip
  skipped=$(json_number "$work/skip/metrics.jsonl" skipped_steps)
  echo "skipped_steps $skipped of 30"
  [ -n "$skipped" ] && [ "$skipped" -gt 0 ] && [ "$skipped" -le 30 ] ||
    fail "skipped_steps '$skipped' in $(cat "$work/skip/metrics.jsonl")"
  ;;
gradient_coding)
  common=(--set train.log_every=5 --set data.train_limit=4096 --set model.hidden=32
          --set train.eval_every=0 --set train.checkpoint_every=5)
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  train 2 "$cfg" --run-dir "$work/sync" "${common[@]}" --set train.max_steps=10
  coded=(--set sync.strategy=gradient_coding --set coding.stragglers=1
         --set inject.slow_ranks=[1] --set inject.slowdown=3)
  train 2 "$cfg" --run-dir "$work/gc" "${common[@]}" "${coded[@]}" --set train.max_steps=5 \
    --set train.resume=auto > "$work/gc.log" 2>&1 || { cat "$work/gc.log"; fail "gradient_coding run"; }
  grep -q "straggler injection (inject:) is on: ranks \[1\] slowed 3x" "$work/gc.log" ||
    fail "no injection warning: $(cat "$work/gc.log")"
  train 2 "$cfg" --run-dir "$work/gc" "${common[@]}" "${coded[@]}" --set train.max_steps=10 \
    --set train.resume=auto
  losses() { grep '"loss"' "$1/metrics.jsonl" | grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*' |
             sed 's/.*"loss"://'; }
  [ "$(losses "$work/gc" | wc -l)" -eq 2 ] || fail "expected 2 loss lines, got $(losses "$work/gc")"
  paste <(losses "$work/sync") <(losses "$work/gc") |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * $1) { print "loss " $1 " vs " $2; bad = 1 } }
         END { exit bad }' || fail "gradient_coding's losses differ from allreduce's"
  ;;
sequential_coding)
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  { echo "step,rank,delay_ms"; echo "10,2,400"; echo "25,1,400"; echo "40,3,400"; } > "$work/trace.csv"
  common=(--set train.log_every=10 --set data.train_limit=4096 --set model.hidden=32
          --set data.batch_size=60 --set optimizer.momentum=0 --set train.eval_every=0
          --set data.test_limit=500 --set sync.strategy=sequential_coding --set coding.burst=2
          --set inject.trace="$work/trace.csv" --set train.resume=auto)
  accuracy() { json_number "$1/summary.json" test_accuracy; }
  train 4 "$cfg" --run-dir "$work/m" "${common[@]}" --set coding.scheme=m_sgc \
    --set train.max_steps=30 > "$work/m1.log" 2>&1 || { cat "$work/m1.log"; fail "m_sgc run"; }
  train 4 "$cfg" --run-dir "$work/m" "${common[@]}" --set coding.scheme=m_sgc \
    --set train.max_steps=60 > "$work/m2.log" 2>&1 || { cat "$work/m2.log"; fail "resumed m_sgc run"; }
  grep -q "resumed from .* at step 30" "$work/m2.log" || fail "not resumed: $(cat "$work/m2.log")"
  grep -q "sequential coding: the pipeline starts again at step 30" "$work/m2.log" ||
    fail "no pipeline restart line: $(cat "$work/m2.log")"
  train 4 "$cfg" --run-dir "$work/sr" "${common[@]}" --set coding.scheme=sr_sgc \
    --set coding.window=3 --set train.max_steps=60 > "$work/sr.log" 2>&1 ||
    { cat "$work/sr.log"; fail "sr_sgc run"; }
  for run in m sr; do
    echo "$run: test accuracy $(accuracy "$work/$run")"
    awk -v a="$(accuracy "$work/$run")" 'BEGIN { exit !(a >= 0.4) }' ||
      fail "$run: test accuracy $(accuracy "$work/$run") < 0.4"
  done
  ;;
robust)
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  common=(--set train.log_every=10 --set data.train_limit=4096 --set model.hidden=32
          --set train.checkpoint_every=20 --set inject.attack=scale --set inject.byzantine_ranks=[1])
  train 4 "$cfg" --run-dir "$work/median" "${common[@]}" --set train.max_steps=60 \
    --set sync.aggregator=median --set sync.byzantine=1 > "$work/median.log" 2>&1 ||
    { cat "$work/median.log"; fail "median under attack"; }
  grep -q "inject.attack scale is on: ranks \[1\]" "$work/median.log" || fail "no attack warning"
  acc=$(json_number "$work/median/summary.json" test_accuracy)
  echo "median under attack: test accuracy $acc"
  awk -v a="$acc" 'BEGIN { exit !(a >= 0.6) }' || fail "median under attack: accuracy $acc < 0.6"
  set +e
  out=$(train 4 "$cfg" --run-dir "$work/mean" "${common[@]}" --set train.max_steps=60 2>&1)
  code=$?
  set -e
  [ "$code" -eq 1 ] || { echo "$out"; fail "mean under attack: exit $code, expected 1"; }
  echo "$out" | grep -q "non-finite gradient" || fail "mean under attack: $out"
  clip=(--set sync.aggregator=centered_clip --set sync.byzantine=1)
  train 4 "$cfg" --run-dir "$work/a" "${common[@]}" "${clip[@]}" --set train.max_steps=40
  train 4 "$cfg" --run-dir "$work/b" "${common[@]}" "${clip[@]}" --set train.max_steps=20 \
    --set train.resume=auto
  train 4 "$cfg" --run-dir "$work/b" "${common[@]}" "${clip[@]}" --set train.max_steps=40 \
    --set train.resume=auto
  losses() { grep '"loss"' "$1/metrics.jsonl" | grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*'; }
  diff <(losses "$work/a") <(losses "$work/b") || fail "resumed centered_clip run's losses differ"
  [ "$(losses "$work/b" | wc -l)" -eq 4 ] || fail "expected 4 loss lines, got $(losses "$work/b")"
  set +e
  out=$(train 4 "$cfg" --run-dir "$work/krum" --set sync.aggregator=krum --set sync.byzantine=1 2>&1)
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "krum beyond its limit: exit $code, expected 2"
  echo "$out" | grep -q "krum tolerates at most 0 bad ranks of 4 (n >= 2f + 3)" ||
    fail "krum beyond its limit: $out"
  ;;
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
  # time_s counts training time across the interruption: it only grows.
  python3 - "$work/b/metrics.jsonl" <<'PY' || fail "time_s missing or not increasing across the resume"
import json, sys
times = [json.loads(line)["time_s"] for line in open(sys.argv[1])]
assert all(b > a for a, b in zip(times, times[1:])), times
PY
  # A config that changed what the run depends on is refused on every rank, naming the key,
  # before anything is modified.
  before=$(md5sum "$work/b/metrics.jsonl" "$work/b/checkpoints/latest")
  set +e
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" \
        --set train.max_steps=60 --set train.resume=auto --set data.batch_size=32 2>&1)
  code=$?
  set -e
  echo "$out" | grep '^braid: ' || true
  [ "$code" -eq 2 ] || fail "a changed batch size: exit $code, expected 2"
  echo "$out" | grep -q "resume: data.batch_size was 64 in checkpoint .*, the config says 32" ||
    fail "no message naming data.batch_size"
  [ "$before" = "$(md5sum "$work/b/metrics.jsonl" "$work/b/checkpoints/latest")" ] ||
    fail "a refused resume modified the run"
  # Flip one byte in the middle of rank 0's newest checkpoint (step 40): both ranks fall back to
  # step 20 with a warning naming the file, and the continued run repeats run a's losses.
  corrupt() {
    local size; size=$(stat -c %s "$1")
    printf '\xff' | dd of="$1" bs=1 seek=$((size / 2)) conv=notrunc status=none
  }
  [ "$(cat "$work/b/checkpoints/latest")" = step-00000040 ] || fail "latest does not name step 40"
  corrupt "$work/b/checkpoints/step-00000040/rank-00000.ckpt"
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" \
        --set train.max_steps=60 --set train.resume=auto 2>&1) || { echo "$out"; fail "no fallback"; }
  echo "$out" | grep -E 'unreadable|resumed from'
  echo "$out" | grep -q "step-00000040/rank-00000.ckpt is unreadable: corrupt: CRC-32 mismatch" ||
    fail "no warning naming the corrupt file and the cause"
  [ "$(echo "$out" | grep -c 'resumed from .*/step-00000020/rank-00000.ckpt at step 20')" -eq 1 ] ||
    fail "rank 0 did not report resuming from step 20 once"
  through40() { losses "$1" | awk -F'[:,]' '$2 <= 40'; }
  diff <(losses "$work/a") <(through40 "$work/b") || fail "the run resumed at step 20 differs from run a"
  grep -q '"step":60,' "$work/b/metrics.jsonl" || fail "the resumed run did not reach step 60"
  # With no checkpoint intact on every rank, resuming is an error, never a restart from step 0.
  for f in "$work"/b/checkpoints/step-*/rank-00000.ckpt; do corrupt "$f"; done
  set +e
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" \
        --set train.max_steps=80 --set train.resume=auto 2>&1)
  code=$?
  set -e
  echo "$out" | tail -3
  [ "$code" -ne 0 ] || fail "corrupt checkpoints were accepted"
  echo "$out" | grep -q "corrupt: CRC-32 mismatch" || fail "no corrupt-checkpoint message"
  echo "$out" | grep -q "no checkpoint in .* is readable on every rank" || fail "no fallback-exhausted message"
  grep -q '"step":65' "$work/b/metrics.jsonl" && fail "training went on past the corrupt checkpoints"
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
  # An empty --run-dir is refused, not ignored.
  set +e
  out=$("$braid" config check "$src/configs/fashion_mnist_mlp.yaml" --run-dir "" 2>&1)
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "--run-dir '': exit $code, expected 2"
  echo "$out" | grep -q "run-dir.*an empty path" || fail "--run-dir '': $out"
  # A run.dir that is a file: exit 2 naming it, not a filesystem error.
  set +e
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$src/README.md" 2>&1)
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "run.dir naming a file: exit $code, expected 2"
  echo "$out" | grep -q "README.md' is a file, not a directory" || fail "run.dir naming a file: $out"
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
  # A start-up error on one rank only (its node lacks the data or the cost model, its --set
  # differs) ends every rank with exit 2, printed once, before any collective: no rank waits
  # for the others' timeout (600 s here, past the test's own).
  for bad in "data.path=/nonexistent/fashion-mnist" "train.epochs=-1" \
             "sync.cost_model=/nonexistent/cost.yaml" "runtime.debug_checks=true"; do
    set +e
    "${mpirun[@]}" -np 1 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/one" \
      --set runtime.timeout_s=600 : -np 1 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" \
      --run-dir "$work/one" --set runtime.timeout_s=600 --set "$bad" > "$work/out" 2>&1
    code=$?
    set -e
    [ "$code" -eq 2 ] || { cat "$work/out"; fail "$bad on rank 1 only: exit $code, expected 2"; }
    [ "$(grep -c '^braid: ' "$work/out")" -eq 1 ] || { cat "$work/out"; fail "$bad: expected one message"; }
    [ ! -e "$work/one" ] || fail "$bad on rank 1 only created a run directory"
  done
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
interrupt)
  common=(--set train.log_every=1 --set data.train_limit=4096 --set model.hidden=64
          --set train.max_steps=400 --set train.eval_every=0 --set data.test_limit=200)
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/whole" "${common[@]}" > /dev/null 2>&1
  losses() { grep '"loss"' "$1/metrics.jsonl" | grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*'; }
  for signal in TERM INT; do
    run="$work/$signal"
    "${mpirun[@]}" -np 2 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$run" \
      "${common[@]}" > "$work/out" 2>&1 &
    launcher=$!
    # Wait (bounded) until training is under way, then signal the ranks themselves.
    await_losses "$run" 5 || true
    pkill "-$signal" -P "$launcher" || fail "no rank to signal"
    set +e
    wait "$launcher"
    code=$?
    set -e
    want=$([ "$signal" = TERM ] && echo 143 || echo 130)
    [ "$code" -eq "$want" ] || { cat "$work/out"; fail "SIG$signal: exit $code, expected $want"; }
    grep -q "interrupted at step [0-9]* (SIG$signal); checkpoint written; rerun the same command" \
      "$work/out" || { cat "$work/out"; fail "no interruption message"; }
    step=$(cat "$run/checkpoints/latest")
    [ -f "$run/checkpoints/$step/rank-00000.ckpt" ] && [ -f "$run/checkpoints/$step/rank-00001.ckpt" ] ||
      fail "no checkpoint on every rank"
    echo "SIG$signal: stopped at $step"
    train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$run" "${common[@]}" \
      --set train.resume=auto > /dev/null 2>&1
    diff <(losses "$work/whole") <(losses "$run") || fail "SIG$signal: the continued run's losses differ"
  done
  # Ctrl-C at a terminal reaches mpirun only. mpirun sends the ranks SIGCONT at once and SIGTERM
  # only after odls_base_sigkill_timeout (3 s here): the ranks must stop on the SIGCONT, so the
  # message names SIGINT (SIGTERM would mean they waited for the timeout).
  run="$work/mpirun"
  "${mpirun[@]}" --mca odls_base_sigkill_timeout 3 -np 2 "$braid" train \
    "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$run" "${common[@]}" > "$work/out" 2>&1 &
  launcher=$!
  await_losses "$run" 5 || true
  kill -INT "$launcher"
  set +e
  wait "$launcher"
  code=$?
  set -e
  grep -q "interrupted at step [0-9]* (SIGINT); checkpoint written" "$work/out" ||
    { cat "$work/out"; fail "Ctrl-C to mpirun: the ranks did not stop on mpirun's SIGCONT"; }
  [ -f "$run/checkpoints/$(cat "$run/checkpoints/latest")/rank-00001.ckpt" ] ||
    fail "Ctrl-C to mpirun: no checkpoint"
  echo "Ctrl-C to mpirun: stopped at $(cat "$run/checkpoints/latest"), mpirun exit $code"
  ;;
run_dir_lock)
  common=(--set train.log_every=1 --set data.train_limit=4096 --set model.hidden=64
          --set train.max_steps=100000 --set train.eval_every=0 --set data.test_limit=200)
  cfg="$src/configs/fashion_mnist_mlp.yaml"
  # True when this process can take the lock rank 0 holds (fcntl record locks, as braid's).
  lock_free() {
    /usr/bin/python3 -c 'import fcntl, sys; fcntl.lockf(open(sys.argv[1], "r+"), fcntl.LOCK_EX | fcntl.LOCK_NB)' \
      "$1/.lock" 2> /dev/null
  }
  start_owner() {
    "${mpirun[@]}" -np 2 "$braid" train "$cfg" --run-dir "$1" "${common[@]}" > "$work/owner.out" 2>&1 &
    launcher=$!
    await_losses "$1" 3 && return
    cat "$work/owner.out"; fail "the first job did not start training"
  }
  # A failing check must not leave the long first job running after the test.
  trap 'pkill -KILL -P "${launcher:-0}" 2> /dev/null || true; rm -rf "$work"' EXIT
  run="$work/shared"
  start_owner "$run"
  lock_free "$run" && fail "the lock of a running job could be taken"
  before=$(md5sum "$run/config.yaml")
  for resume in auto never; do
    bash "$src/tests/expect_exit.sh" 2 \
      "run.dir '$run' is in use by another braid job \(host [^,]+, pid [0-9]+, since [0-9-]+ [0-9:]+ UTC\)" -- \
      "${mpirun[@]}" -np 2 "$braid" train "$cfg" --run-dir "$run" "${common[@]}" \
      --set train.resume=$resume > "$work/second.out" || { cat "$work/second.out"; fail "second job, resume $resume"; }
  done
  [ "$before" = "$(md5sum "$run/config.yaml")" ] || fail "a refused job rewrote config.yaml"
  grep -q "pid [0-9]" "$run/.lock" || fail "the lock file does not name its owner"
  pkill -TERM -P "$launcher" || fail "no rank to signal"
  set +e; wait "$launcher"; set -e
  lock_free "$run" || fail "the lock outlived its job"
  # The directory is free again: rerunning resumes it (two more steps).
  step=$(cat "$run/checkpoints/latest")
  train 2 "$cfg" --run-dir "$run" "${common[@]}" --set train.resume=auto \
    --set train.max_steps=$((10#${step#step-} + 2)) \
    > "$work/third.out" 2>&1 || { cat "$work/third.out"; fail "the rerun after the owner ended"; }
  # A job killed outright leaves no stale lock: the kernel released it.
  start_owner "$work/killed"
  ranks=$(pgrep -P "$launcher") || fail "no rank to kill"
  # shellcheck disable=SC2086
  kill -KILL $ranks
  set +e; wait "$launcher"; set -e
  # mpirun can end before the kernel has torn down every killed rank (and so released its lock):
  # wait, bounded, until the ranks are gone.
  alive() { for pid in $ranks; do kill -0 "$pid" 2> /dev/null && return 0; done; return 1; }
  for _ in $(seq 100); do alive || break; sleep 0.1; done
  lock_free "$work/killed" || fail "a killed job left its lock held"
  ;;
rerun)
  common=(--set train.log_every=5 --set data.train_limit=4096 --set model.hidden=64
          --set train.eval_every=0 --set data.test_limit=200 --set train.resume=auto)
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/a" "${common[@]}" --set train.max_steps=20
  before=$(md5sum "$work/a/metrics.jsonl" "$work/a/summary.json" "$work/a/checkpoints/latest")
  # Rerun with fewer steps: the message names what the config asks for now.
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/a" "${common[@]}" \
        --set train.max_steps=10 2>&1)
  echo "$out" | grep -q "is finished: it reached step 20 and train.max_steps is 10" ||
    { echo "$out"; fail "no 'finished' message"; }
  [ "$before" = "$(md5sum "$work/a/metrics.jsonl" "$work/a/summary.json" "$work/a/checkpoints/latest")" ] ||
    fail "rerunning a finished run changed it"
  # Byte totals continue: every line's bytes_sent is larger than the one before. The resume
  # changes the learning rate: one warning names it with both values.
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/a" "${common[@]}" \
        --set train.max_steps=30 --set optimizer.lr=0.07 2>&1)
  echo "$out" | grep -q "resumed with changed settings .*: optimizer.lr 0.05 -> 0.07" ||
    { echo "$out"; fail "no warning about the changed learning rate"; }
  /usr/bin/python3 - "$work/a/metrics.jsonl" <<'PY' || fail "bytes_sent restarted after the resume"
import json, sys
sent = [json.loads(l)["bytes_sent"] for l in open(sys.argv[1]) if '"loss"' in l]
assert all(b > a for a, b in zip(sent, sent[1:])), sent
PY
  # Another rank count: 2 ranks x 64 stop at step 20 (2560 samples of epoch 0); 3 ranks go on
  # at that sample: (4096 - 2560) / 192 = 8 more steps end the epoch.
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=20
  out=$(train 3 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" \
        --set train.epochs=1 2>&1) || { echo "$out"; fail "resuming at 3 ranks failed"; }
  echo "$out" | grep -q "written by 2 ranks, this run has 3: the global batch changes from 128 to 192 samples; continuing at sample 2560 of epoch 0" ||
    { echo "$out"; fail "no message about the changed global batch"; }
  [ "$(json_number "$work/b/summary.json" steps)" -eq 28 ] || fail "expected 28 steps in all"
  ;;
compression)
  common=(--set train.log_every=5 --set train.checkpoint_every=10 --set data.train_limit=4096
          --set model.hidden=64 --set compression.name=topk --set compression.ratio=0.1
          --set compression.error_feedback=ef --set data.test_limit=200)
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/a" "${common[@]}" --set train.max_steps=20
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=10
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=20 \
    --set train.resume=auto
  losses() { grep '"loss"' "$1/metrics.jsonl" | grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*'; }
  diff <(losses "$work/a") <(losses "$work/b") || fail "a resumed run with error feedback differs"
  # The residuals are per rank: resuming at 3 ranks is refused naming them, not the strategy.
  bash "$src/tests/expect_exit.sh" 2 \
    "its per-rank state, the compression's residuals \(compression.name 'topk', compression.error_feedback 'ef'\), cannot be carried to 3 ranks" -- \
    "${mpirun[@]}" -np 3 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" \
    "${common[@]}" --set train.max_steps=30 --set train.resume=auto > "$work/out" ||
    { cat "$work/out"; fail "resuming error feedback at 3 ranks"; }
  ratio=$(json_number "$work/a/metrics.jsonl" compression_ratio)
  echo "compression_ratio $ratio"
  awk -v r="$ratio" 'BEGIN { exit !(r > 3) }' || fail "top-k 10% sent more than a third of dense bytes"
  # DGC: u and v are saved, and the warm-up (32 steps per epoch here) is a function of the step,
  # so a run resumed at step 20 logs the losses of an uninterrupted one across the epoch boundary.
  dgc=(--set compression.name=dgc --set compression.error_feedback=none --set compression.ratio=0.01
       --set compression.warmup_epochs=1 --set optimizer.clip_norm=1)
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/c" "${common[@]}" "${dgc[@]}" \
    --set train.max_steps=40
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/d" "${common[@]}" "${dgc[@]}" \
    --set train.max_steps=20
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/d" "${common[@]}" "${dgc[@]}" \
    --set train.max_steps=40 --set train.resume=auto
  diff <(losses "$work/c") <(losses "$work/d") || fail "a resumed dgc run differs"
  [ "$(losses "$work/d" | wc -l)" -eq 8 ] || fail "expected 8 dgc loss lines"
  ;;
local_update)
  losses() { grep '"loss"' "$1/metrics.jsonl" | grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*'; }
  # H = 4: the checkpoint at step 6 is in the middle of a round (replicas differ there); for co2
  # round 0's exchange is in flight there, so the checkpoint holds its received mean.
  base=(--set train.log_every=2 --set data.train_limit=4096 --set model.hidden=64
        --set data.test_limit=200 --set outer.steps=4)
  for strategy in diloco local_sgd co2; do
    common=("${base[@]}" --set sync.strategy=$strategy)
    [ "$strategy" = co2 ] && common+=(--set outer.staleness_penalty=0.5 --set outer.clip_norm=1)
    train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/$strategy-a" "${common[@]}" \
      --set train.max_steps=10
    train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/$strategy-b" "${common[@]}" \
      --set train.max_steps=6
    train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/$strategy-b" "${common[@]}" \
      --set train.max_steps=10 --set train.resume=auto
    diff <(losses "$work/$strategy-a") <(losses "$work/$strategy-b") ||
      fail "$strategy: the resumed run's losses differ"
    [ "$(losses "$work/$strategy-b" | wc -l)" -eq 5 ] || fail "$strategy: expected 5 loss lines"
    echo "$strategy resumed mid-round, losses identical: $(losses "$work/$strategy-b" | tail -1)"
  done
  # The outer optimizer shapes the trajectory: a resume with another outer.lr is refused.
  set +e
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/diloco-b" "${base[@]}" --set sync.strategy=diloco \
        --set train.max_steps=12 --set train.resume=auto --set outer.lr=0.3 2>&1)
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "a changed outer.lr: exit $code, expected 2"
  echo "$out" | grep -q "resume: outer.lr was 0.7 in checkpoint .*, the config says 0.3" ||
    fail "no message naming outer.lr"
  set +e
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/bad" --set sync.strategy=diloco \
        --set outer.steps=0 2>&1)
  code=$?
  set -e
  echo "$out" | grep '^braid: ' || true
  [ "$code" -eq 2 ] || fail "outer.steps=0: exit $code, expected 2"
  echo "$out" | grep -q "outer.steps: must be >= 1, got 0" || fail "no message naming outer.steps"
  [ ! -e "$work/bad" ] || fail "outer.steps=0 created a run directory"
  ;;
streaming_diloco)
  losses() { grep '"loss"' "$1/metrics.jsonl" | grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*'; }
  # H 4, 2 fragments (offsets 2 and 4), tau 2: the checkpoint at step 6 has fragment 0 in flight
  # (sent at 6, merged at 8); its received mean is saved and merged at step 8 after the resume.
  common=(--set train.log_every=2 --set data.train_limit=4096 --set model.hidden=64
          --set data.test_limit=200 --set sync.strategy=streaming_diloco --set outer.steps=4
          --set outer.fragments=2 --set outer.delay_steps=2 --set outer.wire=e3m0)
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/a" "${common[@]}" --set train.max_steps=10
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=6
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=10 \
    --set train.resume=auto
  diff <(losses "$work/a") <(losses "$work/b") || fail "the resumed run's losses differ"
  [ "$(losses "$work/b" | wc -l)" -eq 5 ] || fail "expected 5 loss lines"
  echo "streaming_diloco resumed with a fragment in flight, losses identical: $(losses "$work/b" | tail -1)"
  # The wire format shapes the trajectory: a resume with another outer.wire is refused.
  set +e
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" \
        --set train.max_steps=12 --set train.resume=auto --set outer.wire=bfloat16 2>&1)
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "a changed outer.wire: exit $code, expected 2"
  echo "$out" | grep -q 'outer.wire' || fail "no message naming outer.wire"
  set +e
  out=$(train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/bad" "${common[@]}" \
        --set outer.delay_steps=4 2>&1)
  code=$?
  set -e
  [ "$code" -eq 2 ] || fail "outer.delay_steps=4: exit $code, expected 2"
  echo "$out" | grep -q "outer.delay_steps: must be < outer.steps, got 4" ||
    fail "no message naming outer.delay_steps"
  ;;
onebit_adam)
  common=(--set train.log_every=5 --set train.checkpoint_every=10 --set data.train_limit=4096
          --set model.hidden=64 --set optimizer.name=onebit_adam --set optimizer.lr=0.001
          --set optimizer.freeze_step=5 --set data.test_limit=200)
  train 3 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/a" "${common[@]}" --set train.max_steps=20
  train 3 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=10
  train 3 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/b" "${common[@]}" --set train.max_steps=20 \
    --set train.resume=auto
  losses() { grep '"loss"' "$1/metrics.jsonl" | grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*'; }
  diff <(losses "$work/a") <(losses "$work/b") || fail "a resumed onebit_adam run differs"
  ratio=$(json_number "$work/a/metrics.jsonl" compression_ratio)
  echo "compression_ratio $ratio"
  awk -v r="$ratio" 'BEGIN { exit !(r > 2) }' || fail "onebit_adam sent more than half of dense bytes"
  # After the freeze the optimizer exchanges for itself: its waits are comm_ms, not 0.
  /usr/bin/python3 - "$work/a/metrics.jsonl" <<'PY' || fail "comm_ms is 0 after the freeze"
import json, sys
late = [r["comm_ms"] for r in map(json.loads, open(sys.argv[1])) if "loss" in r and r["step"] > 5]
assert late and all(ms > 0 for ms in late), late
PY
  # At another rank count the error buffers start again from zero (DeepSpeed resets them at
  # every load); step, m and v carry over, and the run goes on from step 10 at 2 ranks.
  train 3 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/c" "${common[@]}" --set train.max_steps=10
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/c" "${common[@]}" --set train.max_steps=20 \
    --set train.resume=auto > "$work/c.out" 2>&1 || { cat "$work/c.out"; fail "onebit_adam at 2 ranks"; }
  grep -q "was written by 3 ranks; at 2 ranks the hosted optimizer's error buffers (optimizer.name onebit_adam) start again from zero" \
    "$work/c.out" || { cat "$work/c.out"; fail "no line saying the error buffers were reset"; }
  /usr/bin/python3 - "$work/c/metrics.jsonl" <<'PY' || fail "the resumed onebit_adam run did not go on"
import json, math, sys
steps = [r for r in map(json.loads, open(sys.argv[1])) if "loss" in r]
assert [r["step"] for r in steps][-3:] == [10, 15, 20], [r["step"] for r in steps]
assert all(math.isfinite(r["loss"]) for r in steps), steps
PY
  ;;
progress)
  # As a user at a terminal would run it: TERM set, not CI, output redirected to a file.
  env -u CI TERM=xterm "${mpirun[@]}" -np 2 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" \
    --run-dir "$work/auto" --set train.max_steps=30 --set train.log_every=5 \
    --set data.test_limit=200 > "$work/auto.log" 2>&1
  if grep -q $'\r' "$work/auto.log"; then fail "--progress auto drew a bar into a file"; fi
  grep -q "step 30/30" "$work/auto.log" || fail "no plain progress lines"
  env -u CI TERM=xterm "${mpirun[@]}" -np 2 "$braid" train "$src/configs/fashion_mnist_mlp.yaml" \
    --run-dir "$work/bar" --set train.max_steps=30 --set data.test_limit=200 --progress bar \
    --set train.eval_every=10 > "$work/bar.log" 2>&1
  grep -q $'\r\[' "$work/bar.log" || fail "--progress bar drew no bar"
  # Evaluations in the middle of the bar start a line of their own.
  [ "$(grep -c 'evaluation: test loss' "$work/bar.log")" -ge 3 ] || fail "expected 3 evaluations"
  if grep 'evaluation: test loss' "$work/bar.log" | grep -q $'\r\['; then
    fail "an evaluation line shares a line with the bar"
  fi
  [ -s "$work/auto/model.pt" ] || fail "no model.pt at the end of the run"
  ;;
trace)
  train 2 "$src/configs/fashion_mnist_mlp.yaml" --run-dir "$work/run" --set train.max_steps=4 \
    --set train.checkpoint_every=2 --set runtime.trace=true --set data.test_limit=200
  python3 - "$work/run/trace" <<'PY' || fail "trace files incomplete"
import json, sys
for rank in (0, 1):
    events = json.load(open(f"{sys.argv[1]}/rank-{rank:05d}.json"))["traceEvents"]
    assert all(e["ph"] == "X" and e["dur"] >= 0 and e["pid"] == rank for e in events)
    names = {e["name"].split("(")[0] for e in events}
    want = {"forward", "backward", "strategy step", "wait for buckets", "optimizer step",
            "allreduce", "evaluation", "checkpoint"}
    assert want <= names, f"rank {rank} lacks {want - names}"
    print(f"rank {rank}: {len(events)} events")
PY
  ;;
config_check)
  mlp="$src/configs/fashion_mnist_mlp.yaml" text="$src/configs/fortunes_char_transformer.yaml"
  # Each case: config, then overrides. The message of `config check` must be the one of `train`.
  cases=("$mlp|data.path=$work/nowhere|does not exist"
         "$mlp|data.path=$src/README.md|not a directory"
         "$text|data.path=/usr/share/datasets/fashion-mnist|holds the Fashion-MNIST idx files"
         "$mlp|sync.cost_model=$work/no-cost.yaml|cost model file"
         "$mlp|optimizer.name=onebit_adam,sync.strategy=diloco|allreduce with optimizer.name onebit_adam"
         "$mlp|optimizer.name=onebit_adam,sync.strategy=gradient_coding|allreduce with optimizer.name onebit_adam"
         "$mlp|compression.name=topk,compression.error_feedback=ef21,compression.exchange=two_phase|gather or auto with compression.error_feedback ef21")
  for case in "${cases[@]}"; do
    IFS='|' read -r config set want <<< "$case"
    set +e
    IFS=',' read -r -a sets <<< "$set"
    overrides=()
    for s in "${sets[@]}"; do overrides+=(--set "$s"); done
    check=$("$braid" config check "$config" "${overrides[@]}" 2>&1 >/dev/null)
    check_code=$?
    trained=$(train 1 "$config" --run-dir "$work/refused" "${overrides[@]}" 2>&1)
    train_code=$?
    set -e
    echo "$set: $check"
    [ "$check_code" -eq 2 ] || fail "config check with $set: exit $check_code, expected 2"
    [ "$train_code" -eq 2 ] || fail "train with $set: exit $train_code, expected 2"
    echo "$check" | grep -q "$want" || fail "config check with $set: no '$want' in: $check"
    [ "$check" = "$(echo "$trained" | grep '^braid: ')" ] ||
      fail "config check and train say different things for $set: '$check' vs '$trained'"
    [ ! -e "$work/refused" ] || fail "train with $set created a run directory"
  done
  # A single text file is a corpus: checked and trained.
  "$braid" config check "$text" --set data.path=/usr/share/games/fortunes/computers > /dev/null
  train 1 "$text" --run-dir "$work/one-file" --set data.path=/usr/share/games/fortunes/computers \
    --set train.max_steps=2 --set train.log_every=1 --set data.test_limit=20
  [ "$(json_number "$work/one-file/summary.json" steps)" -eq 2 ] || fail "single text file: expected 2 steps"
  # --version names braid, LibTorch, the MPI library and the GPU path (or CPU only).
  version=$("$braid" --version)
  for part in "braid " "LibTorch " "MPI: " "GPU: "; do
    echo "$version" | grep -q "^ *$part" || fail "--version lacks '$part': $version"
  done
  # --debug-checks is runtime.debug_checks=true, for config check and for train.
  "$braid" config check "$mlp" --debug-checks | grep -q '^  debug_checks: true' ||
    fail "config check --debug-checks: debug_checks not true"
  # The same run warns about 2 ranks x nproc threads on nproc cores and a warm-up longer than
  # the run, and its summary.json counts shared-memory bytes.
  out=$(train 2 "$mlp" --run-dir "$work/debug" --debug-checks --set train.max_steps=2 \
        --set data.test_limit=100 --set runtime.threads="$(nproc)" \
        --set optimizer.schedule=warmup_cosine --set optimizer.warmup_steps=10 2>&1)
  grep -q '^  debug_checks: true' "$work/debug/config.yaml" || fail "train --debug-checks: not in config.yaml"
  echo "$out" | grep -q "threads on $(nproc) cores" || fail "no warning about threads: $out"
  echo "$out" | grep -q "optimizer.warmup_steps 10 exceeds train.max_steps 2" || fail "no warm-up warning"
  grep -q '"bytes_shared":' "$work/debug/summary.json" || fail "summary.json lacks bytes_shared"
  # --progress takes auto, bar or lines (and is runtime.progress), nothing else.
  for value in auto bar lines; do
    set +e
    out=$("$braid" config check "$mlp" --progress "$value" 2>&1)
    code=$?
    set -e
    if "$braid" config check "$mlp" | grep -q '^  progress:'; then
      [ "$code" -eq 0 ] || fail "--progress $value: exit $code: $out"
      echo "$out" | grep -q "^  progress: \"$value\"" || fail "--progress $value: not in the resolved config"
    else  # runtime.progress not in this version yet: the flag is accepted and becomes the override
      echo "$out" | grep -q "override 'runtime.progress=$value'" || fail "--progress $value: $out"
    fi
  done
  for command in "config check" train; do
    set +e
    # shellcheck disable=SC2086
    out=$("$braid" $command "$mlp" --progress fancy 2>&1)
    code=$?
    set -e
    [ "$code" -eq 2 ] || fail "$command --progress fancy: exit $code, expected 2"
    echo "$out" | grep -q -- "--progress" || fail "$command --progress fancy: no message naming --progress"
  done
  ;;
*)
  echo "unknown mode $mode"; exit 2 ;;
esac
echo "PASS: $mode"
