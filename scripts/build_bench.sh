#!/usr/bin/env bash
# This build against an earlier one, side by side in one invocation: the same configuration in
# one process, runs alternating between the two builds.
#   scripts/build_bench.sh REF [PAIRS] [CONFIG] [section.key=value ...]
#     REF     a git commit (say the build before an issue); its bll-train is built once in
#             build-ref/<commit> (a git worktree beside it, ccache shared with build/)
#     PAIRS   runs of each build (default 3); the order inside a pair alternates (AB, BA, ...)
#     CONFIG  default configs/fmnist_cnn.yaml, every epoch of it (the main job in one process)
# Each run uses runtime.threads=2 unless the overrides say otherwise. BLL_NP=K runs each build on
# K ranks (launch/mpirun.sh) instead of one process, with runtime.threads=0 (the cores shared). Prints a Markdown table:
# per pair samples/s of each build (training samples over training seconds, all epochs) and
# their ratio, the final test top-1 of each, then the median and range of the ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 1 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
ref=$(git rev-parse --short "$1^{commit}") || { echo "build_bench.sh: unknown commit '$1'" >&2; exit 2; }
shift
pairs=3
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then pairs=$1; shift; fi
config=configs/fmnist_cnn.yaml
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then config=$1; shift; fi
[ -f "$config" ] || { echo "build_bench.sh: no config file $config" >&2; exit 2; }
[ -x build/bll-train ] || { echo "build_bench.sh: build first (scripts/build.sh)" >&2; exit 2; }

old=build-ref/$ref
if [ ! -x "$old/build/bll-train" ]; then
  echo "build_bench.sh: building bll-train of $ref in $old" >&2
  mkdir -p build-ref
  [ -d "$old/src" ] || git worktree add --detach "$old" "$ref" >&2
  cmake -S "$old" -B "$old/build" -DCMAKE_BUILD_TYPE=Release -DBLL_BUILD_TESTS=OFF >"$old.cmake.log" 2>&1 ||
    { cat "$old.cmake.log" >&2; exit 3; }
  cmake --build "$old/build" --target bll-train -j "$(nproc)" >"$old.build.log" 2>&1 ||
    { tail -30 "$old.build.log" >&2; exit 3; }
fi
scripts/get_data.sh "$(sed -nE 's/^ *dataset: *([a-z0-9-]+).*/\1/p' "$config" | head -1)" >/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
once() {  # once NAME BINARY -> "samples/s test_top1"
  local name=$1 bin=$2
  local launch=("$bin") threads=2
  if [ "${BLL_NP:-1}" != 1 ]; then launch=(env BLL_TRAIN="$bin" launch/mpirun.sh "$BLL_NP" ); threads=0; fi
  "${launch[@]}" "$config" runtime.threads=$threads runtime.progress=off runtime.save_params=false runtime.run_dir="$out/$name" \
    "${overrides[@]}" >"$out/$name.log" 2>&1 || { echo "build_bench.sh: run $name failed:" >&2; cat "$out/$name.log" >&2; exit 4; }
  python3 - "$out/$name/metrics.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"samples_per_sec"' in l]
# every epoch trains the same samples: overall samples/s is the harmonic mean of the epochs'
print(f"{len(rows) / sum(1 / r['samples_per_sec'] for r in rows):.0f} {rows[-1]['test_top1']:.2f}")
EOF
}
overrides=("$@")
set --
echo "| pair | this build ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include || echo '+changes')): samples/s, test top-1 | $ref: samples/s, test top-1 | ratio |"
echo "|---|---|---|---|"
ratios=()
for i in $(seq "$pairs"); do
  if ((i % 2)); then a=$(once new$i build/bll-train); b=$(once old$i "$old/build/bll-train")
  else b=$(once old$i "$old/build/bll-train"); a=$(once new$i build/bll-train); fi
  read -r sa ta <<<"$a"
  read -r sb tb <<<"$b"
  r=$(awk -v x="$sa" -v y="$sb" 'BEGIN { printf "%.2f", x / y }')
  ratios+=("$r")
  echo "| $i | $sa, $ta% | $sb, $tb% | ${r}x |"
done
printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "\nratio of pairs: median %.2fx (min %.2fx, max %.2fx) over %d pairs\n", v[int((NR + 1) / 2)], v[1], v[NR], NR }'
