#!/usr/bin/env bash
# Starts bll-train on NP ranks of this machine with Open MPI:
#   launch/mpirun.sh NP CONFIG.yaml [section.key=value ...]
# Adds what Open MPI needs here: --allow-run-as-root when root, --oversubscribe when NP exceeds
# the cores. Binding is off: with more ranks than cores, pinned ranks would share one core.
# BLL_TRAIN overrides the binary (default: build/bll-train beside this script).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: launch/mpirun.sh NP CONFIG.yaml [section.key=value ...]" >&2
  exit 2
fi
np=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
train=${BLL_TRAIN:-$root/build/bll-train}
[ -x "$train" ] || { echo "launch/mpirun.sh: $train not found; build first (see README.md)" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "launch/mpirun.sh: mpirun not found; run scripts/install_deps.sh" >&2; exit 2; }

# Tell rank 0 whether our output is a terminal (for the progress bar): mpirun gives it a pty either way.
if [ -t 1 ]; then export BLL_STDOUT_TTY=1; else export BLL_STDOUT_TTY=0; fi
args=(-np "$np" --bind-to none -x BLL_STDOUT_TTY)
[ "$(id -u)" -eq 0 ] && args+=(--allow-run-as-root)
[ "$np" -gt "$(nproc)" ] && args+=(--oversubscribe)
exec mpirun "${args[@]}" "$train" "$@"
