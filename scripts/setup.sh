#!/usr/bin/env bash
# Installs what is missing (Debian 12, apt-get), then configures and builds braid in build/.
# Quick when everything is present: one dpkg query, then an incremental build.
# Usage: scripts/setup.sh [--all]
#   (none)  the `braid` executable only, what the main job runs; the CUDA path only where a GPU
#           is visible (BRAID_CUDA=AUTO)
#   --all   every target (tests, examples, benchmarks), and the CUDA path wherever nvcc and NCCL
#           are installed, so that it compiles and links on machines without a GPU too
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release), JOBS (default nproc),
# CMAKE_ARGS (extra, e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake g++ make ninja-build ccache pkg-config   # ninja: starts a layer before the one below has linked
  libtorch-dev libopenblas-dev          # LibTorch; OpenBLAS: the reference BLAS is ~10x slower
  libopenmpi-dev openmpi-bin            # MPI runtime and mpirun
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev zlib1g-dev
  nlohmann-json3-dev                    # flight records and `braid doctor` read JSON
  googletest libgtest-dev
  dataset-fashion-mnist fortunes        # real data: images and text
  iproute2                              # ip and tc for launch/braid-slowlink
  python3                               # tests read metrics and traces as JSON
  procps                                # pkill: the interrupt test signals the ranks
  python3-matplotlib python3-munkres    # scripts/plot_runs.py (munkres: no scipy, 200 MB, for fonttools)
  python3-torch                         # tests check braid against PyTorch itself, in Python
)
missing=()
for p in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir=${BUILD_DIR:-build}
all=false
[ "${1:-}" = "--all" ] && all=true
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
    -DBRAID_CUDA_WITHOUT_GPU="$($all && echo ON || echo OFF)" ${CMAKE_ARGS:-}
elif $all && ! grep -q '^BRAID_CUDA_WITHOUT_GPU:BOOL=ON' "$build_dir/CMakeCache.txt"; then
  cmake -S . -B "$build_dir" -DBRAID_CUDA_WITHOUT_GPU=ON > /dev/null
fi
targets=()
$all || targets=(--target braid)
# Two jobs per 24 GB: a LibTorch translation unit takes about 1 GB to compile.
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}" "${targets[@]}"
