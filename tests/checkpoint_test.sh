#!/usr/bin/env bash
# Checkpoints from the command line, with real signals:
#  - a 4-rank job killed with SIGKILL (every rank) in epoch 2 resumes on 4, 2 and 1 ranks and
#    ends with parameters bit-identical to the uninterrupted job's, the log naming the step;
#  - on generated images (a folder, and its packed shards) a 4-rank run learns, and killed with
#    SIGKILL resumes bit-identically;
#  - a torn checkpoint (no manifest) and a corrupt one (a flipped byte) are named and skipped;
#  - checkpoints/ is fsynced after each new checkpoint and each pruning (strace);
#  - a resume with a runtime key that changes what is computed is refused, the key named;
#  - SIGUSR1 to mpirun (SLURM's --signal) and SIGTERM to every rank (a time limit) stop the job
#    at one agreed batch with exit code 75 and a checkpoint to go on from; so does SIGUSR1 to a
#    job of 2 stages x 2 replicas, which resumes bit-identical too;
#  - an unwritable checkpoint folder ends the job with one line and leaves the previous
#    checkpoint loadable; a file-size limit (as a full disk) ends it with one line;
#  - bll-ckpt inspect, verify, export, and bll-eval of the export.
# Usage: checkpoint_test.sh BLL_TRAIN MAKE_FIXTURE MPIEXEC BLL_CKPT BLL_EVAL
set -u
train=$1 fixture=$2 mpiexec=$3 ckpt=$4 evaluate=$5
work=$(mktemp -d)
trap 'pkill -KILL -f -- "$train $work/" 2>/dev/null; rm -rf "$work"' EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$work/err" ] && sed 's/^/     /' "$work/err" | tail -20; }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

"$fixture" "$work/data" 2048 128
cat >"$work/ok.yaml" <<YAML
data: {dataset: fashion-mnist, dir: $work/data}
model: {type: cnn, widths: [8, 8, 8], head_hidden: 16, blocks: 4}
train: {epochs: 3, batch_size: 8}
runtime: {threads: 1, progress: "off", timeout_s: 60}
checkpoint: {every_steps: 50, keep: 2}
YAML
# 256 batches an epoch: steps 257 .. 512 are epoch 2.

# run NP RUN_DIR [key=value ...] (foreground): stdout $work/out, stderr $work/err, exit code $rc.
run() {
  local np=$1 dir=$2
  shift 2
  "$mpiexec" -np "$np" "$train" "$work/ok.yaml" runtime.run_dir="$dir" "$@" >"$work/out" 2>"$work/err"
  rc=$?
}
# start NP RUN_DIR [key=value ...]: the same in the background ($job); wait_for FILE: until it exists.
start() {
  local np=$1 dir=$2
  shift 2
  "$mpiexec" -np "$np" "$train" "$work/ok.yaml" runtime.run_dir="$dir" "$@" >"$work/out" 2>"$work/err" &
  job=$!
}
wait_for() {
  for _ in $(seq 1200); do [ -e "$1" ] && return 0; sleep 0.05; done
  return 1
}
ranks_of() { pgrep -f -- "^$train $work/ok.yaml runtime.run_dir=$1( |$)"; }
same_params() {  # same_params DIR_A DIR_B: every block's parameter file is byte-identical
  local b
  for b in 0 1 2 3; do cmp -s "$1/block_$b.pt" "$2/block_$b.pt" || return 1; done
}

run 4 "$work/ref"
check "the uninterrupted 4-rank run" [ "$rc" -eq 0 ]

# SIGKILL, every rank, once a checkpoint of epoch 2 is complete.
start 4 "$work/cut"
wait_for "$work/cut/checkpoints/step_000000300/MANIFEST"
kill -KILL $(ranks_of "$work/cut") 2>/dev/null
wait "$job"
check "SIGKILL in epoch 2 leaves the run unfinished" [ ! -e "$work/cut/block_0.pt" ]
cp -r "$work/cut" "$work/cut2"
cp -r "$work/cut" "$work/cut1"
for np in 4 2 1; do
  dir=$work/cut; [ "$np" -lt 4 ] && dir=$work/cut$np
  run "$np" "$dir" checkpoint.resume=auto
  step=$(sed -n 's/^bll-train: resuming from .*step_0*\([0-9]*\) at step \([0-9]*\) .*/\2/p' "$work/out")
  if [ "$rc" -eq 0 ] && [ "${step:-0}" -ge 300 ] && same_params "$work/ref" "$dir"; then
    pass "killed on 4 ranks, resumed on $np from step $step: parameters bit-identical"
  else
    fail "resume on $np ranks: exit $rc, step '${step:-}'"; grep -v "rank [0-9]:" "$work/out" | sed 's/^/     /'
  fi
