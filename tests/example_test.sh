#!/usr/bin/env bash
# Installs braid from BUILD_DIR into a temporary prefix, configures examples/ against it with
# find_package(braid), builds embed_fashion_mnist and runs it under mpirun with 2 ranks. Then checks that the
# package exposes <braid/...> only: braid's internal rooted paths ("runtime/data.h") must not
# resolve for a user.
set -euo pipefail
build=$(realpath "$1") src=$(realpath "$2")
# Inside the build tree, at the same depth every time: with ccache's base_dir above it, the
# compiler's paths hash the same from run to run, so the example programs (a LibTorch
# translation unit each, ~1 GB and ~40 s to compile) come from the cache after the first run.
work=$(mktemp -d -p "$build" example-find-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > /dev/null
cmake -S "$src/examples" -B "$work/examples" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER="$(command -v ccache || true)" > /dev/null
# One program shows the package works; the ports are built (and run by example_ports) in
# braid's own build, and compiling all five LibTorch programs again here would cost minutes.
cmake --build "$work/examples" -j 2 --target embed_fashion_mnist
mpirun --oversubscribe -np 2 "$work/examples/embed_fashion_mnist" 100

# Installed headers include each other as <braid/...>, never by a rooted internal path.
if grep -rn '#include "\(common\|collectives\|optimizers\|runtime\)/' "$work/prefix/include"; then
  echo "FAIL: installed headers include internal rooted paths"; exit 1
fi
mkdir "$work/leak"
cat > "$work/leak/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(leak LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(braid REQUIRED)
add_library(leak OBJECT leak.cpp)
target_link_libraries(leak PRIVATE braid::braid)
CMAKE
printf '#include "runtime/data.h"\n' > "$work/leak/leak.cpp"
cmake -S "$work/leak" -B "$work/leak/build" -DCMAKE_PREFIX_PATH="$work/prefix" > /dev/null
if cmake --build "$work/leak/build" > "$work/leak/out" 2>&1; then
  echo 'FAIL: #include "runtime/data.h" compiles against the installed package'; exit 1
fi
grep -q 'runtime/data.h: No such file' "$work/leak/out" || { cat "$work/leak/out"; echo "FAIL: unexpected error"; exit 1; }
echo 'PASS: <braid/braid.h> builds the example; "runtime/data.h" does not resolve'
