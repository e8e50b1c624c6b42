#!/usr/bin/env bash
# Runs bll-train as a SLURM job and waits for it, with the arguments of launch/mpirun.sh:
#   launch/sbatch_wait.sh NP CONFIG.yaml [section.key=value ...]
# Submits launch/slurm.sbatch with sbatch --wait on NP tasks over $BLL_NODES nodes (default 1),
# $BLL_THREADS CPUs per task (default 1), prints the job's output and exits with its exit code.
# Extra sbatch options can come in $BLL_SBATCH_OPTIONS. scripts/scaling.py uses it as its
# launcher (BLL_LAUNCHER) where SLURM is there.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: launch/sbatch_wait.sh NP CONFIG.yaml [section.key=value ...]" >&2
  exit 2
fi
np=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
command -v sbatch >/dev/null || { echo "launch/sbatch_wait.sh: sbatch not found (no SLURM here; use launch/mpirun.sh)" >&2; exit 2; }
log=$(mktemp "${TMPDIR:-/tmp}/bll-sbatch.XXXXXX")
trap 'rm -f "$log"' EXIT
rc=0
# shellcheck disable=SC2086  # BLL_SBATCH_OPTIONS is a list of options
sbatch --wait --quiet -N "${BLL_NODES:-1}" -n "$np" --cpus-per-task="${BLL_THREADS:-1}" --output="$log" \
  --chdir="$root" ${BLL_SBATCH_OPTIONS:-} "$root/launch/slurm.sbatch" "$@" || rc=$?
cat "$log"
exit "$rc"
