#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit, MPI with 2 and 4 ranks,
# command line, SLURM), then the parsers' fuzz targets for 20 s each and every input that once
# crashed them (scripts/fuzz.sh), then the unit and MPI tests again, built with AddressSanitizer
# and UndefinedBehaviorSanitizer (scripts/sanitize.sh). Needs no data set: the tests make their own.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure --timeout 1200
"$root/scripts/fuzz.sh" 20
"$root/scripts/sanitize.sh"
