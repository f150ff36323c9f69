#!/usr/bin/env bash
# Local-update strategies against synchronous allreduce on a slow link (the measured
# result): configs/fortunes_char_transformer.yaml, np=4 (oversubscribing 2 cores), STEPS inner
# steps for sync (default 300) and LOCAL_STEPS for each local method (default 900: the time to
# reach sync's final loss is the question, and on the slow link a local method's extra inner
# steps cost far less than sync's exchanges; the table also gives each one's test loss at step
# STEPS), H = outer.steps = OUTER_STEPS (default 30) for every local method, the
# same inner learning rate LR for every method (default 0.01, near the best of 0.003..0.02
# for sync and for each local method on the unlimited link: bench/results/slowlink_local_lr.md),
# test loss every EVAL_EVERY steps (default 30), one log line per step (for the per-step peak).
# co2 runs with its reference code's outer step for few workers (SGD, lr 1, momentum 0.2: the
# fairseq-CO2 example, and co2's defaults; DiLoCo's Nesterov 0.7/0.9 on a one-round-stale update
# overshoots), and with its stabilisers' defaults (outer.reset hard, outer.staleness_penalty 1,
# outer.clip_threshold 1); co2_soft is co2 with outer.reset soft and no penalty (braid's earlier
# default). The flags stay explicit so that the runs do not depend on the defaults.
# Every rank is a node of its own (runtime.ranks_per_node=1), as on separate machines: sync's
# gradients cross the link, never shared memory.
# Every method runs twice, alternating: on the unlimited link (plain mpirun, shared memory) and
# under `launch/braid-slowlink --rate RATE` (default 20mbit, all ranks share it). Sync on the
# slow link runs only SYNC_SLOW_STEPS steps (default 30): its 300-step slow-link curve is the
# unlimited run's with each step slowed by the measured difference in per-step time.
# Per method: final test loss, wall-clock (summary's last time_s), bytes sent per rank (rank 0's
# summary.json bytes_sent), peak bytes in one step (largest difference of cumulative
# bytes_sent between consecutive per-step lines, from step 1 to 2 on: step 1 also carries the
# start-up checks), and time to reach sync's final loss + 0.1 nats (time_s
# of the first evaluation at or below it, no interpolation). Writes
# bench/results/slowlink_local.md and slowlink_local_{time,bytes}.png (slow-link runs, log x).
# ONLY="co2 streaming_diloco" with WORK set to an earlier run's directory re-runs just those
# methods and rebuilds the table from WORK (the others' runs reused as they are).
# Needs root (braid-slowlink) and Debian's python3-matplotlib (run by /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
np=${NP:-4} steps=${STEPS:-300} local_steps=${LOCAL_STEPS:-900} h=${OUTER_STEPS:-30} eval_every=${EVAL_EVERY:-30} lr=${LR:-0.01}
rate=${RATE:-20mbit} sync_slow_steps=${SYNC_SLOW_STEPS:-30}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
work=${WORK:-$(mktemp -d)}
mkdir -p "$work/fast" "$work/slow"
# Wall-clock is the result: wait (up to LOAD_WAIT s) for other work to leave the machine.
for _ in $(seq $((${LOAD_WAIT:-900} / 15))); do
  awk -v max="${LOAD_MAX:-2.5}" '{ exit !($1 < max) }' /proc/loadavg && break
  sleep 15
