#!/usr/bin/env bash
# gpu_check.sh: the one script a machine with a GPU runs to verify the CUDA path (the GPU path's check).
# Configures build-gpu/ with -DBRAID_CUDA=ON and CMAKE_CUDA_ARCHITECTURES=native, builds only
# what the check needs, runs the gpu-labelled tests and `braid bench allreduce --device cuda`,
# and prints a compact summary. Works with a CPU-only LibTorch too (the training test then
# reports itself skipped). Budget: about 8 minutes on 16 cores.
# Environment: BUILD_DIR (default build-gpu), JOBS (default nproc), CMAKE_ARGS (extra).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-gpu}
jobs=${JOBS:-$(nproc)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TERM=dumb
summary=()
note() { summary+=("$1"); echo "== $1"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -4
# shellcheck disable=SC2086
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBRAID_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=native ${CMAKE_ARGS:-} > "$build.configure.log" 2>&1; then
  tail -30 "$build.configure.log"; echo "gpu_check: configure failed"; exit 1
fi
grep "braid: CUDA path" "$build.configure.log"
start=$SECONDS
if ! cmake --build "$build" -j "$jobs" --target braid gpu_collectives_test gpu_training_test gpu_compression_test \
     runtime_test > "$build.build.log" 2>&1; then
  grep -m 20 -B2 -A8 "error" "$build.build.log"; echo "gpu_check: build failed"; exit 1
fi
note "build: $((SECONDS - start)) s"

start=$SECONDS
(cd "$build" && timeout 300 ctest -L gpu --output-on-failure) > "$build.ctest.log" 2>&1
rc=$?
cat "$build.ctest.log" | grep -E "Test +#|tests passed|SKIPPED|FAILED|failures|passed" | head -40
note "ctest -L gpu: exit $rc in $((SECONDS - start)) s ($(grep -c 'Passed' "$build.ctest.log") passed, $(grep -c 'Not Run\|Skipped' "$build.ctest.log") skipped)"
timeout 60 "$build/bin/runtime_test" --gtest_brief=1 \
  --gtest_filter='DeviceChoice*:BufferDevice*:DeviceOps*:DeviceCompression*' > "$build.cpu.log" 2>&1
note "device unit tests: $(grep -E 'PASSED|FAILED' "$build.cpu.log" | head -3 | tr '\n' ' ')"

gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
for np in 1 "$gpus"; do
  [ "$np" -ge 1 ] || continue
  echo "-- braid bench allreduce --device cuda, $np rank(s)"
  if timeout 180 mpirun --allow-run-as-root --oversubscribe -np "$np" "$build/bin/braid" bench \
       allreduce --device cuda --algorithm all --min-bytes 1K --max-bytes 256M --factor 8 \
       --iters 5 --warmup 2 --check 2>&1 | tee "$build.bench_np$np.log" | tail -25; then
    note "bench --device cuda np$np: ok"
  else
    note "bench --device cuda np$np: FAILED (see $build.bench_np$np.log)"
  fi
  [ "$gpus" -gt 1 ] || break
done

echo; echo "== summary"; printf '%s\n' "${summary[@]}"
