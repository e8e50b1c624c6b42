#!/usr/bin/env bash
# Builds bll and its tests with AddressSanitizer and UndefinedBehaviorSanitizer in build-asan/
# and runs the unit and MPI tests there (scripts/test.sh runs it). Suppressions, each with its
# reason, only for what lies inside Open MPI and libtorch: tests/sanitizers/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build-asan" -DBLL_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLL_CUDA=OFF >/dev/null
cmake --build "$root/build-asan" -j"$(nproc)" --target test_config test_loss test_data test_model test_methods test_mpi
cd "$root/build-asan"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_odr_violation=0"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --output-on-failure --timeout 1800 -R '^(test_|mpi_)'
