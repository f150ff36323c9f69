#!/usr/bin/env bash
# How fast and how specific braid's online detection is, at NP ranks (default 4) on one machine:
#   stall      rank 1 stopped (SIGSTOP) mid-run: seconds from the stop to the first stall report
#              naming rank 1, against the threshold max(2 s, 5 x median step)
#   straggler  rank 1 slowed 3x (inject:): the first step whose training line names it
#   slow link  the link between ranks 1 and 2 slowed 5x (inject.slow_links, one rank per node,
#              ring, runtime.link_probe_every=5): the first step whose training line names it
#   clean      CLEAN_STEPS (default 1000) steps of every config in configs/ with nothing injected
#              and the link probe on: stall reports, straggler and slow-link lines (false alarms)
# Writes bench/results/diagnosis.md.
set -euo pipefail
cd "$(dirname "$0")/.."
np=${NP:-4} clean_steps=${CLEAN_STEPS:-1000}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mlp=(configs/fashion_mnist_mlp.yaml --set data.train_limit=8192 --set train.eval_every=0
     --set data.test_limit=200)
out=bench/results/diagnosis.md

# Stall: stop rank 1 once training is under way, time the first report naming it.
TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid train "${mlp[@]}" --run-dir "$work/stall" \
  --set train.max_steps=1000000 --set train.log_every=1 --set runtime.timeout_s=30 \
  > "$work/stall.log" 2>&1 &
launcher=$!
for _ in $(seq 600); do [ -s "$work/stall/metrics.jsonl" ] && [ "$(wc -l < "$work/stall/metrics.jsonl")" -ge 50 ] && break; sleep 0.1; done
for pid in $(pgrep -P "$launcher"); do
  tr '\0' '\n' < "/proc/$pid/environ" | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$pid
done
stopped_at=$(date +%s.%N)
kill -STOP "$victim"
wait "$launcher" || true
kill -KILL "$victim" 2> /dev/null || true
build/bin/braid doctor --json "$work/stall" > "$work/doctor.json" || true

# Straggler: rank 1 slowed 3x from the first step.
TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid train "${mlp[@]}" --run-dir "$work/slow" \
  --set train.max_steps=60 --set train.log_every=1 --set inject.slow_ranks=[1] \
  --set inject.slowdown=3 > "$work/slow.log" 2>&1

# Slow link: ranks 1 and 2, 5x, from the first step.
TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid train "${mlp[@]}" --run-dir "$work/link" \
  --set train.max_steps=60 --set train.log_every=1 --set runtime.ranks_per_node=1 \
  --set sync.algorithm=ring --set "inject.slow_links=[[1, 2]]" --set inject.link_slowdown=5 \
  --set runtime.link_probe_every=5 \
  > "$work/link.log" 2>&1

# Clean runs of every config.
for cfg in configs/*.yaml; do
  name=$(basename "$cfg" .yaml)
  TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid train "$cfg" --run-dir "$work/clean-$name" \
    --set train.max_steps="$clean_steps" --set train.log_every=1 --set train.eval_every=0 \
    --set data.test_limit=200 --set runtime.link_probe_every=5 > "$work/clean-$name.log" 2>&1
done

/usr/bin/python3 - "$work" "$stopped_at" "$np" "$clean_steps" <<'PY' | tee "$out"
import datetime, glob, json, os, re, statistics, sys
work, stopped_at, np, clean_steps = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]

def steps(run):
    return [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl") if '"loss"' in l]

# Stall: log times are local wall-clock HH:MM:SS.mmm of today.
stall_lines = [l for l in open(f"{work}/stall.log") if "stall:" in l and "for rank 1" in l]
day = datetime.datetime.fromtimestamp(stopped_at).date()
def at(line):
    t = datetime.datetime.strptime(re.search(r"\[(\d\d:\d\d:\d\d\.\d+)\]", line).group(1), "%H:%M:%S.%f")
    return datetime.datetime.combine(day, t.time()).timestamp()
median_ms = statistics.median(l["step_ms"] for l in steps("stall"))
threshold = max(2.0, 5 * median_ms / 1e3)
doctor = json.load(open(f"{work}/doctor.json"))
print(f"np={np}, Fashion-MNIST mlp unless named; one machine, {os.cpu_count()} cores.\n")
print("| detection | measured | goal |")
print("|---|---|---|")
if stall_lines:
    first = min(at(l) for l in stall_lines)
    namers = {re.search(r"\[rank (\d+)\]", l).group(1) for l in stall_lines}
    print(f"| SIGSTOP of rank 1: first stall report naming it | {first - stopped_at:.2f} s after the stop "
          f"({len(namers)} of {int(np) - 1} waiting ranks named it) | within max(2 s, 5 x median step "
          f"{median_ms:.1f} ms) = {threshold:.1f} s |")
else:
    print("| SIGSTOP of rank 1 | no stall report named rank 1 | |")
culprit = doctor.get("culprit") or {}
print(f"| `braid doctor` after the timeout | culprit rank {culprit.get('rank')} | rank 1 |")
flagged = [l["step"] for l in steps("slow") if l.get("straggler", {}).get("rank") == 1]
ratio = [l["straggler"]["ratio"] for l in steps("slow") if "straggler" in l]
print(f"| rank 1 slowed 3x: first training line naming it | step {flagged[0] if flagged else 'never'}"
      f" (ratio {ratio[0]:.2f}) | within 20 steps of being slow (21, read one step late: 22) |"
      if flagged else "| rank 1 slowed 3x | never named | |")
links = [l for l in steps("link") if l.get("slow_link", {}).get("ranks") == [1, 2]]
print(f"| link 1-2 slowed 5x: first training line naming it | step {links[0]['step']} (ratio "
      f"{links[0]['slow_link']['ratio']:.1f}) | within 20 steps |" if links else
      "| link 1-2 slowed 5x | never named | within 20 steps |")
for log in sorted(glob.glob(f"{work}/clean-*.log")):
    name = os.path.basename(log)[len("clean-"):-len(".log")]
    stalls = sum("stall:" in l for l in open(log))
    stragglers = sum("straggler" in l for l in open(log))
    slow_links = sum("slow link" in l for l in open(log))
    lines = steps(f"clean-{name}")
    print(f"| {name}, {lines[-1]['step']} clean steps (median step {statistics.median(l['step_ms'] for l in lines):.1f} ms) "
          f"| {stalls} stall reports, {stragglers} straggler reports, {slow_links} slow links | 0 |")
PY