done

# Images: a generated 10-class folder and its packed shards. A 4-rank BLL run learns, and a run
# killed with SIGKILL in epoch 2 resumes from its checkpoint bit-identically (240 steps).
"$fixture" "$work/images" 640 200 --folder >/dev/null
"$(dirname "$train")/bll-pack" "$work/images" "$work/packed" --side 36 >/dev/null 2>&1
for ds in folder packed; do
  src=$work/images; [ "$ds" = packed ] && src=$work/packed
  keys=(data.dataset=$ds data.dir="$src" data.image_size=32 data.hflip=true data.workers=2 checkpoint.every_steps=20)
  run 4 "$work/$ds-ref" "${keys[@]}"
  top1=$(tail -1 "$work/$ds-ref/metrics.jsonl" 2>/dev/null | sed -n 's/.*"test_top1":\([0-9.]*\).*/\1/p')
  check "a 4-rank BLL run on the $ds images learns: test top-1 ${top1:-?}% (10 classes)" \
    python3 -c "import sys; sys.exit(not ($rc == 0 and float('${top1:-0}') >= 40))"
  last=$(ls -d "$work/$ds-ref"/checkpoints/step_* 2>/dev/null | tail -1)
  check "the $ds run and its checkpoints keep the image statistics it normalized with" \
    bash -c "grep -q '\"mean\":\[' '$work/$ds-ref/normalization.json' && cmp -s '$work/$ds-ref/normalization.json' '$last/normalization.json' &&
             grep -q '^file normalization.json ' '$last/MANIFEST'"
  "$ckpt" export "$work/$ds-ref" "$work/$ds.safetensors" >/dev/null 2>&1
  "$evaluate" "$work/ok.yaml" "$work/$ds.safetensors" "${keys[@]}" >"$work/eval" 2>&1
  want=$(python3 -c "print('%.2f' % float('${top1:-0}'))")
  check "bll-eval of the $ds export normalizes with the saved statistics: the run's top-1 ($want%)" \
    grep -q "top-1 $want%" "$work/eval"
  start 4 "$work/$ds-cut" "${keys[@]}"
  wait_for "$work/$ds-cut/checkpoints/step_000000100/MANIFEST"
  kill -KILL $(ranks_of "$work/$ds-cut") 2>/dev/null
  wait "$job"
  check "SIGKILL in epoch 2 leaves the $ds run unfinished" [ ! -e "$work/$ds-cut/block_0.pt" ]
  run 4 "$work/$ds-cut" "${keys[@]}" checkpoint.resume=auto
  step=$(sed -n 's/^bll-train: resuming from .* at step \([0-9]*\) .*/\1/p' "$work/out")
  same=0
  [ "$rc" -eq 0 ] && [ "${step:-0}" -ge 100 ] && same_params "$work/$ds-ref" "$work/$ds-cut" && same=1
  check "the $ds run killed on 4 ranks resumed from step ${step:-?}: parameters bit-identical" [ "$same" = 1 ]
done

# A torn checkpoint (files, no manifest) and a corrupt one (one byte flipped) are skipped, named.
start 2 "$work/torn"
wait_for "$work/torn/checkpoints/step_000000100/MANIFEST"
kill -KILL $(ranks_of "$work/torn") 2>/dev/null
wait "$job"
newest=$(ls -d "$work"/torn/checkpoints/step_* | tail -1)
cp -r "$newest" "$work/torn/checkpoints/step_000000998"
rm "$work/torn/checkpoints/step_000000998/MANIFEST"
cp -r "$newest" "$work/torn/checkpoints/step_000000997"
python3 -c "
p = '$work/torn/checkpoints/step_000000997/span_002.pt'
b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 1; open(p, 'wb').write(b)"
"$ckpt" verify "$work/torn" >"$work/verify" 2>&1
check "bll-ckpt verify names the torn and the corrupt checkpoint" bash -c \
  "grep -q 'BAD .*step_000000998: no MANIFEST' '$work/verify' && grep -q 'BAD .*step_000000997: span_002.pt: CRC mismatch' '$work/verify'"
