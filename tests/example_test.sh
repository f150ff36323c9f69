#!/usr/bin/env bash
# Installs braid from BUILD_DIR into a temporary prefix, builds examples/ against it with
# find_package(braid), and runs the example under mpirun with 2 ranks.
set -euo pipefail
build=$(realpath "$1") src=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > /dev/null
cmake -S "$src/examples" -B "$work/examples" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER="$(command -v ccache || true)" > /dev/null
cmake --build "$work/examples" -j 2
mpirun --oversubscribe -np 2 "$work/examples/embed_fashion_mnist" 100
