#!/usr/bin/env bash
# The tests: installs what is missing, builds, and runs every CTest test (unit tests with
# threads as ranks, multi-rank tests under mpirun, end-to-end training, the slow-link emulator,
# the installed-package example). Extra arguments go to ctest, e.g. -R mpi or -L unit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --all
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "${JOBS:-2}" "$@"