run 2 "$work/torn" checkpoint.resume=auto
check "resume skips the torn checkpoint, named" grep -q "skipping checkpoint .*step_000000998: no MANIFEST (cut off while being written)" "$work/out"
check "resume skips the corrupt checkpoint, named" grep -q "skipping checkpoint .*step_000000997: span_002.pt: CRC mismatch" "$work/out"
check "and goes on from the newest good one to the same parameters" same_params "$work/ref" "$work/torn"

# Durable folders: checkpoints/ itself is fsynced after each new step_* folder and after each
# pruning (3 checkpoints kept 1 at a time: 3 + 2 syncs at least), seen in the system calls.
if strace -f -o /dev/null true 2>/dev/null; then
  strace -f -e trace=openat,fsync -o "$work/strace" "$train" "$work/ok.yaml" runtime.run_dir="$work/synced" \
    train.epochs=1 checkpoint.every_steps=100 checkpoint.keep=1 >/dev/null 2>"$work/err"
  syncs=$(python3 - "$work/strace" <<'PY'
import re, sys
opened, n = {}, 0  # pid -> the fd of checkpoints/ opened as a folder (O_RDONLY|O_DIRECTORY: sync_folder)
for line in open(sys.argv[1]):
    m = re.match(r'(\d+)\s+openat\(AT_FDCWD, ".*/checkpoints", O_RDONLY\|O_DIRECTORY\) = (\d+)', line)
    if m:
        opened[m.group(1)] = m.group(2)
        continue
    m = re.match(r'(\d+)\s+fsync\((\d+)\)', line)
    if m and opened.get(m.group(1)) == m.group(2):
        n += 1
        del opened[m.group(1)]
print(n)
PY
)
  check "checkpoints/ is fsynced after every new checkpoint and every pruning ($syncs syncs)" [ "${syncs:-0}" -ge 5 ]
else
  echo "skip the fsync of checkpoints/: strace cannot trace a process here"
fi

# A runtime key that changes what is computed must match the checkpoint's; auto skips it, naming the key.
run 1 "$work/ref" checkpoint.resume=auto runtime.precision=bf16
check "resume=auto skips a checkpoint of another runtime.precision, named" \
  grep -q "skipping checkpoint .*: trained with another configuration (key 'runtime.precision': \"fp32\" vs \"bf16\", saved vs now)" "$work/out"
last=$(ls -d "$work"/ref/checkpoints/step_* | tail -1)
run 1 "$work/other" checkpoint.resume="$last" runtime.deterministic=true
check "an explicit resume with another runtime.deterministic is refused by name, exit 2" bash -c \
  "[ $rc -eq 2 ] && grep -q \"cannot resume from .*key 'runtime.deterministic': false vs true\" '$work/err'"

# SIGUSR1 to mpirun, which passes it to every rank; SIGTERM to every rank.
for how in usr1 term; do
  start 2 "$work/$how"
  wait_for "$work/$how/checkpoints/step_000000050/MANIFEST"
  if [ "$how" = usr1 ]; then kill -USR1 "$job"; else kill -TERM $(ranks_of "$work/$how"); fi
  wait "$job"
  rc=$?
  signal=SIGUSR1; [ "$how" = term ] && signal=SIGTERM
  if [ "$rc" -eq 75 ] && grep -Eq "^bll-train: stopped on request \($signal\) after step [0-9]+ \(epoch [0-9], batch [0-9]+ of 256\); checkpoint .*; run again with checkpoint.resume=auto" "$work/out"; then
    pass "$signal stops the job at one batch with exit 75 and a checkpoint"
  else
    fail "$signal: exit $rc"; grep -v "rank [0-9]:" "$work/out" | sed 's/^/     /'
  fi
  run 2 "$work/$how" checkpoint.resume=auto
  check "resumed after $signal: parameters bit-identical" same_params "$work/ref" "$work/$how"
