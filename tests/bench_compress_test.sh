#!/usr/bin/env bash
# End-to-end test of `braid bench compress`. Usage: bench_compress_test.sh BRAID
#  - 2 ranks, one 64 KiB bucket, --json: one row per default compressor (all but none) plus
#    dense; dense's wire bytes are a ring allreduce's 2(P-1)/P * size; topk at ratio 0.01 sends
#    strictly fewer bytes than dense; fp16's payload is half the bucket and its wire bytes half
#    of dense's plus at most the usage slot's ring of one float32 (2(P-1) messages of <= 4 bytes).
#    A negative control: the same checks reject rows where fp16 sent as much as dense.
#  - --compressors picks rows (dense always, duplicates once); an unknown name exits 2 with a
#    message listing the valid names.
set -euo pipefail
braid=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
bench() { mpirun --oversubscribe -np "$1" "$braid" bench compress -b 64K -e 64K -n 2 -w 1 --json "${@:2}"; }
check() {  # check FILE RANKS EXPECTED_COMPRESSORS(comma list)
  python3 - "$@" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
P, expected = int(sys.argv[2]), sys.argv[3].split(",")
by = {r["compressor"]: r for r in rows}
assert [r["compressor"] for r in rows] == expected, [r["compressor"] for r in rows]
size = 65536
for r in rows:
    assert r["ranks"] == P and r["size"] == size and r["count"] == size // 4, r
    assert r["exchange_ms"] > 0 and r["bytes_sent"] > 0 and r["payload_bytes"] > 0, r
    assert (r["encode_ms"] is None) == (r["compressor"] == "dense"), r
dense = by["dense"]["bytes_sent"]
assert dense == 2 * (P - 1) * size // P, dense
assert by["dense"]["ratio"] == 1 and by["dense"]["speedup"] == 1, by["dense"]
if "topk" in by:
    assert by["topk"]["bytes_sent"] < dense, by["topk"]
if "fp16" in by:
    fp16 = by["fp16"]
    assert fp16["payload_bytes"] == size // 2, fp16
    assert dense / 2 <= fp16["bytes_sent"] <= dense / 2 + 8 * (P - 1), (fp16, dense)
    assert abs(fp16["ratio"] - dense / fp16["bytes_sent"]) < 1e-3, fp16
PY
}

bench 2 > "$work/all.json"
cat "$work/all.json"
check "$work/all.json" 2 dense,fp16,bf16,qsgd,topk,randomk,sign,dgc || fail "default rows"

# Negative control: fp16 sending as much as dense must be rejected by the same checks.
python3 - "$work/all.json" > "$work/bad.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for r in rows:
    if r["compressor"] == "fp16": r["bytes_sent"] = rows[0]["bytes_sent"]
    print(json.dumps(r))
PY
if check "$work/bad.json" 2 dense,fp16,bf16,qsgd,topk,randomk,sign,dgc 2>/dev/null; then
  fail "the checks accepted fp16 sending as many bytes as dense"
fi

bench 2 --compressors topk,dense,topk --error-feedback ef > "$work/topk.json"
check "$work/topk.json" 2 dense,topk || fail "--compressors topk,dense,topk"

set +e
bench 2 --compressors topk,zip > "$work/bad.log" 2>&1
code=$?
set -e
cat "$work/bad.log"
[ "$code" -ne 0 ] || fail "an unknown compressor: expected a non-zero exit"
grep -q "unknown compressor 'zip' (valid: dense, none, fp16, bf16, qsgd, topk, randomk, sign, dgc)" \
  "$work/bad.log" || fail "no list of valid names"
echo PASS
