#!/usr/bin/env bash
# check_layering.sh ROOT: fails, naming file, line and header, when a layer includes a header of
# a layer above it (common < collectives < optimizers < runtime < launch), or when common/ or
# collectives/ include LibTorch's full front end (<torch/...>: 30 s and 1 GB per file to
# compile; they use <ATen/core/Tensor.h>). The build runs it on every change (target
# check_layering), so a violation breaks the build, not just a review.
set -euo pipefail
root=$1
layers=(common collectives optimizers runtime launch)
status=0
for ((i = 0; i < ${#layers[@]}; i++)); do
  layer=${layers[$i]}
  [ -d "$root/$layer" ] || continue
  for ((j = i + 1; j < ${#layers[@]}; j++)); do
    above=${layers[$j]}
    while IFS= read -r hit; do
      echo "layering: $hit: $layer/ must not include $above/ (a layer above it)" >&2
      status=1
    done < <(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]+[\"<]$above/" "$root/$layer" \
               --include='*.h' --include='*.cpp' || true)
  done
done
for layer in common collectives; do
  [ -d "$root/$layer" ] || continue
  while IFS= read -r hit; do
    echo "layering: $hit: $layer/ includes LibTorch's front end; use <ATen/core/Tensor.h>" >&2
    status=1
  done < <(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]+<torch/" "$root/$layer" \
             --include='*.h' --include='*.cpp' || true)
done
exit $status
