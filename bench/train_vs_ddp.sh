#!/usr/bin/env bash
# braid against PyTorch DDP with the Gloo backend, same machine, same command: 2 ranks,
# Fashion-MNIST `cnn`, batch 64 per rank, 1 torch thread per rank, SGD lr 0.05 momentum 0.9.
# Both skip 20 warm-up steps and time the next 300. The two alternate REPEATS times (default 3);
# the script prints every measurement and the ratio of the medians.
# Needs Debian's python3-torch for the baseline (installed if missing; run by /usr/bin/python3,
# since another python3 on PATH does not see Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${REPEATS:-3}
/usr/bin/python3 -c "import torch" 2>/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ddp=() ours=()
for i in $(seq "$repeats"); do
  d=$(timeout 600 /usr/bin/python3 bench/ddp_gloo_baseline.py --model cnn --np 2 --batch 64 --threads 1 --warmup 20 --steps 300 |
      python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["samples_per_s"])')
  TERM=dumb mpirun "${flags[@]}" -np 2 build/bin/braid train configs/fashion_mnist_cnn.yaml \
    --run-dir "$work/run$i" --set train.max_steps=320 --set train.log_every=20 --set train.eval_every=0 \
    --set train.checkpoint_every=0 --set train.resume=never --set data.batch_size=64 \
    --set runtime.threads=1 --set optimizer.lr=0.05 --set optimizer.momentum=0.9 \
    --set optimizer.schedule=constant > "$work/log$i" 2>&1
  # Steps 21..320: the windows after the first logged one.
  b=$(python3 - "$work/run$i/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
timed = [l for l in lines if l["step"] > 20]
seconds = sum(l["step_ms"] * 20 / 1000 for l in timed)
print(len(timed) * 20 * 2 * 64 / seconds)
PY
)
  ddp+=("$d") ours+=("$b")
  printf 'run %d: pytorch_ddp_gloo %.0f samples/s, braid %.0f samples/s\n' "$i" "$d" "$b"
done
python3 - "${ddp[*]}" "${ours[*]}" <<'PY'
import statistics, sys
ddp = [float(x) for x in sys.argv[1].split()]
ours = [float(x) for x in sys.argv[2].split()]
md, mo = statistics.median(ddp), statistics.median(ours)
print(f"median: pytorch_ddp_gloo {md:.0f} samples/s, braid {mo:.0f} samples/s, ratio {mo / md:.2f}x")
PY
