#!/usr/bin/env bash
# Command-line behaviour of bll-train: each case checks the exit code and that stderr has one
# line naming the culprit. Usage: cli_test.sh BLL_TRAIN MAKE_FIXTURE MPIEXEC CONFIG_DIR
set -u
train=$1 fixture=$2 mpiexec=$3 configs=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

# expect NAME CODE REGEX -- COMMAND...: the command exits with CODE and stderr matches REGEX.
expect() {
  local name=$1 code=$2 regex=$3
  shift 4
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ "$rc" -eq "$code" ] && { [ -z "$regex" ] || grep -Eq -- "$regex" "$work/err"; }; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name: exit $rc (want $code), stderr:"; sed 's/^/     /' "$work/err"
  fi
}

"$fixture" "$work/data" 256 128
cat >"$work/ok.yaml" <<YAML
data: {dataset: fashion-mnist, dir: $work/data}
model: {type: cnn, widths: [8, 8, 8], head_hidden: 16, blocks: 4}
train: {epochs: 1, batch_size: 32}
runtime: {run_dir: $work/run, threads: 1}
YAML

expect "help exits 0" 0 '' -- "$train" --help
expect "no config is a usage error" 2 '^bll-train: error: missing CONFIG.yaml' -- "$train"
expect "missing config file" 2 "nope.yaml: cannot open" -- "$train" "$work/nope.yaml"
expect "unknown key in an override" 2 "unknown key 'optim.lrr' \(did you mean 'optim.lr'\?\)" -- "$train" "$work/ok.yaml" optim.lrr=0.1
printf 'train: {epohcs: 1}\n' >>"$work/bad_key.yaml"; cat "$work/ok.yaml" >>"$work/bad_key.yaml"
expect "unknown key in the file" 2 "bad_key.yaml:1: unknown key 'train.epohcs' \(did you mean 'train.epochs'\?\)" -- "$train" "$work/bad_key.yaml"
expect "wrong type" 2 "ok.yaml.*key 'train.batch_size': expected an integer.*got 'many'|command line: key 'train.batch_size': expected an integer" -- "$train" "$work/ok.yaml" train.batch_size=many
expect "out of range" 2 "key 'optim.lr': expected a number in" -- "$train" "$work/ok.yaml" optim.lr=-3

# A network that cannot take the data is refused before any data is read or any run dir made.
expect "a network that cannot work is refused before the data is read" 2 "ok.yaml: model.widths: model.type cnn needs at least one entry" -- \
  "$train" "$work/ok.yaml" model.widths=[] data.dir="$work/no_data_here" runtime.run_dir="$work/early"
[ -e "$work/early" ] && { failed=$((failed + 1)); echo "FAIL the refused network left a run dir"; }
expect "so is a network too deep for the images, on 2 ranks" 2 "^bll-train: error: .*ok.yaml: model.type cnn: images of 28x28 are too small" -- \
  "$mpiexec" -np 2 "$train" "$work/ok.yaml" model.widths=[4,4,4,4,4,4] data.dir="$work/no_data_here"

cp -r "$work/data" "$work/trunc"
head -c 3000 "$work/data/train-images-idx3-ubyte.gz" >"$work/trunc/train-images-idx3-ubyte.gz"
expect "truncated data file" 3 "trunc/train-images-idx3-ubyte.gz: corrupt or truncated" -- "$train" "$work/ok.yaml" data.dir="$work/trunc"
[ -e "$work/run/metrics.jsonl" ] && [ -s "$work/run/metrics.jsonl" ] && { failed=$((failed + 1)); echo "FAIL truncated data still trained"; }

# Image folders (data.dataset: folder): they train; bad folders and files are named, exit 3.
"$fixture" "$work/images" 200 60 --folder
folder_keys=(data.dataset=folder data.dir="$work/images" data.image_size=32 runtime.overwrite=true)
expect "an image folder trains" 0 '' -- "$train" "$work/ok.yaml" "${folder_keys[@]}" runtime.run_dir="$work/folder_run"
cp -r "$work/images" "$work/images_empty"; mkdir "$work/images_empty/train/c_empty"
expect "an empty class folder is named" 3 "images_empty/train/c_empty: no JPEG or PNG images in this class folder" -- \
  "$train" "$work/ok.yaml" "${folder_keys[@]}" data.dir="$work/images_empty"
cp -r "$work/images" "$work/images_val"; mv "$work/images_val/val/c3" "$work/images_val/val/c33"
expect "a validation class the training split lacks is named" 3 "images_val/val/c33: class 'c33' is not a class of the training split" -- \
  "$train" "$work/ok.yaml" "${folder_keys[@]}" data.dir="$work/images_val"
