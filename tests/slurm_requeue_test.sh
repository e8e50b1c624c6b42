#!/usr/bin/env bash
# A SLURM job stopped ahead of its time limit goes on after a requeue: launch/slurm.sbatch runs
# 2 ranks; once a checkpoint is complete, `scancel --signal=USR1` sends every rank the signal
# that `#SBATCH --signal=USR1@120` sends before a time limit. The ranks save at one batch and
# exit 75, the batch script requeues the job, the second start resumes from the checkpoint and
# the job completes with parameters bit-identical to an uninterrupted run's.
#   slurm_requeue_test.sh BLL_TRAIN MAKE_FIXTURE MPIEXEC REPO_ROOT
set -u
train=$1 fixture=$2 mpiexec=$3 root=$4

source "$root/tests/slurm_common.sh"
slurm_enter 1 "$0" "$@"

"$fixture" "$work/data" 2048 128 >/dev/null || fail "make_fixture"
cat >"$work/job.yaml" <<YAML
data: {dataset: fashion-mnist, dir: $work/data}
model: {type: cnn, widths: [8, 8, 8], head_hidden: 16, blocks: 4}
train: {epochs: 2, batch_size: 8}
checkpoint: {every_steps: 50}
YAML
cd "$work" || fail "cd"
"$mpiexec" -np 2 "$train" "$work/job.yaml" runtime.run_dir="$work/reference" runtime.threads=1 >"$work/reference.log" 2>&1 ||
  fail "the reference run"

job=$(BLL_TRAIN=$train BLL_ROOT=$root sbatch --parsable --ntasks=2 --cpus-per-task=1 --output="$work/job-%j.out" \
  "$root/launch/slurm.sbatch" "$work/job.yaml" runtime.run_dir="$work/run") || fail "sbatch"
for _ in $(seq 600); do [ -e "$work/run/checkpoints/step_000000050/MANIFEST" ] && break; sleep 0.1; done
[ -e "$work/run/checkpoints/step_000000050/MANIFEST" ] || fail "no checkpoint appeared"
scancel --signal=USR1 "$job" || fail "scancel --signal=USR1"
wait_job "$job" 1
out=$work/job-$job.out
[ "$state" = COMPLETED ] || fail "job $job ended $state after ${restarts:-0} restarts"
grep -q "^bll-train: stopped on request (SIGUSR1) after step" "$out" || fail "no stop line"
grep -q "requeueing job $job" "$out" || fail "the batch script did not requeue"
grep -q "^bll-train: resuming from .* at step" "$out" || fail "the second start did not resume"
for b in 0 1 2 3; do
  cmp -s "$work/reference/block_$b.pt" "$work/run/block_$b.pt" || fail "block $b differs from the uninterrupted run"
done
echo "ok: job $job stopped by SIGUSR1, requeued, resumed ($(grep -o 'resuming from .* at step [0-9]*' "$out" | sed 's/.* //')), parameters bit-identical"
