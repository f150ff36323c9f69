#!/usr/bin/env bash
# The layering check passes on the source tree and fails, naming the file, on a tree where
# collectives/ includes a runtime/ header or LibTorch's front end (negative controls).
set -euo pipefail
check=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$check" "$src" || { echo "FAIL: the source tree breaks the layering"; exit 1; }
mkdir -p "$work/collectives" "$work/runtime"
printf '#include "runtime/world.h"\n' > "$work/collectives/bad.h"
if bash "$check" "$work" 2> "$work/out"; then echo "FAIL: upward include accepted"; exit 1; fi
grep -q "collectives/bad.h:1.*must not include runtime/" "$work/out" || { cat "$work/out"; exit 1; }
printf '#include <torch/torch.h>\n' > "$work/collectives/bad.h"
if bash "$check" "$work" 2> "$work/out"; then echo "FAIL: <torch/torch.h> accepted"; exit 1; fi
echo "PASS: layering enforced"
