#!/usr/bin/env bash
# Builds bll with CUDA into build-cuda/ against the CUDA-enabled libtorch of a Python's torch
# (pip wheels carry one) and the NCCL that torch itself loads (the nvidia-nccl wheel), so that the
# process holds one NCCL. Extra arguments go to cmake's configure step.
#
#   PYTHON=python3            the Python whose torch to build against
#   BLL_DEPS_PREFIX=DIR       a prefix holding what the machine lacks (OpenMPI, yaml-cpp, Catch2,
#                             nlohmann-json), for example Debian packages unpacked with
#                             `dpkg -x pkg.deb DIR`; OpenMPI is then relocated with OPAL_PREFIX
#   BLL_BUILD_DIR=DIR         build folder (default build-cuda)
#
# Source scripts/cuda_env.sh in the shell that runs the result (same variables).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=cuda_env.sh
source "$root/scripts/cuda_env.sh"
build=${BLL_BUILD_DIR:-$root/build-cuda}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -Wno-dev -DBLL_CUDA=ON \
      -DTorch_DIR="$BLL_TORCH_CMAKE/Torch" -DCMAKE_PREFIX_PATH="$BLL_TORCH_CMAKE${BLL_DEPS_PREFIX:+;$BLL_DEPS_PREFIX/usr}" \
      ${BLL_NCCL_ROOT:+-DNCCL_ROOT="$BLL_NCCL_ROOT"} \
      ${BLL_DEPS_PREFIX:+-DMPI_CXX_COMPILER="$BLL_DEPS_PREFIX/usr/bin/mpicxx"} "$@"
cmake --build "$build" -j "$(nproc)" --target "${BLL_BUILD_TARGET:-all}"