done
cut -d' ' -f1-3 /proc/loadavg | tee "$work/load_start"
methods=(
  "sync|--set sync.strategy=allreduce"
  "local_sgd|--set sync.strategy=local_sgd"
  "diloco|--set sync.strategy=diloco"
  "streaming_diloco|--set sync.strategy=streaming_diloco --set outer.wire=e3m0 --set outer.fragments=3"
  "co2|--set sync.strategy=co2 --set outer.optimizer=sgd --set outer.lr=1 --set outer.momentum=0.2 --set outer.reset=hard --set outer.staleness_penalty=1 --set outer.clip_threshold=1"
  "co2_soft|--set sync.strategy=co2 --set outer.optimizer=sgd --set outer.lr=1 --set outer.momentum=0.2 --set outer.reset=soft --set outer.staleness_penalty=0 --set outer.clip_threshold=1"
)
# run LINK NAME MAX_STEPS EXTRA...: one training run into $work/LINK/NAME, with the load average
# before and after in $work/LINK/NAME.load.
run() {
  local link=$1 name=$2 max=$3
  shift 3
  local wrap=()
  [ "$link" = fast ] || wrap=(launch/braid-slowlink --quiet --rate "$rate" --)
  rm -rf "${work:?}/$link/$name"
  cut -d' ' -f1 /proc/loadavg > "$work/$link/$name.load"
  TERM=dumb "${wrap[@]}" mpirun "${flags[@]}" -np "$np" build/bin/braid train \
    configs/fortunes_char_transformer.yaml --run-dir "$work/$link/$name" \
    --set train.max_steps="$max" --set train.epochs=1000 --set train.eval_every="$eval_every" \
    --set train.log_every=1 --set train.checkpoint_every=0 --set train.resume=never \
    --set outer.steps="$h" --set optimizer.lr="$lr" --set runtime.ranks_per_node=1 \
    --progress lines "$@" \
    > "$work/$link/$name.log" 2>&1 ||
    { tail -5 "$work/$link/$name.log"; exit 1; }
  cut -d' ' -f1 /proc/loadavg >> "$work/$link/$name.load"
  echo "$link $name: $(grep -o '"test_loss":[0-9.]*' "$work/$link/$name/summary.json")" \
    "time $(tail -1 "$work/$link/$name/metrics.jsonl" | grep -o '"time_s":[0-9.]*')"
}
names=()
for entry in "${methods[@]}"; do
  name=${entry%%|*}
  names+=("$name")
  # shellcheck disable=SC2206
  extra=(${entry#*|})
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then
    [ -f "$work/fast/$name/summary.json" ] && [ -f "$work/slow/$name/summary.json" ] ||
      { echo "ONLY: $name has no runs in WORK=$work to reuse" >&2; exit 1; }
    echo "reusing $name from $work"
    continue
  fi
  if [ "$name" = sync ]; then
    run fast "$name" "$steps" "${extra[@]}"
    run slow "$name" "$sync_slow_steps" "${extra[@]}"
  else
    run fast "$name" "$local_steps" "${extra[@]}"
    run slow "$name" "$local_steps" "${extra[@]}"
  fi
done
/usr/bin/python3 - "$work" "$rate" "$lr" "$steps" "$h" "$eval_every" "$sync_slow_steps" "$(nproc)" \
  "$local_steps" \
  "${names[@]}" <<'PY'
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

work, rate, lr = sys.argv[1], sys.argv[2], sys.argv[3]
steps, h, eval_every, sync_slow_steps, cores, local_steps = map(int, sys.argv[4:10])
names = sys.argv[10:]
def lines(d): return [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
def train(ls): return [l for l in ls if "loss" in l and "test_loss" not in l]
def evals(ls): return [l for l in ls if "test_loss" in l]
def load(link, n): return [float(x) for x in open(f"{work}/{link}/{n}.load").read().split()]
def per_step(ls):  # mean time between consecutive step lines with no evaluation between them
    d = [b["time_s"] - a["time_s"] for a, b in zip(ls, ls[1:])
         if "test_loss" not in a and "test_loss" not in b and a["step"] >= 1]
    return sum(d) / len(d)

runs = {(link, n): lines(f"{work}/{link}/{n}") for link in ("fast", "slow") for n in names}
summ = {(link, n): json.load(open(f"{work}/{link}/{n}/summary.json"))
        for link in ("fast", "slow") for n in names}
# Sync on the slow link: the unlimited run's lines, each later by step x (slow - fast) per step.
slow_sync_step, fast_sync_step = per_step(runs["slow", "sync"]), per_step(runs["fast", "sync"])
extra = slow_sync_step - fast_sync_step
sync_ex = [dict(l, time_s=l["time_s"] + l["step"] * extra) for l in runs["fast", "sync"]]
slow = {n: (sync_ex if n == "sync" else runs["slow", n]) for n in names}

target = evals(runs["fast", "sync"])[-1]["test_loss"] + 0.1
def reach(ls):
    hit = [l for l in evals(ls) if l["test_loss"] <= target]
    return (hit[0]["time_s"], hit[0]["step"]) if hit else (None, None)
def peak(ls):
    b = [l["bytes_sent"] for l in train(ls)]
    return max(y - x for x, y in zip(b, b[1:]))
sync_reach = reach(slow["sync"])[0]
sync_bytes, rows, res = [l["bytes_sent"] for l in train(runs["fast", "sync"])][-1], [], {}
fmt = lambda v, f: "not reached" if v is None else f.format(v)
for n in names:
    ls, fast = slow[n], runs["fast", n]
    t_slow, t_fast = ls[-1]["time_s"], fast[-1]["time_s"]
    b_all = summ["fast" if n == "sync" else "slow", n]["bytes_sent"]
    # Bytes over the first `steps` inner steps (sync's whole run), so the ratio compares equal
    # amounts of training; the whole run's are in their own column.
    b = [l["bytes_sent"] for l in train(ls) if l["step"] == steps][0]
    t_hit, s_hit = reach(ls)
    same = [l for l in evals(slow["sync"]) if l["test_loss"] <= evals(ls)[-1]["test_loss"]]
    t_same = same[0]["time_s"] if same else None
    at_steps = [l["test_loss"] for l in evals(ls) if l["step"] == steps]
    res[n] = dict(loss=evals(ls)[-1]["test_loss"], t_slow=t_slow, t_fast=t_fast, bytes=b,
                  peak=peak(ls), t_hit=t_hit,
                  speedup=None if t_hit is None else sync_reach / t_hit)
    r = res[n]
    lo = load("slow", n) + load("fast", n)
    rows.append(f"| {n}{' (slow link extrapolated)' if n == 'sync' else ''} "
                f"| {ls[-1]['step']} | {fmt(at_steps[0] if at_steps else None, '{:.3f}')} "
                f"| {r['loss']:.3f} "
                f"| {t_slow:.0f} | {t_fast:.0f} | {t_slow / t_fast:.2f} | {b_all / 1e6:.1f} "
                f"| {b / 1e6:.1f} "
                f"| {sync_bytes / b:.0f}x | {r['peak'] / 1e6:.2f} "
                f"| {fmt(t_hit, '{:.0f}')}{'' if s_hit is None else f' (step {s_hit})'} "
                f"| {fmt(r['speedup'], '{:.1f}x')} | {fmt(t_same, '{:.0f}')} "
                f"| {fmt(t_same and t_same / t_slow, '{:.1f}x')} | {min(lo):.1f}-{max(lo):.1f} |")

def check(ok, text): return f"- {'**met**' if ok else '**missed**'}: {text}"
big3 = ["diloco", "streaming_diloco", "co2"]
sp = {n: res[n]["speedup"] or 0.0 for n in big3}
# The best: the soonest to the target; if none reaches it, the lowest final loss.
best = max(big3, key=lambda n: (sp[n], -res[n]["loss"]))
spx = lambda n: f"{sp[n]:.1f}x" if sp[n] else "not reached"
best_any = min((n for n in names if n != "sync" and res[n]["t_hit"] is not None),
               key=lambda n: res[n]["t_slow"] / res[n]["t_fast"], default=None)
sd, dl = res["streaming_diloco"], res["diloco"]
checks = [
    check(all(sp[n] >= 3 for n in big3), "diloco, streaming_diloco and co2 each reach sync's "
          "final loss + 0.1 at least 3x sooner than sync: "
          + ", ".join(f"{n} {spx(n)}" for n in big3)),
    check(sp[best] >= 8, f"the best at least 8x sooner: {best} {spx(best)}"),
    check(sync_bytes / sd["bytes"] >= 100, f"streaming_diloco at least 100x fewer bytes than sync (over {steps} inner steps each): "
          f"{sync_bytes / sd['bytes']:.0f}x"),
    check(dl["peak"] / sd["peak"] >= 4, "streaming_diloco's peak at least 4x lower than diloco's: "
          f"{dl['peak'] / 1e6:.2f} MB / {sd['peak'] / 1e6:.2f} MB = {dl['peak'] / sd['peak']:.1f}x"),
    check(res[best]["t_slow"] <= 1.25 * res[best]["t_fast"], "the best method's slow-link "
          f"wall-clock within 1.25x of its unlimited-link run: {best} "
          f"{res[best]['t_slow'] / res[best]['t_fast']:.2f}x"
          + ("" if best_any in (None, best) else f" (closest of all: {best_any} "
             f"{res[best_any]['t_slow'] / res[best_any]['t_fast']:.2f}x)")),
    check(res["co2"]["loss"] <= res["local_sgd"]["loss"] + 0.05, "co2's final test loss within "
          f"0.05 nats of local_sgd's: {res['co2']['loss']:.3f} against {res['local_sgd']['loss']:.3f}"),
]
with open("bench/results/slowlink_local.md", "w") as f:
    f.write(f"""# Local-update strategies on a {rate} link

Command: `bench/slowlink_local.sh` (configs/fortunes_char_transformer.yaml, np=4 on {cores}
cores, {steps} inner steps for sync and {local_steps} for each local method (its warmup_cosine
schedule spans its own run), H = outer.steps = {h} for every local method, optimizer.lr = {lr}
for every method, test loss every {eval_every} steps). Slow link: `launch/braid-slowlink --rate {rate}`, one {rate} medium
shared by all ranks; unlimited: plain mpirun (shared memory).

- Sync ran only {sync_slow_steps} steps on the slow link ({slow_sync_step:.2f} s per step
  against {fast_sync_step:.2f} s unlimited); its slow-link numbers are its unlimited run's
  with every step {extra:.2f} s longer (loss and bytes are the unlimited run's).
- Target: sync's final loss + 0.1 = {target:.3f} nats; "reached" is the time_s of the first
  evaluation at or below it, not interpolated (evaluations are {eval_every} steps apart).
- "sync reaches this final loss": the first evaluation of sync's slow-link curve at or below
  the method's final test loss, against the method's slow-link wall-clock.
- Best method: the soonest to the target; if none reaches it, the lowest final loss.
- Wall-clock: the last time_s of metrics.jsonl, evaluations included.
- Bytes: rank 0's bytes_sent (summary.json) over the whole run, and at step {steps} (its per-step
  line) for the comparison with sync at equal training; the replicas start from the same seed,
  so only a checksum of the parameters is compared at the start, nothing is broadcast; peak: the
  largest per-step increase of bytes_sent from step 2 on (background exchanges may straddle
  steps).
- Load average (1, 5, 15 min) at the start: {open(f"{work}/load_start").read().strip()}; per
  method: the 1-minute load average before and after each of its two runs (this script's own
  4 ranks add about 4).

| method | inner steps | test loss at step {steps} | final test loss | wall-clock slow (s) | unlimited (s) | slow / unlimited | MB sent per rank | MB in the first {steps} steps | fewer bytes than sync (first {steps} steps) | peak MB in one step | reached target, slow (s) | sooner than sync | sync reaches this final loss, slow (s) | this method's wall-clock sooner | load avg (min-max) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
""")
    f.write("\n".join(rows) + "\n\nExpected outcomes:\n\n" + "\n".join(checks) + "\n")
print(open("bench/results/slowlink_local.md").read())

styles = {n: s for n, s in zip(names, ["k-", "C0-", "C1-", "C2-", "C3-", "C3--"])}
for x, label, scale, out in (("time_s", "wall-clock time (s), log scale", 1, "time"),
                             ("bytes_sent", "bytes sent by rank 0 (MB), log scale", 1e-6, "bytes")):
    plt.figure(figsize=(7, 4.5))
    for n in names:
        ls, last_bytes, pts = slow[n], None, []
        for l in ls:  # evaluation lines carry no bytes: place them at the latest logged value
            last_bytes = l.get("bytes_sent", last_bytes)
            if "test_loss" in l:
                pts.append(((l["time_s"] if x == "time_s" else last_bytes) * scale, l["test_loss"]))
        plt.plot(*zip(*pts), styles[n], marker="o", ms=3,
                 label=n + (" (extrapolated)" if n == "sync" else ""))
    plt.axhline(target, color="gray", ls=":", label=f"sync final + 0.1 = {target:.2f}")
    plt.xscale("log")
    plt.xlabel(label)
    plt.ylabel("test loss (nats)")
    plt.title(f"char_transformer, fortunes, np=4, {rate} link, H={h}")
    plt.legend()
    plt.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(f"bench/results/slowlink_local_{out}.png", dpi=100)
PY
echo "wrote bench/results/slowlink_local.md and slowlink_local_{time,bytes}.png (runs in $work)"
