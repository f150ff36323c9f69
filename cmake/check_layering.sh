#!/usr/bin/env bash
# check_layering.sh ROOT: fails, naming file, line and header, when a layer includes a header of
# a layer above it (common < collectives < compression < optimizers < runtime < launch), or when
# common/, collectives/ or compression/ include LibTorch's full front end (<torch/...>: 30 s and
# 1 GB per file to compile; they use ATen headers). The build runs it on every change (target
# check_layering), so a violation breaks the build, not just a review.
set -euo pipefail
root=$1
layers=(common collectives compression optimizers runtime launch)
status=0

# forbid DIR INCLUDE_PREFIX WHY: every #include of INCLUDE_PREFIX... under ROOT/DIR is an error.
forbid() {
  [ -d "$root/$1" ] || return 0
  local hit
  while IFS= read -r hit; do
    echo "layering: $hit: $3" >&2
    status=1
  done < <(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]+$2" "$root/$1" \
             --include='*.h' --include='*.cpp' || true)
}

for ((i = 0; i < ${#layers[@]}; i++)); do
  for ((j = i + 1; j < ${#layers[@]}; j++)); do
    forbid "${layers[$i]}" "[\"<]${layers[$j]}/" \
      "${layers[$i]}/ must not include ${layers[$j]}/ (a layer above it)"
  done
done
for layer in common collectives compression; do
  forbid "$layer" "<torch/" "$layer/ includes LibTorch's front end; use ATen headers"
done
exit $status