cp -r "$work/images" "$work/images_bad"; head -c 100 "$work/images/train/c4/000004.jpg" >"$work/images_bad/train/c4/000004.jpg"
expect "a file that does not decode stops a 2-rank run, named" 3 "^bll-train: error on rank 0: .*images_bad/train/c4/000004.jpg: not a readable JPEG" -- \
  "$mpiexec" -np 2 "$train" "$work/ok.yaml" "${folder_keys[@]}" data.dir="$work/images_bad" data.normalize=false \
  runtime.run_dir="$work/folder_bad"
expect "data.on_bad_file=skip replaces it, named once, on 2 ranks" 0 \
  "^bll: warning: .*images_bad/train/c4/000004.jpg: not a readable JPEG.*replaced by the next image of the epoch" -- \
  "$mpiexec" -np 2 "$train" "$work/ok.yaml" "${folder_keys[@]}" data.dir="$work/images_bad" data.normalize=false \
  data.on_bad_file=skip train.batch_size=40 runtime.run_dir="$work/folder_skip"
cp "$work/out" "$work/skip.out"
expect "the replaced file is counted in the epoch line and metrics.jsonl" 0 '' -- \
  bash -c "grep -q '\"replaced_files\":1' '$work/folder_skip/metrics.jsonl' && grep -q '  1 bad files replaced' '$work/skip.out'"

# Packed shards: bll-pack packs the folder (and goes on after a cut); they train; a bad shard is named.
pack=$(dirname "$train")/bll-pack
expect "bll-pack packs an image folder" 0 '' -- "$pack" "$work/images" "$work/packed" --side 36 --shard-images 64
expect "bll-pack packs a built-in data set" 0 '' -- "$pack" --dataset fashion-mnist "$work/data" "$work/packed_fmnist"
expect "its shards train as packed 28x28 grey images" 0 '' -- "$train" "$work/ok.yaml" data.dataset=packed \
  data.dir="$work/packed_fmnist" data.channels=1 data.image_size=28 runtime.run_dir="$work/packed_fmnist_run" runtime.overwrite=true
expect "bll-pack refuses a bad option, named" 2 "^bll-pack: error: --side: expected an integer" -- "$pack" "$work/images" "$work/p2" --side big
expect "packed shards train on 2 ranks" 0 '' -- "$mpiexec" -np 2 "$train" "$work/ok.yaml" data.dataset=packed \
  data.dir="$work/packed" data.image_size=32 runtime.run_dir="$work/packed_run" runtime.overwrite=true
shard=$(ls "$work"/packed/train-*.bin | head -1)
head -c 1000 "$shard" >"$work/short.bin" && cp "$work/short.bin" "$shard"
expect "a truncated shard is named" 3 "train-00000.bin: 1000 bytes, the manifest says [0-9]+ \(a truncated shard\)" -- \
  "$train" "$work/ok.yaml" data.dataset=packed data.dir="$work/packed" data.image_size=32

# Under mpirun: the error comes once (from rank 0) and the job exits non-zero without hanging.
expect "truncated data file, 2 ranks" 3 "^bll-train: error: .*trunc/train-images-idx3-ubyte.gz" -- \
  "$mpiexec" -np 2 "$train" "$work/ok.yaml" data.dir="$work/trunc"
[ "$(grep -c 'bll-train: error' "$work/err")" -eq 1 ] || { failed=$((failed + 1)); echo "FAIL error printed more than once"; }
expect "more ranks than blocks" 2 "model.blocks is 1 but the job has 2 ranks" -- \
  "$mpiexec" -np 2 "$train" "$work/ok.yaml" model.blocks=1
expect "replicas that do not divide the ranks" 2 "^bll-train: error: key 'runtime.replicas': 4 replicas do not divide the 2 ranks" -- \
  "$mpiexec" -np 2 "$train" "$work/ok.yaml" runtime.replicas=4
[ "$(grep -c 'bll-train: error' "$work/err")" -eq 1 ] || { failed=$((failed + 1)); echo "FAIL replicas error printed more than once"; }
expect "2 stages x 2 replicas train" 0 '' -- "$mpiexec" -np 4 "$train" "$work/ok.yaml" runtime.replicas=2 \
  runtime.run_dir="$work/replicas"
cp "$work/out" "$work/replicas.out"
expect "the plan names stages and replicas" 0 '' -- grep -q '4 ranks = 2 stages x 2 replicas (sync grads)' "$work/replicas.out"
expect "the replicas' metrics" 0 '' -- grep -q '"replica_divergence":0.0,"replicas":2' "$work/replicas/metrics.jsonl"

