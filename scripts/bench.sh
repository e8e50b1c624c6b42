#!/usr/bin/env bash
# Throughput of the main job's network, measured side by side in one invocation, as ratios.
#   scripts/bench.sh [EPOCH_SAMPLES] [REPEATS] [all|engine]
#     defaults: 12000 training samples, 3 repeats, all rows; engine: only the rows of one
#     process (BLAS threads, memory format, allocator)
# Each figure is the median over REPEATS runs of configs/fmnist_cnn.yaml (1 epoch) on
# data/fashion-mnist; samples/s is training samples over the slowest rank's training time
# (metrics.jsonl). The spread (min-max) is printed too: shared machines are noisy. Prints a
# Markdown table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${1:-12000}
repeats=${2:-3}
rows=${3:-all}
[[ $rows == all || $rows == engine ]] || { echo "bench.sh: the third argument is all or engine, not '$rows'" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -x build/bll-train ] || { echo "bench.sh: build first (scripts/build.sh)" >&2; exit 2; }
scripts/get_data.sh fashion-mnist >/dev/null

once() {  # once NAME NP OVERRIDES... -> samples/s of one run
  local name=$1 np=$2
  shift 2
  launch/mpirun.sh "$np" configs/fmnist_cnn.yaml train.epochs=1 data.train_limit="$n" data.test_limit=2000 \
    runtime.progress=off runtime.save_params=false runtime.run_dir="$out/$name" runtime.overwrite=true "$@" >"$out/$name.log" 2>&1 ||
    { echo "bench.sh: run $name failed:" >&2; cat "$out/$name.log" >&2; exit 4; }
  sed -E 's/.*"samples_per_sec":([0-9.]+).*/\1/' "$out/$name/metrics.jsonl"
}
run() {  # run NAME NP OVERRIDES... -> "median min max" over the repeats
  local i
  for i in $(seq "$repeats"); do once "$@"; done | sort -g | awk '{ v[NR] = $1 } END { printf "%s %s %s\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
cell() { awk -v m="$1" -v lo="$2" -v hi="$3" 'BEGIN { printf "%.0f (%.0f-%.0f)", m, lo, hi }'; }
row() {  # row COMPARISON RUN "A" "B": A and B are "median min max"
  local a=($3) b=($4)
  echo "| $1 | $2 | $(cell "${a[@]}") vs $(cell "${b[@]}") | $(awk -v x="${a[0]}" -v y="${b[0]}" 'BEGIN { printf "%.2fx", x / y }') |"
}

echo "| comparison | run | samples/s: median (min-max) of $repeats | ratio of medians |"
echo "|---|---|---|---|"
np1=$(run np1 1)
row "BLAS threads, 1 rank" "1 (default) vs OpenBLAS's own pool" "$np1" "$(run np1_blas 1 runtime.blas_threads=0)"
row "memory format, 1 rank" "channels-last (default) vs contiguous" "$np1" "$(run np1_nchw 1 runtime.memory_format=contiguous)"
row "allocator, 1 rank" "keep freed memory (default) vs glibc default" "$np1" "$(run np1_malloc 1 runtime.keep_freed_memory=false)"
[ "$rows" = engine ] && exit 0
np2=$(run np2 2)
np4=$(run np4 4)
row "ranks (4 blocks)" "2 ranks vs 1" "$np2" "$np1"
row "ranks (4 blocks)" "4 ranks vs 1" "$np4" "$np1"
row "placement, 2 ranks" "blocks [1,3] vs even [2,2]" "$(run np2_1_3 2 'runtime.blocks_per_rank=[1,3]')" "$np2"
if1=$(run np4_if1 4 train.in_flight=1)
row "batches in flight, 4 ranks" "2 (default) vs 1" "$np4" "$if1"
row "batches in flight, 4 ranks" "4 vs 1" "$(run np4_if4 4 train.in_flight=4)" "$if1"
row "waiting for messages, 4 ranks" "sleep (default) vs spin" "$np4" "$(run np4_spin 4 runtime.wait=spin)"
