#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of the collectives (threads as ranks and
# real MPI processes, also given mismatched counts, which must never write past a buffer), the
# communicator's and strategies' lifetimes, the compressors' decoders
# under fuzzing and the compressed exchange paths (two-phase, PowerSGD), in build-asan/. Run after scripts/setup.sh has installed the packages.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRAID_SANITIZE=address,undefined > /dev/null
cmake --build build-asan -j "${JOBS:-2}" --target collectives_test mpi_collectives_test communicator_test \
  mpi_faults_test shm_allreduce_test lifecycle_test compression_test sparse_select_test bucket_exchange_test powersgd_test
# LibTorch and OpenMPI are not instrumented and keep memory until exit: report errors, not leaks.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build-asan/bin/collectives_test --gtest_brief=1
build-asan/bin/shm_allreduce_test --gtest_brief=1
build-asan/bin/communicator_test --gtest_brief=1
build-asan/bin/lifecycle_test --gtest_brief=1
build-asan/bin/compression_test --gtest_brief=1
build-asan/bin/sparse_select_test --gtest_brief=1
build-asan/bin/bucket_exchange_test --gtest_brief=1
build-asan/bin/powersgd_test --gtest_brief=1
mpirun --oversubscribe -np 3 build-asan/bin/mpi_collectives_test --gtest_brief=1
mpirun --oversubscribe -np 3 build-asan/bin/mpi_faults_test --gtest_brief=1
echo "sanitize: collectives, lifetimes and compression decoders clean under ASan+UBSan"