# Faults: a rank killed (SIGKILL) or stopped (SIGSTOP) in the middle of training ends the whole
# job, naming the dead rank or the stuck peer, instead of leaving the others waiting.
# fault NAME SIGNAL RANKS -- a 4-rank job of many small batches; SIGNAL goes to one rank once
# the job has started training; the job's stderr is $work/err and its exit code $rc.
fault() {
  local signal=$1 ranks=$2
  shift 2
  "$mpiexec" -np "$ranks" "$train" "$work/ok.yaml" train.epochs=50 train.batch_size=8 runtime.run_dir="$work/fault" \
    runtime.overwrite=true "$@" >"$work/out" 2>"$work/err" &
  local job=$! pids=""
  for _ in $(seq 600); do  # the ranks are up once all of them exist and rank 0 has printed its plan
    pids=$(pgrep -f -- "^$train $work/ok.yaml train.epochs=50" | sort -n)
    [ "$(echo "$pids" | grep -c .)" -ge "$ranks" ] && grep -q "block 3" "$work/out" && break
    sleep 0.1
  done
  local victim
  victim=$(echo "$pids" | sed -n 3p)
  kill "-$signal" "$victim"
  local start=$SECONDS
  wait "$job"
  rc=$? elapsed=$((SECONDS - start))
}
fault KILL 4
if [ "$rc" -ne 0 ] && [ "$elapsed" -le 30 ] && grep -Eq "rank [0-9]+ .*(exited on signal 9|Killed)" "$work/err"; then
  passed=$((passed + 1)); echo "ok   a killed rank ends the job in ${elapsed} s, named"
else
  failed=$((failed + 1)); echo "FAIL a killed rank: exit $rc after ${elapsed} s, stderr:"; sed 's/^/     /' "$work/err"
fi
fault STOP 4 runtime.timeout_s=5
# A liveness bound, not a timing test: the job must end within a generous multiple of timeout_s.
# A rank stuck on a message names the peer; one stuck in a collective (the stop vote every rank
# joins) names what it waited for, since any rank may be the one missing.
if [ "$rc" -ne 0 ] && [ "$elapsed" -le 90 ] && grep -Eq "^bll-train: error on rank [0-9]: timed out after [0-9]+ s waiting for (.* (from|to) rank [0-9]|the stop vote of step [0-9]+)" "$work/err"; then
  passed=$((passed + 1)); echo "ok   a stopped rank ends the job after runtime.timeout_s ($elapsed s), the stuck peer named"
else
  failed=$((failed + 1)); echo "FAIL a stopped rank: exit $rc after ${elapsed} s, stderr:"; sed 's/^/     /' "$work/err"
fi
pkill -KILL -f -- "$train $work/ok.yaml train.epochs=50" 2>/dev/null  # nothing may outlive the test

# An exception on one rank in the middle of training (BLL_INJECT_FAILURE, a test setting): the
# job ends at once with that rank's own message as its first line, not after another rank's
# runtime.timeout_s, and with the runtime error's exit code.
for np in 2 3 4; do
  victim=$((np - 1))
  start=$SECONDS
  expect "an exception on rank $victim ends a $np-rank job" 4 \
    "^bll-train: error on rank $victim: injected failure before batch 3 \(BLL_INJECT_FAILURE\)" -- \
    env BLL_INJECT_FAILURE=$victim:3 "$mpiexec" -np $np "$train" "$work/ok.yaml" model.blocks=$((np > 2 ? np : 4)) \
    train.epochs=50 runtime.timeout_s=600 runtime.run_dir="$work/inject" runtime.overwrite=true
  elapsed=$((SECONDS - start))
  # The first line of bll-train's (mpirun adds its own report of the abort).
  if grep -m1 "^bll-train" "$work/err" | grep -q "^bll-train: error on rank $victim: injected failure" && [ "$elapsed" -le 120 ]; then
    passed=$((passed + 1)); echo "ok   $np ranks: the failing rank's message comes first, after ${elapsed} s"
  else
    failed=$((failed + 1)); echo "FAIL an exception on one of $np ranks: first line / ${elapsed} s:"; sed 's/^/     /' "$work/err" | head -5
  fi
done
expect "a malformed BLL_INJECT_FAILURE is refused" 2 "^bll-train: error: BLL_INJECT_FAILURE='x': expected RANK:BATCH" -- \
  env BLL_INJECT_FAILURE=x "$train" "$work/ok.yaml"