done

# Replicas (2 stages x 2): every replica saves its own spans (its batch-norm statistics are its
# own until the epoch ends); stopped and resumed on the same grid, the run is bit-identical.
run 4 "$work/replicas_ref" runtime.replicas=2
start 4 "$work/replicas" runtime.replicas=2
wait_for "$work/replicas/checkpoints/step_000000050/MANIFEST"
kill -USR1 "$job"
wait "$job"
rc=$?
check "replicas: SIGUSR1 stops the 2 x 2 job with 75, every replica's spans saved" bash -c \
  "[ $rc -eq 75 ] && ls '$work'/replicas/checkpoints/step_*/span_003.r1.pt >/dev/null 2>&1"
run 4 "$work/replicas" runtime.replicas=2 checkpoint.resume=auto
check "replicas: resumed on 2 x 2, parameters bit-identical" same_params "$work/replicas_ref" "$work/replicas"

# An unwritable checkpoint folder: the job ends with one line naming it; the previous checkpoint stays good.
mkdir -p "$work/blocked/checkpoints"
touch "$work/blocked/checkpoints/step_000000100"  # a file where the folder of step 100 would go
run 2 "$work/blocked"
if [ "$rc" -eq 4 ] && grep -Eq "^bll-train: error on rank [01]: checkpoint: cannot create folder '.*step_000000100'" "$work/err"; then
  pass "an unwritable checkpoint folder ends the job, named"
else
  fail "unwritable checkpoint folder: exit $rc"
fi
check "the previous checkpoint stays loadable" bash -c "'$ckpt' verify '$work/blocked/checkpoints/step_000000050' >/dev/null"
rm "$work/blocked/checkpoints/step_000000100"
run 2 "$work/blocked" checkpoint.resume=auto
check "and the run goes on from it to the same parameters" same_params "$work/ref" "$work/blocked"

# A file-size limit (what a full disk does to a write), set on the running ranks once Open MPI is
# up (its own files would hit it first): the job ends with one line naming the file.
start 2 "$work/full" checkpoint.every_steps=200
wait_for "$work/full/metrics.jsonl"
for pid in $(ranks_of "$work/full"); do prlimit --pid "$pid" --fsize=4096:4096; done
wait "$job"
rc=$?
if [ "$rc" -eq 4 ] && grep -Eq "^bll-train: error on rank [01]: checkpoint: cannot write '.*\.span_00[0-3]\.pt\.tmp': File too large" "$work/err"; then
  pass "a write the disk refuses ends the job with one line"
else
  fail "a write the disk refuses: exit $rc"
fi

# The tool: inspect, export, and bll-eval of the export gives the run's own test accuracy.
"$ckpt" inspect "$work/ref" >"$work/inspect" 2>&1
check "bll-ckpt inspect" grep -q "step 768: epoch 3 of 3, after batch 256 of 256 (end), the end of the run" "$work/inspect"
check "bll-ckpt export" "$ckpt" export "$work/ref" "$work/net.safetensors"
"$evaluate" "$work/ok.yaml" "$work/net.safetensors" >"$work/eval" 2>&1
read -r want readout < <(python3 -c "
import json
r = [json.loads(l) for l in open('$work/ref/metrics.jsonl')][-1]
print('%.2f %.2f' % (r['test_top1'], r['readout_test_top1'][0]))")
check "bll-eval of the export: the run's test accuracy ($want%) and block 0's readout ($readout%)" bash -c \
  "grep -q 'top-1 $want%' '$work/eval' && grep -q 'block 0 readout: top-1 $readout%' '$work/eval'"
python3 - "$work/net.safetensors" >"$work/py" 2>&1 <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    size = len(f.read())
meta = header.pop("__metadata__")
ends = sorted(v["data_offsets"][1] for v in header.values())
assert meta["format"] == "bll" and ends[-1] == size, (meta, ends[-1], size)
assert {k.split(".")[0] for k in header} == {"block0", "block1", "block2", "block3"}
print("ok")
PY
check "the export reads in Python with json and struct alone" grep -qx ok "$work/py"

echo "checkpoint tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
