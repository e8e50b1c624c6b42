#!/usr/bin/env bash
# Scaling benchmark over stages x replicas layouts and node counts, strong and weak, through
# SLURM where it is there and mpirun otherwise, with the performance model beside every run.
#   scripts/scaling.sh [CONFIG] [--layouts 1x1,2x1,4x1,1x2,2x2] [--nodes 1,2] [--methods bll,bp:gpipe:4]
#                      [--weak] [--samples N] [--threads T] [--launcher auto|slurm|mpirun] [--out DIR]
#                      [section.key=value ...]
# Writes DIR/scaling.csv, scaling.md and scaling.png (scripts/scaling.py has the details).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=python3
# matplotlib comes from Debian's python3-matplotlib; another python3 first on PATH may lack it.
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
exec "$python" "$root/scripts/scaling.py" "$@"