expect "bp refuses bf16 messages" 2 "key 'runtime.message_precision': bf16 messages are for the local methods; train.method bp sends activations and gradients in fp32" -- \
  "$train" "$work/ok.yaml" train.method=bp runtime.message_precision=bf16

# Devices: a rank that asks for a GPU it does not have stops the job with one line, printed once.
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect "cuda without a GPU, 2 ranks" 4 "^bll-train: error: rank 0 on node .+: runtime.device is cuda, but this rank sees 0 GPUs" -- \
    "$mpiexec" -np 2 "$train" "$work/ok.yaml" runtime.device=cuda
  [ "$(grep -c 'bll-train: error' "$work/err")" -eq 1 ] || { failed=$((failed + 1)); echo "FAIL device error printed more than once"; }
fi
expect "nccl needs a GPU" 2 "key 'runtime.transport': nccl moves GPU memory; it needs runtime.device=cuda" -- \
  "$train" "$work/ok.yaml" runtime.transport=nccl
expect "fa refuses a model it does not cover, 2 ranks" 2 \
  "^bll-train: error: .*ok.yaml: train.method fa: model.type transformer \(unit layer1\) has a layer that feedback alignment does not cover" -- \
  "$mpiexec" -np 2 "$train" "$work/ok.yaml" train.method=fa data.dataset=reversal model.type=transformer model.width=8 \
  model.blocks=2 data.train_limit=64 data.test_limit=32

# runtime.trace: one trace.json of valid trace events, a row per rank, each with compute events.
expect "trace of a 4-rank run" 0 '' -- "$mpiexec" -np 4 "$train" "$work/ok.yaml" runtime.trace=true runtime.run_dir="$work/trace"
expect "trace.json has a row per rank" 0 '' -- python3 -c "
import json, sys
events = json.load(open('$work/trace/trace.json'))['traceEvents']
rows = {e['pid'] for e in events if e.get('name') == 'process_name'}
computing = {e['pid'] for e in events if e.get('ph') == 'X' and e['name'] == 'forward + local loss' and e['dur'] >= 0}
sys.exit(0 if rows == computing == {0, 1, 2, 3} else 1)"

# A failure on one rank during training (divergence) ends every rank with that rank's message.
expect "diverging training stops the job" 4 "^bll-train: error on rank [01]: block [0-3]: local loss is -?(nan|inf) in batch" -- \
  "$mpiexec" -np 2 "$train" "$work/ok.yaml" optim.name=sgd optim.lr=100 loss.pred_weight=1000 train.epochs=2 \
  runtime.run_dir="$work/diverged"

# A real run: 4 ranks train, metrics.jsonl gets one line per epoch with the documented fields.
expect "4-rank training run" 0 '' -- "$mpiexec" -np 4 "$train" "$work/ok.yaml" train.epochs=2
[ -e "$work/run/trace.json" ] && { failed=$((failed + 1)); echo "FAIL a run without runtime.trace wrote trace.json"; }
if [ "$(wc -l <"$work/run/metrics.jsonl")" -eq 2 ] && grep -q '"test_top1"' "$work/run/metrics.jsonl" \
   && grep -q '"samples_per_sec"' "$work/run/metrics.jsonl" && grep -q '"block_train_seconds"' "$work/run/metrics.jsonl" && grep -q '"pipeline_efficiency"' "$work/run/metrics.jsonl" && grep -q '"rank_compute_seconds"' "$work/run/metrics.jsonl" && [ -s "$work/run/block_3.pt" ] && [ -s "$work/run/config.yaml" ]; then
  passed=$((passed + 1)); echo "ok   run directory has config, metrics and parameters"
else
  failed=$((failed + 1)); echo "FAIL run directory incomplete"; ls -la "$work/run"
fi

# No run overwrites another: an explicit run_dir that holds a run is refused (the run is left
# intact) unless runtime.overwrite; without run_dir every run gets a new folder and 'latest'.
expect "a second run into the same run_dir is refused" 2 \
  "runtime.run_dir '$work/run' already holds a run .*runtime.overwrite=true" -- "$train" "$work/ok.yaml"
