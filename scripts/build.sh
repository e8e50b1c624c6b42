#!/usr/bin/env bash
# Configures and builds bll into build/ (Release). Extra arguments go to cmake's configure step;
# BLL_BUILD_TARGET names one target to build (default: everything, tests included).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# ccache needs a cache folder; without HOME (a bare CI environment) keep it in the build tree.
[ -n "${HOME:-}" ] || [ -n "${CCACHE_DIR:-}" ] || export CCACHE_DIR="$root/build/.ccache"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -Wno-dev "$@" >/dev/null
cmake --build "$root/build" -j "$(nproc)" --target "${BLL_BUILD_TARGET:-all}"
