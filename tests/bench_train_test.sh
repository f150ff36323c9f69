#!/usr/bin/env bash
# End-to-end test of `braid bench train`. Usage: bench_train_test.sh BRAID SOURCE_DIR
#  - 2 ranks, --json: one object with the documented keys; step_ms splits into compute_ms and
#    comm_ms (non-negative, comm_ms <= step_ms; structure, not timing); efficiency is null
#    without a baseline; the temporary run directory is gone afterwards.
#  - --baseline: np=1 writes it, np=2 reads it and reports an efficiency; a baseline of another
#    per-rank batch is refused with exit 2.
set -euo pipefail
braid=$(realpath "$1") src=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export TMPDIR=$work/tmp
mkdir "$TMPDIR"
bench() { mpirun --oversubscribe -np "$1" "$braid" bench train "$src/configs/fashion_mnist_mlp.yaml" \
            --steps 5 --warmup 2 --set data.train_limit=2048 "${@:2}"; }
check_json() {  # check_json FILE EFFICIENCY(null|number) RANKS
  python3 - "$@" <<'PY' || fail "bad JSON result: $(cat "$1")"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
assert len(lines) == 1, lines
r = json.loads(lines[0])
keys = ["ranks", "steps", "batch_per_rank", "samples_per_s", "step_ms", "compute_ms", "comm_ms",
        "efficiency"]
assert list(r) == keys, list(r)
assert r["ranks"] == int(sys.argv[3]) and r["steps"] == 5 and r["batch_per_rank"] == 64, r
assert r["samples_per_s"] > 0 and r["step_ms"] > 0, r
assert r["compute_ms"] >= 0 and 0 <= r["comm_ms"] <= r["step_ms"], r
assert abs(r["compute_ms"] + r["comm_ms"] - r["step_ms"]) <= 1e-3 * r["step_ms"], r
if sys.argv[2] == "null":
    assert r["efficiency"] is None, r
else:
    assert isinstance(r["efficiency"], (int, float)) and r["efficiency"] > 0, r
PY
}

bench 2 --json > "$work/np2.json"
check_json "$work/np2.json" null 2
[ -z "$(ls -A "$TMPDIR")" ] || fail "temporary run directory left behind: $(ls "$TMPDIR")"

bench 1 --json --baseline "$work/base.json" > "$work/np1.json"
check_json "$work/np1.json" number 1
bench 2 --json --baseline "$work/base.json" > "$work/np2b.json"
check_json "$work/np2b.json" number 2
set +e
bench 2 --baseline "$work/base.json" --set data.batch_size=32 > "$work/mismatch.log" 2>&1
code=$?
set -e
cat "$work/mismatch.log"
[ "$code" -eq 2 ] || fail "a baseline of another batch: expected exit 2, got $code"
grep -q "measured with another config or per-rank batch" "$work/mismatch.log" || fail "no reason given"
echo PASS
