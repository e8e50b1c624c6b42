#!/usr/bin/env bash
# Throughput of the main job's network, measured side by side in one invocation, as ratios.
#   scripts/bench.sh [EPOCH_SAMPLES]      (default 12000 training samples, 1 epoch each run)
# Each row is one bll-train run of configs/fmnist_cnn.yaml on data/fashion-mnist; samples/s is
# training samples over the slowest rank's training time (metrics.jsonl). Prints a Markdown table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${1:-12000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -x build/bll-train ] || { echo "bench.sh: build first (scripts/build.sh)" >&2; exit 2; }
scripts/get_data.sh fashion-mnist >/dev/null

run() {  # run NAME NP OVERRIDES... -> prints samples/s
  local name=$1 np=$2
  shift 2
  launch/mpirun.sh "$np" configs/fmnist_cnn.yaml train.epochs=1 data.train_limit="$n" data.test_limit=2000 \
    runtime.progress=off runtime.save_params=false runtime.run_dir="$out/$name" "$@" >"$out/$name.log" 2>&1 ||
    { echo "bench.sh: run $name failed:" >&2; cat "$out/$name.log" >&2; exit 4; }
  sed -E 's/.*"samples_per_sec":([0-9.]+).*/\1/' "$out/$name/metrics.jsonl"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo "| comparison | run | samples/s | ratio |"
echo "|---|---|---|---|"
base=$(run np1 1)
for np in 2 4; do
  v=$(run "np$np" "$np")
  echo "| ranks (4 blocks) | $np ranks vs 1 | $(printf %.0f "$v") vs $(printf %.0f "$base") | $(ratio "$v" "$base") |"
done
even=$(run np2_even 2)
uneven=$(run np2_1_3 2 'runtime.blocks_per_rank=[1,3]')
echo "| placement, 2 ranks | blocks [1,3] vs even [2,2] | $(printf %.0f "$uneven") vs $(printf %.0f "$even") | $(ratio "$uneven" "$even") |"
one=$(run np4_if1 4 train.in_flight=1)
for f in 2 4; do
  v=$(run "np4_if$f" 4 train.in_flight=$f)
  echo "| batches in flight, 4 ranks | $f vs 1 | $(printf %.0f "$v") vs $(printf %.0f "$one") | $(ratio "$v" "$one") |"
done
spin=$(run np4_spin 4 runtime.wait=spin)
sleep_=$(run np4_sleep 4 runtime.wait=sleep)
echo "| waiting for messages, 4 ranks | sleep vs spin | $(printf %.0f "$sleep_") vs $(printf %.0f "$spin") | $(ratio "$sleep_" "$spin") |"
plain=$(run np1_malloc_default 1 runtime.keep_freed_memory=false)
kept=$(run np1_malloc_kept 1 runtime.keep_freed_memory=true)
echo "| allocator, 1 rank | keep freed memory vs glibc default | $(printf %.0f "$kept") vs $(printf %.0f "$plain") | $(ratio "$kept" "$plain") |"
