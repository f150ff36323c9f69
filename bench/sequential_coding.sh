#!/usr/bin/env bash
# Sequential gradient coding (Krishnan, Ebrahimi and Khisti, ICLR 2023) against allreduce and
# gradient coding on a synthetic bursty straggler trace, in one script: the Fashion-MNIST cnn,
# np=NP (default 4), STEPS (default 400) steps, batch 60 per rank for every run (m_sgc cuts the
# global batch into n((W-1)(lambda+1)+B) = 24 units at np=4, B=2, W=3, lambda=1), a test
# evaluation every EVAL_EVERY (default 20) steps. Runs, every one but the first two on the trace:
#   allreduce and m_sgc_momentum0 (m_sgc below at momentum 0) without the trace: the step times
#     without stragglers, and m_sgc's fallbacks that come from the machine, not the trace;
#   allreduce_trace,
#   gradient_coding_trace: coding.stragglers=1 (any 1 straggler per step),
#   sr_sgc_trace and m_sgc_trace: sync.strategy=sequential_coding, coding.burst=2 window=3
#     lambda=1 (sr_sgc's inner code then tolerates 1 straggler: gradient coding's load of 1/2 of
#     the global batch per rank; m_sgc's load is 1/3),
# all with the config's SGD momentum 0.9 and lr 0.05, and the same with optimizer.momentum=0:
#   allreduce_trace_momentum0, gradient_coding_trace_momentum0, sr_sgc_trace_momentum0,
#   m_sgc_trace_momentum0.
# Sequential coding applies step t-T's gradient at step t (T = W-2+B = 3 for m_sgc, B = 2 for
# sr_sgc); with momentum 0.9 that staleness diverges on this model ("asynchrony begets momentum"),
# so the momentum-0 rows separate the cost of staleness (m_sgc against allreduce, both at momentum
# 0) from the cost of the lower momentum (allreduce at 0 against 0.9).
# Why coding.burst=2 when the trace's bursts are 1 step: a rank delayed D ms after its compute
# misses every round until it wakes, then skips the rounds whose results already arrived, so one
# trace event of D ~ 1-1.5 round times becomes ~2 missed rounds. The trace
# (bench/traces/bursty_trace.py --burst 1 --window 5 --lambda 1, start probability START_P,
# default 0.4, seed SEED) therefore keeps any two events at least 5 steps apart, and delays ranks
# 1..NP-1 only (rank 0 decodes and is never treated as a straggler). Its delay is DELAY_MS,
# default DELAY_FACTOR (2) x the no-trace allreduce run's step time, about 1.0-1.5 m_sgc round
# times; the delay is a sleep after the step's compute, which uses no CPU, so on an
# oversubscribed machine (4 ranks on 2 cores) it still means something. coding.mu stays at its
# default, 1 (a round ends at (1 + mu) x the fastest arrival when the late ranks fit the model);
# MU overrides it.
# RUNS (names, default all ten) picks runs.
# Reports step time and training time to TARGET (default 0.78) test accuracy, both without the
# evaluations' own time, with ratios against gradient coding and allreduce on the trace at the
# same momentum: bench/results/sequential_coding.md and .png (bench/sequential_coding_report.py);
# with NP other than 4, sequential_coding_np<NP>.*. TARGET 0.78 is one the momentum-0 runs reach
# within 400 steps.
# WORK and SKIP_DONE=1 resume an interrupted run (bench/methods.sh).
# Expected: m_sgc's step time at least 15% below gradient coding's at equal tolerance (judged on
# the paired timing runs below); the time to TARGET says whether the staleness of its updates
# eats that gain.
set -euo pipefail
cd "$(dirname "$0")/.."
invoked=""  # the command as given, for the report
for v in NP STEPS EVAL_EVERY TARGET SEED START_P DELAY_MS DELAY_FACTOR MU RUNS REPEATS \
         TIMING_STEPS BIG_BATCH TIMING_STEPS_BIG WORK SKIP_DONE; do
  [ -z "${!v+x}" ] || invoked+="$v=${!v@Q} "
done
invoked+="bench/sequential_coding.sh"
steps=${STEPS:-400}
eval_every=${EVAL_EVERY:-20}
target=${TARGET:-0.78}
seed=${SEED:-0}
start_p=${START_P:-0.4}
burst=2 window=3 lambda=1                  # the sequential codes' straggler model
trace_burst=1 trace_window=5 trace_lambda=1  # the trace's: events 5 steps apart
all="allreduce m_sgc_momentum0 allreduce_trace gradient_coding_trace sr_sgc_trace m_sgc_trace"
all+=" allreduce_trace_momentum0 gradient_coding_trace_momentum0 sr_sgc_trace_momentum0"
all+=" m_sgc_trace_momentum0"
runs=${RUNS:-$all}
source bench/methods.sh
mkdir -p "$work"  # a WORK given for the first time
out=bench/results/sequential_coding
[ "$np" = 4 ] || out+="_np$np"  # the issue's measurement is np=4; others go beside it
report=(/usr/bin/python3 bench/sequential_coding_report.py)

# Every run: the same global batch and seed; a training line at every evaluation, so that the
# report can tell each evaluation's own time from training time (time_s counts both).
common=(--set train.max_steps="$steps" --set data.batch_size=60 --set train.eval_every="$eval_every"
        --set train.log_every="$eval_every")
pick() {  # keeps the entries of `methods` named in RUNS
  local entry kept=()
  for entry in "${methods[@]}"; do [[ " $runs " != *" ${entry%%|*} "* ]] || kept+=("$entry"); done
  methods=(${kept[@]+"${kept[@]}"})
}

