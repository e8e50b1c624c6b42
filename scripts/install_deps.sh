#!/usr/bin/env bash
# Installs the Debian packages bll needs to build, test and run. Idempotent: does nothing when
# everything is already there. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libyaml-cpp-dev catch2 nlohmann-json3-dev zlib1g-dev libjpeg-dev libpng-dev
  ca-certificates curl
  python3 python3-matplotlib
  clang libclang-rt-14-dev
  strace
)
# Wanted by one test alone (tests/torchvision_test.py, which skips without it): where the
# distribution lacks the package (the CUDA image's Ubuntu may), the rest still installs.
OPTIONAL=(python3-torchvision)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() optional=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${OPTIONAL[@]}"; do installed "$p" || optional+=("$p"); done

if [ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then
  echo "install_deps: all $((${#PACKAGES[@]} + ${#OPTIONAL[@]})) packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install_deps: installing ${missing[*]} ${optional[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
[ ${#missing[@]} -eq 0 ] || $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
for p in "${optional[@]}"; do
  $SUDO apt-get install -y -qq --no-install-recommends "$p" ||
    echo "install_deps: $p cannot be installed here; the test that needs it will skip" >&2
done
echo "install_deps: done"
