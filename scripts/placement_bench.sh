#!/usr/bin/env bash
# Samples per second of each placement of a config's blocks on NP ranks, rounds interleaved so
# that the machine's drift hits every placement alike; prints each run and the medians.
#   scripts/placement_bench.sh NP CONFIG ROUNDS PLACEMENT... [-- key=value ...]
#   scripts/placement_bench.sh 2 configs/fmnist_cnn.yaml 3 '[1,3]' '[2,2]' '[3,1]' auto -- train.epochs=1 data.train_limit=12000 runtime.threads=1
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
np=$1 config=$2 rounds=$3; shift 3
placements=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do placements+=("$1"); shift; done
[ $# -gt 0 ] && shift
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for round in $(seq "$rounds"); do
  for p in "${placements[@]}"; do
    dir="$work/run"; rm -rf "$dir"
    "$root/launch/mpirun.sh" "$np" "$config" "runtime.blocks_per_rank=$p" "runtime.run_dir=$dir" runtime.progress=off \
      runtime.save_params=false "$@" >"$work/out"
    sps=$(/usr/bin/python3 -c "import json;print(json.loads(open('$dir/metrics.jsonl').readlines()[-1])['samples_per_sec'])")
    chose=$(sed -n 's/^ *placed \(\[[0-9,]*\]\).*/ (chose \1)/p' "$work/out")
    echo "round $round  $p$chose  $sps samples/s"; echo "$p $sps" >>"$work/all"
  done
done
echo "median samples/s:"
/usr/bin/python3 - "$work/all" <<'PY'
import statistics, sys, collections
runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    p, v = line.split()
    runs.setdefault(p, []).append(float(v))
for p, v in runs.items():
    print(f"  {p:8s} {statistics.median(v):8.1f}   ({', '.join(f'{x:.0f}' for x in v)})")
PY