expect "the refused run left the first one intact" 0 '' -- test "$(wc -l <"$work/run/metrics.jsonl")" -eq 2 -a -s "$work/run/block_3.pt"
mkdir -p "$work/run/checkpoints/step_000099"  # an old run's checkpoint: overwriting must not keep it
expect "runtime.overwrite=true replaces it" 0 '' -- "$train" "$work/ok.yaml" runtime.overwrite=true runtime.save_params=false
expect "the replaced run has only its own outputs" 0 '' -- test "$(wc -l <"$work/run/metrics.jsonl")" -eq 1 -a ! -e "$work/run/block_3.pt"
expect "the replaced run's checkpoints are gone" 0 '' -- test ! -e "$work/run/checkpoints/step_000099"
grep -v run_dir "$work/ok.yaml" >"$work/nodir.yaml"
mkdir -p "$work/cwd"
expect "runs without run_dir, first" 0 '' -- bash -c "cd '$work/cwd' && '$train' '$work/nodir.yaml'"
first=$(readlink "$work/cwd/runs/nodir/latest")
expect "runs without run_dir, second" 0 '' -- bash -c "cd '$work/cwd' && '$train' '$work/nodir.yaml'"
second=$(readlink "$work/cwd/runs/nodir/latest")
expect "two runs, two folders, 'latest' at the second" 0 '' -- bash -c "[ -n '$first' ] && [ '$first' != '$second' ] &&
  [ -s '$work/cwd/runs/nodir/$first/metrics.jsonl' ] && [ -s '$work/cwd/runs/nodir/$second/metrics.jsonl' ]"

# Every shipped config parses (a dry check: --help-free validation through a bad data dir).
for cfg in "$configs"/*.yaml; do
  expect "config $(basename "$cfg") validates" 3 "data.dir|/absent" -- "$train" "$cfg" data.dir="$work/absent" \
    runtime.device=cpu runtime.run_dir="$work/cfgrun"
done

# The cluster configs train a few steps on 2 ranks at a smoke size, on the generated image folder
# and its packed shards: ResNet-50 with the ImageNet stem, ResNet-18 on packed 64-pixel crops.
"$pack" "$work/images" "$work/packed36" --side 36 >/dev/null 2>&1
for cfg in imagenet_resnet50:"$work/images" imagenet64_resnet18:"$work/packed36"; do
  expect "config ${cfg%%:*}.yaml trains a few steps" 0 '' -- "$mpiexec" -np 2 "$train" "$configs/${cfg%%:*}.yaml" \
    data.dir="${cfg#*:}" data.image_size=32 data.train_limit=64 data.test_limit=32 data.workers=1 train.epochs=1 \
    train.batch_size=16 model.width=4 runtime.device=cpu runtime.precision=fp32 runtime.threads=1 runtime.progress=off \
    data.normalization="$configs/imagenet_normalization.json" runtime.run_dir="$work/cluster-run/${cfg%%:*}"
  cp "$work/out" "$work/${cfg%%:*}.out"
done
expect "the statistics given by data.normalization are the ones the run saves" 0 '' -- \
  grep -q '"mean":\[0.48500001430511475,0.4560000002384186,0.4059999883174896\]' "$work/cluster-run/imagenet_resnet50/normalization.json"
expect "imagenet_resnet50 has the ImageNet stem (32 pixels become 8), imagenet64_resnet18 the small one" 0 '' -- \
  bash -c "grep -q 'block 0 \[3,32,32\] -> \[32,4,4\]' '$work/imagenet_resnet50.out' &&
           grep -q 'block 0 \[3,32,32\] -> \[4,32,32\]' '$work/imagenet64_resnet18.out'"

# Every config of configs/paper/ starts and trains a few steps on 2 ranks, at a smoke size
# (narrow network, 64 training samples) on fixture data of its data set's format.
"$fixture" "$work/cifar" 64 32 --cifar >/dev/null
for cfg in "$configs"/paper/*.yaml; do
  dir=$work/data
  grep -q 'dataset: cifar10' "$cfg" && dir=$work/cifar
  expect "paper config $(basename "$cfg") trains a few steps" 0 '' -- "$mpiexec" -np 2 "$train" "$cfg" \
    data.dir="$dir" data.train_limit=64 data.test_limit=32 train.epochs=1 train.batch_size=16 model.width=4 \
    runtime.threads=1 runtime.progress=off runtime.run_dir="$work/paper-run/$(basename "$cfg" .yaml)"
done
# The sequence task reports whole-sequence accuracy next to the per-token one.
expect "sequence task reports test_seq_acc" 0 '' -- grep -q '"test_seq_acc"' "$work/paper-run/s2s_transformer5/metrics.jsonl"
ae_metrics=$work/paper-run/fmnist_autoencoder/metrics.jsonl
expect "autoencoder reports S15-S17" 0 '' -- bash -c "grep -q '\"test_s15_kl\"' '$ae_metrics' && grep -q '\"test_s16_mm\"' '$ae_metrics' && grep -q '\"test_s17_me\"' '$ae_metrics'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
