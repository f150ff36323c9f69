#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains the Fashion-MNIST MLP for one epoch
# on 2 ranks under mpirun (about a minute on 2 cores once built). Extra arguments go to
# `braid train`, e.g. --set train.epochs=3.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
run_dir=runs/quickstart-$(date +%Y%m%d-%H%M%S)
root_flags=()
[ "$(id -u)" -ne 0 ] || root_flags=(--allow-run-as-root)
exec mpirun "${root_flags[@]}" -np "${NP:-2}" build/bin/braid train configs/fashion_mnist_mlp.yaml \
  --run-dir "$run_dir" "$@"
