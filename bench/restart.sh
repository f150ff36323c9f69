#!/usr/bin/env bash
# Goodput of launch/braid-restart: fortunes char_transformer at NP ranks (default 4) for DURATION
# seconds (default 600) each, checkpoints every CHECKPOINT_EVERY steps (default 50):
#   free    no fault: the baseline
#   kills   one rank SIGKILLed at a random time in every minute (seeded: SEED, default 1)
#   bad     rank NP-1 (one emulated node: runtime.ranks_per_node=1) kills itself after 20 s in
#           every run (inject.crash_rank), until braid-restart excludes it
# RUNS (default "free kills bad") picks them; free is the baseline. Each run ends with SIGTERM at
# DURATION (a clean checkpoint). Goodput = steps reached / the free run's, and samples trained /
# the free run's (after a node is excluded a step has fewer ranks' samples). Also per fault: detection latency (kill to braid-restart's verdict), restart latency
# (verdict to the next training line) and lost steps (last logged step to the resumed one).
# Writes bench/results/restart.md and restart.png.
set -euo pipefail
cd "$(dirname "$0")/.."
np=${NP:-4} duration=${DURATION:-600} every=${CHECKPOINT_EVERY:-50} seed=${SEED:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TERM=dumb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
job=(mpirun --oversubscribe -np "$np" build/bin/braid train configs/fortunes_char_transformer.yaml
     --set train.max_steps=1000000 --set train.log_every=5 --set train.eval_every=0
     --set train.checkpoint_every="$every" --set data.test_limit=64 --progress lines)
# Prefixes every line with the Unix time it was read.
stamp() { /usr/bin/python3 -u -c 'import sys, time
for line in sys.stdin: sys.stdout.write(f"{time.time():.3f} {line}")'; }

run() {  # run NAME [extra job options]: DURATION seconds, then SIGTERM to the ranks
  local name=$1; shift
  launch/braid-restart --max-restarts 50 -- "${job[@]}" --run-dir "$work/$name" "$@" \
    > >(stamp > "$work/$name.log") 2>&1 &
  local wrapper=$!
  echo "$wrapper" > "$work/$name.wrapper"
  sleep "$duration"  # the measurement's length, not a synchronisation
  # SIGTERM to the ranks: a clean checkpoint, exit 143, and braid-restart stops. Between two
  # runs there are no ranks: then to the wrapper itself.
  local ranks
  ranks=$(for launcher in $(pgrep -P "$wrapper"); do pgrep -P "$launcher"; done)
  if [ -n "$ranks" ]; then kill -TERM $ranks || true; else kill -TERM "$wrapper" || true; fi
  wait "$wrapper" || true
}

# Kills one rank of the job under wrapper $1 at a seeded random moment of every minute.
killer() {
  /usr/bin/python3 - "$1" "$duration" "$seed" > "$work/kill_times" <<'PY'
import os, random, signal, subprocess, sys, time
wrapper, duration, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
start = time.time()
minute = 0
while (minute + 1) * 60 <= duration:
    at = start + minute * 60 + rng.uniform(10, 60)
    time.sleep(max(0, at - time.time()))
    children = lambda pid: [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    ranks = [r for m in children(wrapper) for r in children(m)]
    if ranks:
        victim = rng.choice(sorted(ranks))
        os.kill(victim, signal.SIGKILL)
        print(f"{time.time():.3f} killed {victim}", flush=True)
    minute += 1
PY
}

runs=${RUNS:-free kills bad}
run free
if [[ " $runs " == *" kills "* ]]; then
  run kills &
  for _ in $(seq 100); do [ -s "$work/kills.wrapper" ] && break; sleep 0.1; done
  killer "$(cat "$work/kills.wrapper")" &
  wait
fi
if [[ " $runs " == *" bad "* ]]; then
  run bad --set runtime.ranks_per_node=1 --set inject.crash_rank=$((np - 1)) --set inject.crash_after_s=20
fi

/usr/bin/python3 - "$work" "$duration" "$every" "$np" <<'PY' | tee bench/results/restart.md
import re, statistics, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
work, duration, every, np = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
step_re = re.compile(r"^(\S+) .*\[rank 0\] \[info\] step (\d+)/")
ranks_re = re.compile(r"\[rank 0\] \[info\] training .* (\d+) ranks x batch (\d+)")

stamped = re.compile(r"^(\d+\.\d+) ")

def parse(name):
    # Lines as stamped on arrival; a line some rank wrote into another's (no newline yet) is
    # not one.
    lines = [l.rstrip("\n") for l in open(f"{work}/{name}.log") if stamped.match(l)]
    start = float(lines[0].split()[0])
    steps, faults, last_step = [], [], 0
    samples, per_step, counted = 0, 0, None  # samples of the steps kept (a resumed step recounts)
    for l in lines:
        t = float(l.split()[0]) - start
        if m := ranks_re.search(l):
            per_step = int(m.group(1)) * int(m.group(2))
        if m := step_re.match(l):
            step = int(m.group(2))
            if counted is not None and step > counted:
                samples += (step - counted) * per_step
            counted = step
            last_step = step
            steps.append((t, last_step))
            if faults and "restart_s" not in faults[-1]:
                faults[-1]["restart_s"] = t - faults[-1]["verdict"]
        elif "braid-restart: run" in l and "failed" in l:
            faults.append({"verdict": t, "last_step": last_step})
        elif (m := re.search(r"resumed from .* at step (\d+)", l)) and faults:
            faults[-1]["lost"] = faults[-1]["last_step"] - int(m.group(1))
            # Steps past the checkpoint were lost; their samples count again when redone.
            samples -= max(0, (counted or 0) - int(m.group(1))) * per_step
            counted = int(m.group(1))
        elif "excluded" in l and faults:
            faults[-1]["excluded"] = True
    # The first logged step's samples: the steps before it at this run's rank count.
    first = steps[0][1] if steps else 0
    return start, steps, faults, samples + first * (per_step or 0)

import os
runs = {n: parse(n) for n in ("free", "kills", "bad") if os.path.exists(f"{work}/{n}.log")}
if "kills" in runs:
    kills = [float(l.split()[0]) - runs["kills"][0] for l in open(f"{work}/kill_times")]
    for k, f in zip(kills, runs["kills"][2]):
        f["detect_s"] = f["verdict"] - k
base = runs["free"][1][-1][1]
base_samples = runs["free"][3]
print(f"fortunes char_transformer, np={np}, {duration:.0f} s per run, train.checkpoint_every={every}; "
      f"one machine.\n")
print("| run | faults | steps reached | goodput in steps | samples trained | goodput in samples | detection s (median) | restart s (median) | lost steps per fault (median) |")
print("|---|---|---|---|---|---|---|---|---|")
for name, (_, steps, faults, samples) in runs.items():
    med = lambda key: f"{statistics.median(f[key] for f in faults if key in f):.1f}" if any(key in f for f in faults) else "-"
    print(f"| {name} | {len(faults)} | {steps[-1][1]} | {steps[-1][1] / base:.3f} | {samples} | {samples / base_samples:.3f} | {med('detect_s')} | {med('restart_s')} | {med('lost')} |")
if "bad" in runs:
    excluded = [f for f in runs["bad"][2] if f.get("excluded")]
    print(f"\nbad: the node was excluded at its failure number {runs['bad'][2].index(excluded[0]) + 1 if excluded else 'never'},"
          " after which each step carries 3 ranks' samples; its detection (rank 3 killing itself to the verdict) is not timed.")
fig, ax = plt.subplots(figsize=(7, 4))
for name, (_, steps, _, _) in runs.items():
    ax.plot([t for t, _ in steps], [s for _, s in steps], label=name)
ax.set_xlabel("wall-clock seconds")
ax.set_ylabel("training step")
ax.set_title(f"braid-restart: char_transformer np={np}, checkpoint every {every} steps")
ax.legend()
fig.tight_layout()
fig.savefig("bench/results/restart.png", dpi=100)
PY
