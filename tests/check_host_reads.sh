#!/usr/bin/env bash
# Refuses a raw read back to the host in src/: `.item(`, `.item<`, `.cpu()` or `to(torch::kCPU`.
# On the training path every read goes through src/device/host_reads.cpp, which counts it
# (bll/host_reads.h; tests/test_mpi_steps.cpp asserts that no step reads between log points).
# Only the files below may read directly: start-up and loading, never a training step.
#   tests/check_host_reads.sh [SRC_DIR]
set -euo pipefail
src=${1:-$(cd "$(dirname "$0")/../src" && pwd)}
allowed=(
  device/host_reads.cpp     # the one counted function
  data/dataset.cpp          # start-up: checks the labels of a data set as it is read
  checkpoint/resume.cpp     # checkpoint loading, before training
  checkpoint/export.cpp     # bll-ckpt export: files, not training
  tools/                    # the command-line tools around training
)
pattern='\.item *[<(]|\.cpu\(\)|to\((torch|at)::kCPU'
found=$(cd "$src" && grep -rnE "$pattern" --include='*.cpp' --include='*.h' . | sed 's|^\./||' || true)
for a in "${allowed[@]}"; do
  found=$(printf '%s\n' "$found" | grep -v "^$a" || true)
done
if [ -n "$found" ]; then
  echo "check_host_reads: a read back to the host outside bll::read_to_host / read_scalar (bll/host_reads.h):"
  printf '%s\n' "$found" | sed 's/^/  /'
  echo "check_host_reads: use read_scalar() or read_to_host(), which count, or host_control_value() for a host-made control tensor"
  exit 1
fi
echo "check_host_reads: no raw host read in $src outside the ${#allowed[@]} allowed places"
