#!/usr/bin/env bash
# `braid plan`'s predictions against measurement: configs/fortunes_char_transformer.yaml at
# np=NP (default 4, every rank a node of its own: runtime.ranks_per_node=1, all traffic on TCP)
# for each link rate in RATES (default "100gbit 1gbit 100mbit 20mbit"; 100gbit stands for an
# unlimited link, TCP over loopback, and is planned as --bandwidth unlimited) and each delay in
# DELAYS (default "0 5ms"; a delay needs the kernel's sch_netem, and a delay the machine cannot
# emulate is reported as skipped) x the methods below. Per cell:
#   predicted: `mpirun -np NP braid plan ... --link shared --json --cost-model FILE` (all NP ranks
#              time compute at once, as in the job; braid-slowlink's loopback is one medium
#              shared by all ranks; FILE is `braid bench allreduce --calibrate` run once at the
#              start over TCP on the unshaped loopback: the transport's own alpha, beta, gamma;
#              --burst is the tbf bucket braid-slowlink sets up at the rate)
#   measured:  `braid bench train` under `launch/braid-slowlink --rate R [--delay D]`: the mean
#              step time of the timed steps (sync-like methods: 3 warm-up + 10 timed steps;
#              local ones: one round of H = 20 warm-up + 2 rounds timed).
# The methods and their overrides: bench/plan_methods.sh (sync.algorithm=ring, the planner's ring
# rows; gathered compressors and the 4-bit streaming exchange ignore it).
# Writes bench/results/plan.md (table, errors, the planner's first choice per cell) and
# bench/results/plan.png (predicted against measured, log-log). Needs root (braid-slowlink) and
# Debian's python3-matplotlib (run by /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
np=${NP:-4}
rates=${RATES:-"100gbit 1gbit 100mbit 20mbit"}
delays=${DELAYS:-"0 5ms"}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
source bench/plan_methods.sh
config=$plan_config
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
# The TCP transport's own per-message cost and bandwidth (alpha, beta, gamma), as every cell
# runs on TCP over the namespace's loopback; the planner adds the link's latency and rate.
launch/braid-slowlink --quiet --rate 100gbit -- mpirun "${flags[@]}" -np "$np" build/bin/braid \
  bench allreduce --calibrate "$work/cost_tcp.yaml" > "$work/calibrate.log" 2>&1 ||
  { tail -5 "$work/calibrate.log"; exit 1; }
: > "$work/cells.jsonl"
for delay in $delays; do
  delay_flags=()
  [ "$delay" = 0 ] || delay_flags=(--delay "$delay")
  if ! launch/braid-slowlink --quiet --rate 1gbit "${delay_flags[@]}" -- true 2> "$work/probe.err"; then
    echo "{\"delay\":\"$delay\",\"skipped\":\"$(head -n 1 "$work/probe.err" | tr -d '"\\')\"}" >> "$work/cells.jsonl"
    echo "delay $delay skipped: $(head -n 1 "$work/probe.err")"
    continue
  fi
  for rate in $rates; do
    bandwidth=$rate
    [ "$rate" = 100gbit ] && bandwidth=unlimited
    # The tbf bucket braid-slowlink sets up at this rate: the first bytes after a step's
    # compute pass at once, and the planner is told so.
    burst=$(launch/braid-slowlink --rate "$rate" -- true 2>&1 | grep -o 'burst [0-9]*b' | grep -o '[0-9]*')
    burst=${burst:-0}
    for entry in "${plan_methods[@]}"; do
      IFS='|' read -r name class extra <<< "$entry"
      # shellcheck disable=SC2206
      extra=($extra)
      if [ "$class" = local ]; then timing=(--warmup 20 --steps 40); else timing=(--warmup 3 --steps 10); fi
      tag="$delay-$rate-$name"
      launch/braid-slowlink --quiet --rate "$rate" "${delay_flags[@]}" -- \
        mpirun "${flags[@]}" -np "$np" build/bin/braid plan "$config" --ranks "$np" \
        --bandwidth "$bandwidth" --latency "$delay" --link shared --steps 10 --json \
        --cost-model "$work/cost_tcp.yaml" --burst "$burst" \
        "${plan_common[@]}" "${extra[@]}" > "$work/$tag.plan" 2> "$work/$tag.plan.err" ||
        { cat "$work/$tag.plan.err"; exit 1; }
      launch/braid-slowlink --quiet --rate "$rate" "${delay_flags[@]}" -- \
        mpirun "${flags[@]}" -np "$np" build/bin/braid bench train "$config" "${timing[@]}" --json \
        "${plan_common[@]}" "${extra[@]}" > "$work/$tag.measured" 2> "$work/$tag.err" ||
        { tail -5 "$work/$tag.err"; exit 1; }
      /usr/bin/python3 - "$work" "$tag" "$delay" "$rate" "$name" >> "$work/cells.jsonl" <<'EOF'
import json, sys
work, tag, delay, rate, name = sys.argv[1:]
rows = [json.loads(line) for line in open(f"{work}/{tag}.plan") if line.startswith("{")]
measured = json.loads([l for l in open(f"{work}/{tag}.measured") if l.startswith("{")][-1])
strategy, compression = {
    "sync": ("allreduce", "none"), "sync+powersgd": ("allreduce", "powersgd"),
    "sync+topk": ("allreduce", "topk")}.get(name, (name, "none"))
def pick(r):
    return r["strategy"] == strategy and r["compression"] == compression and \
        r["algorithm"] in ("ring", "auto")
row = next(r for r in rows if pick(r))
print(json.dumps({"delay": delay, "rate": rate, "method": name, "class": row["class"],
                  "predicted_ms": row["step_ms"], "measured_ms": measured["step_ms"],
                  "predicted_bytes": row["bytes_per_step"], "compute_ms": row["compute_ms"]}))
EOF
      tail -n 1 "$work/cells.jsonl"
    done
  done
done
/usr/bin/python3 bench/plan_report.py "$work/cells.jsonl" bench/results/plan.md bench/results/plan.png \
  "bench/plan.sh (NP=$np RATES=\"$rates\" DELAYS=\"$delays\")"
echo "wrote bench/results/plan.md and bench/results/plan.png (work: $work)"
