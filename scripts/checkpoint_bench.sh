#!/usr/bin/env bash
# Checkpoints on a real configuration, measured (docs/checkpoints.md, docs/benchmarks.md):
#
#   scripts/checkpoint_bench.sh resume CONFIG.yaml NP KILL_STEP "RESUME_NPS" [section.key=value ...]
#     trains CONFIG on NP ranks without interruption (the reference); trains it again and, once the
#     checkpoint of step KILL_STEP is complete, kills every rank with SIGKILL; resumes a copy of the
#     killed run with checkpoint.resume=auto on each rank count of RESUME_NPS; compares every
#     block's parameter file with the reference's, byte for byte. Runs have runtime.threads=1
#     (bit-identity needs equal thread counts) and checkpoint.every_steps=100 unless overridden.
#
#   scripts/checkpoint_bench.sh cost CONFIG.yaml NP PAIRS EVERY [section.key=value ...]
#     runs CONFIG on NP ranks PAIRS times each way, alternating (A B, B A, ...):
#     A checkpoint.every_steps=0 (a checkpoint only at the end), B checkpoint.every_steps=EVERY;
#     the throughput is each run's training samples/s from metrics.jsonl (mean over its epochs),
#     which includes the time spent saving. Prints every pair's B/A and the median, and the share of
#     its training time each B run's slowest-saving rank spent saving (rank_checkpoint_seconds).
#
# Work goes to runs/checkpoint_bench/<mode>-<time>.
set -euo pipefail
usage() {
  echo "usage: scripts/checkpoint_bench.sh resume CONFIG.yaml NP KILL_STEP \"RESUME_NPS\" [section.key=value ...]" >&2
  echo "       scripts/checkpoint_bench.sh cost CONFIG.yaml NP PAIRS EVERY [section.key=value ...]" >&2
  exit 2
}
[ $# -ge 5 ] || usage
mode=$1 config=$2 np=$3 a=$4 b=$5
shift 5
root=$(cd "$(dirname "$0")/.." && pwd)
train=${BLL_TRAIN:-$root/build/bll-train}
out=runs/checkpoint_bench/$mode-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
launch() {  # launch NP RUN_DIR [key=value ...]
  local n=$1 dir=$2
  shift 2
  BLL_TRAIN=$train "$root/launch/mpirun.sh" "$n" "$config" runtime.progress=off runtime.run_dir="$dir" "$@"
}
same_params() {  # same_params DIR_A DIR_B: every block file of A has a byte-identical twin in B
  local f
  for f in "$1"/block_*.pt; do cmp -s "$f" "$2/$(basename "$f")" || return 1; done
}

resume() {
  local kill_step=$1 resume_nps=$2
  shift 2
  local overrides=(runtime.threads=1 checkpoint.every_steps=100 "$@")
  echo "checkpoint_bench: reference run on $np ranks"
  local start=$SECONDS
  launch "$np" "$out/reference" "${overrides[@]}" >"$out/reference.log" 2>&1
  echo "checkpoint_bench: reference done in $((SECONDS - start)) s"
  launch "$np" "$out/killed" "${overrides[@]}" >"$out/killed.log" 2>&1 &
  local job=$! marker
  marker=$out/killed/checkpoints/$(printf 'step_%09d' "$kill_step")/MANIFEST
  until [ -e "$marker" ]; do
    kill -0 "$job" 2>/dev/null || { echo "checkpoint_bench: the run ended before step $kill_step" >&2; exit 1; }
    sleep 0.05
  done
  local pids
  pids=$(pgrep -f -- "^$train $config .*runtime.run_dir=$out/killed( |$)" || true)
  kill -KILL $pids
  wait "$job" || true
  echo "checkpoint_bench: killed every rank ($(echo $pids | wc -w) processes) once the checkpoint of step $kill_step was complete"
  local status=0 n from same
  for n in $resume_nps; do
    cp -r "$out/killed" "$out/resumed_$n"
    start=$SECONDS
    launch "$n" "$out/resumed_$n" "${overrides[@]}" checkpoint.resume=auto >"$out/resumed_$n.log" 2>&1
    from=$(sed -n 's/^bll-train: \(resuming from .*\)/\1/p' "$out/resumed_$n.log")
    same=yes
    same_params "$out/reference" "$out/resumed_$n" || same=NO status=1
    echo "checkpoint_bench: resumed on $n rank(s) in $((SECONDS - start)) s, $from; parameters bit-identical to the reference: $same"
  done
  return "$status"
}

cost() {
  local pairs=$1 every=$2
  shift 2
  throughput() {  # throughput NAME EVERY [key=value ...]: one run; prints its samples/s
    local name=$1 steps=$2
    shift 2
    launch "$np" "$out/$name" checkpoint.every_steps="$steps" "$@" >"$out/$name.log" 2>&1 ||
      { echo "checkpoint_bench: run $name failed (see $out/$name.log)" >&2; exit 1; }
    python3 -c "
import json
r = [json.loads(l) for l in open('$out/$name/metrics.jsonl')]
print('%.1f' % (sum(x['samples_per_sec'] for x in r) / len(r)))"
  }
  local ratios=() i ta tb ratio
  for i in $(seq "$pairs"); do
    if [ $((i % 2)) -eq 1 ]; then ta=$(throughput "a$i" 0 "$@"); tb=$(throughput "b$i" "$every" "$@")
    else tb=$(throughput "b$i" "$every" "$@"); ta=$(throughput "a$i" 0 "$@"); fi
    ratio=$(python3 -c "print('%.4f' % ($tb / $ta))")
    ratios+=("$ratio")
    share=$(python3 -c "
import json
r = [json.loads(l) for l in open('$out/b$i/metrics.jsonl')]
print('%.2f' % max(100 * sum(e['rank_checkpoint_seconds'][k] for e in r) / sum(e['rank_train_seconds'][k] for e in r)
                   for k in range(len(r[0]['rank_train_seconds']))))")
    echo "pair $i: only at the end $ta samples/s, every $every steps $tb samples/s, ratio $ratio;" \
      "saving took $share% of the training time of the rank that saved longest"
  done
  python3 -c "
import statistics
m = statistics.median(float(x) for x in '${ratios[*]}'.split())
print('median ratio (every $every steps / only at the end): %.4f, a cost of %.1f%% of training throughput' % (m, 100 * (1 - m)))"
}

case "$mode" in
  resume) resume "$a" "$b" "$@" ;;
  cost) cost "$a" "$b" "$@" ;;
  *) usage ;;
esac
