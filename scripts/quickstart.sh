#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds, gets Fashion-MNIST, and
# trains the 4-block CNN with block-local learning on 4 MPI ranks (configs/fmnist_cnn.yaml).
# Extra arguments are config overrides, e.g. scripts/quickstart.sh train.epochs=1
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install_deps.sh
BLL_BUILD_TARGET=bll-train scripts/build.sh
scripts/get_data.sh fashion-mnist
launch/mpirun.sh 4 configs/fmnist_cnn.yaml "$@"
