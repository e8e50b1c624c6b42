#!/usr/bin/env bash
# The image loaders side by side, in one invocation, on one generated folder: bll's folder loader
# (data.dataset folder: decoding, a random resized crop and a flip per image) at each worker
# count, torchvision's ImageFolder + DataLoader with as many worker processes (the same work:
# PIL decoding, RandomResizedCrop, RandomHorizontalFlip, ToTensor; scripts/torchvision_bench.py),
# and bll's packed loader (bll-pack's shards: the same crops without decoding). Each line is
# JSON: images/s over one epoch of training batches and the peak RSS.
# Usage: scripts/loader_bench.sh [IMAGES (20000)] [SIDE (256)] [WORK_DIR (a temporary folder)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
images=${1:-20000} side=${2:-256}
work=${3:-$(mktemp -d)}
build=${BLL_BUILD:-$root/build}
[ -x "$build/bll-data-bench" ] || { echo "loader_bench: build first (scripts/build.sh)" >&2; exit 1; }
if [ ! -d "$work/images/train" ]; then
  echo "loader_bench: writing $images JPEGs of ${side}x$side into $work/images" >&2
  "$build/tests/make_fixture" "$work/images" "$images" 256 --folder --side "$side" --jpeg
fi
[ -f "$work/packed/MANIFEST" ] || "$build/bll-pack" "$work/images" "$work/packed" --side 72 --workers 2 >&2
cat >"$work/bench.yaml" <<YAML
data: {dataset: folder, dir: $work/images, hflip: true, normalize: false}
model: {type: cnn, widths: [8], blocks: 1}
train: {epochs: 1, batch_size: 64}
runtime: {threads: 1}
YAML
python=${BLL_PYTHON:-/usr/bin/python3}  # Debian's, with python3-torchvision
for size in 224 64; do
  for workers in 1 2; do
    "$build/bll-data-bench" "$work/bench.yaml" data.image_size=$size data.workers=$workers
    "$python" "$root/scripts/torchvision_bench.py" "$work/images" $size $workers 64
  done
done
for workers in 1 2; do
  "$build/bll-data-bench" "$work/bench.yaml" data.dataset=packed data.dir="$work/packed" data.image_size=64 data.workers=$workers
done
