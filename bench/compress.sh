#!/usr/bin/env bash
# Compressors against dense float32 allreduce on one bucket, in the same command:
# `braid bench compress` at np=4 (on a 2-core machine the ranks oversubscribe the cores), float32
# buckets of 64 KiB..16 MiB (factor 4), topk/randomk ratio 0.01, qsgd 4 bits, no error feedback,
# median of 10 iterations after 2 warm-up. Per row: encode and decode time (rank 0 alone),
# payload bytes, the time of one full CompressedExchange on every rank and rank 0's bytes on the
# wire per exchange, against dense's. Writes bench/results/compress.md (the table, with the
# command and the machine's load) and keeps the JSON rows next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
np=${NP:-4}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
args=(bench compress --min-bytes 64K --max-bytes 16M --factor 4 --ratio 0.01 --bits 4
      --error-feedback none --iters "${ITERS:-10}" --warmup 2)
load=$(cut -d' ' -f1-3 /proc/loadavg)
TERM=dumb mpirun "${flags[@]}" -np "$np" build/bin/braid "${args[@]}" --json \
  > bench/results/compress_np${np}.jsonl
/usr/bin/python3 - bench/results/compress_np${np}.jsonl "$np" "${args[*]}" "$load" <<'PY' | tee bench/results/compress.md
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"`mpirun -np {sys.argv[2]} build/bin/braid {sys.argv[3]}` (load average before: {sys.argv[4]})")
print()
print("ratio = dense bytes_sent / bytes_sent; speedup = dense exchange_ms / exchange_ms; "
      "bytes_sent is rank 0's wire bytes per exchange.")
print()
print("| size (B) | compressor | encode_ms | decode_ms | payload (B) | exchange_ms | bytes_sent | ratio | speedup |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
ms = lambda v: "-" if v is None else f"{v:.3f}"
for r in rows:
    print(f"| {r['size']} | {r['compressor']} | {ms(r['encode_ms'])} | {ms(r['decode_ms'])} "
          f"| {r['payload_bytes']} | {r['exchange_ms']:.3f} | {r['bytes_sent']:.0f} "
          f"| {r['ratio']:.2f} | {r['speedup']:.2f} |")
PY
echo "wrote bench/results/compress.md and bench/results/compress_np${np}.jsonl"