sgc="--set sync.strategy=sequential_coding --set coding.burst=$burst --set coding.window=$window"
sgc+=" --set coding.lambda=$lambda ${MU:+--set coding.mu=$MU}"
methods=("allreduce|--set sync.strategy=allreduce"
         "m_sgc_momentum0|$sgc --set coding.scheme=m_sgc --set optimizer.momentum=0")
pick
run_methods configs/fashion_mnist_cnn.yaml test_accuracy "${common[@]}"

if [ -z "${DELAY_MS:-}" ]; then
  [ -f "$work/allreduce/summary.json" ] ||
    { echo "DELAY_MS unset and no finished allreduce run in $work to scale it from" >&2; exit 1; }
  DELAY_MS=$("${report[@]}" --delay "${DELAY_FACTOR:-2}" "$work/allreduce")
fi
trace=$work/trace.csv
/usr/bin/python3 bench/traces/bursty_trace.py --ranks "$np" --steps "$steps" \
  --burst "$trace_burst" --window "$trace_window" --lambda "$trace_lambda" --delay-ms "$DELAY_MS" \
  --seed "$seed" --start-probability "$start_p" --exclude-ranks 0 -o "$trace"
replay="--set inject.trace=$trace"
gc="--set sync.strategy=gradient_coding --set coding.stragglers=1"
methods=()
for momentum in "" 0; do
  suffix=${momentum:+_momentum$momentum}
  m=${momentum:+--set optimizer.momentum=$momentum}
  methods+=(
    "allreduce_trace$suffix|--set sync.strategy=allreduce $replay $m"
    "gradient_coding_trace$suffix|$gc $replay $m"
    "sr_sgc_trace$suffix|$sgc --set coding.scheme=sr_sgc $replay $m"
    "m_sgc_trace$suffix|$sgc --set coding.scheme=m_sgc $replay $m"
  )
done
pick
run_methods configs/fashion_mnist_cnn.yaml test_accuracy "${common[@]}"

# Step time, paired: the training runs above meet the machine's load at different times (other
# work, or one run slower for no reason of its own), so gradient_coding_trace and m_sgc_trace
# (momentum 0; momentum does not change the work) also run TIMING_STEPS (default 150) steps
# without evaluations, alternating ABBA over REPEATS (default 3; 0 skips) pairs, on the same trace.
# Their medians and per-pair ratios decide the 15% expectation.
# paired_timing PREFIX REPLAY: the REPEATS pairs, ABBA, with the settings in `timing`.
paired_timing() {
  local r pair
  for ((r = 1; r <= ${REPEATS:-3}; r++)); do
    pair=("$1${r}_gradient_coding|$gc $2 --set optimizer.momentum=0"
          "$1${r}_m_sgc|$sgc --set coding.scheme=m_sgc $2 --set optimizer.momentum=0")
    if ((r % 2)); then methods=("${pair[@]}"); else methods=("${pair[1]}" "${pair[0]}"); fi
    run_methods configs/fashion_mnist_cnn.yaml test_accuracy "${timing[@]}"
  done
}
timing=(--set train.max_steps="${TIMING_STEPS:-150}" --set data.batch_size=60
        --set train.eval_every="${TIMING_STEPS:-150}" --set train.log_every=50)
paired_timing timing "$replay"

# The same pairs where compute dominates: batch BIG_BATCH (default 300; 0 skips) per rank, 5x
# the samples per byte sent, on a trace of its own whose delay is DELAY_FACTOR x this batch's
# allreduce step (run first, without a trace). The paper's workers spend seconds computing per
# round; this is the regime its load saving is for.
big=${BIG_BATCH:-300}
if ((big > 0)); then
  timing=(--set train.max_steps="${TIMING_STEPS_BIG:-100}" --set data.batch_size="$big"
          --set train.eval_every="${TIMING_STEPS_BIG:-100}" --set train.log_every=25)
  methods=("timingbig_allreduce|--set sync.strategy=allreduce --set optimizer.momentum=0")
  run_methods configs/fashion_mnist_cnn.yaml test_accuracy "${timing[@]}"
  delay_big=$("${report[@]}" --delay "${DELAY_FACTOR:-2}" "$work/timingbig_allreduce")
  /usr/bin/python3 bench/traces/bursty_trace.py --ranks "$np" --steps "${TIMING_STEPS_BIG:-100}" \
    --burst "$trace_burst" --window "$trace_window" --lambda "$trace_lambda" \
    --delay-ms "$delay_big" --seed "$seed" --start-probability "$start_p" --exclude-ranks 0 \
    -o "$work/trace_big.csv"
  paired_timing timingbig "--set inject.trace=$work/trace_big.csv"
fi

full="NP=$np STEPS=$steps EVAL_EVERY=$eval_every TARGET=$target SEED=$seed START_P=$start_p"
full+=" DELAY_MS=$DELAY_MS REPEATS=${REPEATS:-3} TIMING_STEPS=${TIMING_STEPS:-150}"
full+=" BIG_BATCH=$big TIMING_STEPS_BIG=${TIMING_STEPS_BIG:-100}"
full+="${MU:+ MU=$MU}${RUNS:+ RUNS=${RUNS@Q}} bench/sequential_coding.sh"
command="\`$invoked\` (the same runs with every setting spelled out: \`$full\`)"
[ -z "${SKIP_DONE:-}" ] ||
  command+="; SKIP_DONE=1 kept the runs that an earlier invocation with these settings finished"
"${report[@]}" "$work" "$np" "$steps" "$target" "$trace" "$command" "$out.md" "$out.png" \
  "$trace_burst,$trace_window,$trace_lambda,$start_p"
echo "wrote $out.md and $out.png (runs in $work)"
