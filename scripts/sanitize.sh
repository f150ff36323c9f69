#!/usr/bin/env bash
# Two sanitizer builds. Run after scripts/setup.sh has installed the packages.
#  - AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/: the collectives (threads as
#    ranks and real MPI processes, also given mismatched counts, which must never write past a
#    buffer), the communicator's and strategies' lifetimes, the compressors' decoders under
#    fuzzing, the compressed exchange paths (two-phase, PowerSGD) and the robust aggregation
#    exchange (chunks, statistics, owners' aggregates, attacks).
#  - ThreadSanitizer, in build-tsan/: the collectives, shared-memory allreduce and communicator
#    tests with threads as ranks over the in-process transport, so that every rank's
#    communication thread and the shared-memory flag protocol (release/acquire epochs and
#    progress counters, collectives/shared_memory.*) run in one process TSan can watch. The MPI
#    tests are left out: TSan sees one process, not what ranks in other processes do to an MPI
#    shared window, and OpenMPI's own threads synchronise in uninstrumented code.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# -O1 -g1: what the sanitizers' own documentation recommends (reports with line numbers), and
# each LibTorch translation unit compiles in about 60% of the time -O2 -g takes.
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")
# A new build directory uses Ninja, as scripts/setup.sh does; one made earlier keeps its generator.
generator() { [ -f "$1/CMakeCache.txt" ] || echo "-GNinja"; }
cmake -S . -B build-asan $(generator build-asan) "${flags[@]}" -DBRAID_SANITIZE=address,undefined > /dev/null
cmake --build build-asan -j "${JOBS:-2}" --target collectives_test mpi_collectives_test communicator_test \
  mpi_faults_test shm_allreduce_test lifecycle_test compression_test sparse_select_test bucket_exchange_test powersgd_test \
  robust_aggregation_test sequential_code_test sequential_coding_test
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
build-asan/bin/robust_aggregation_test --gtest_brief=1
build-asan/bin/sequential_code_test --gtest_brief=1
build-asan/bin/sequential_coding_test --gtest_brief=1
mpirun --oversubscribe -np 3 build-asan/bin/mpi_collectives_test --gtest_brief=1
mpirun --oversubscribe -np 3 build-asan/bin/mpi_faults_test --gtest_brief=1
echo "sanitize: collectives, lifetimes and compression decoders clean under ASan+UBSan"

cmake -S . -B build-tsan $(generator build-tsan) "${flags[@]}" -DBRAID_SANITIZE=thread > /dev/null
cmake --build build-tsan -j "${JOBS:-2}" --target collectives_test shm_allreduce_test communicator_test
# LibTorch, OpenMPI and libstdc++ are not instrumented, so TSan misses their synchronisation: one
# OpenMP thread keeps any LibTorch op on the thread that calls it (libgomp's pool is invisible to
# TSan), and scripts/tsan.supp hides the reports that remain, each with why it is a false positive.
export OMP_NUM_THREADS=1
export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp halt_on_error=1 second_deadlock_stack=1"
# The 4M-element cases take most of the time under TSan and exercise no other synchronisation
# than the smaller grid (every algorithm, 1..16 ranks, sizes around the chunk boundaries); ASan
# runs them above.
build-tsan/bin/collectives_test --gtest_brief=1 --gtest_filter=-AllAlgorithms/AllreduceLarge.*
build-tsan/bin/shm_allreduce_test --gtest_brief=1
build-tsan/bin/communicator_test --gtest_brief=1
echo "sanitize: threads-as-ranks collectives, shared-memory allreduce and communicator clean under TSan"
