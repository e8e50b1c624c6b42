#!/usr/bin/env bash
# A real SLURM on this machine runs launch/slurm.sbatch: one node, or two nodes.
#   slurm_test.sh NODES BLL_TRAIN MAKE_FIXTURE REPO_ROOT
# scripts/local_slurm.sh starts the cluster (installing slurm-wlm and munge when missing; exit
# 77, skipped, when not root) and stops exactly the daemons it started; inside it this submits
# the batch script with sbatch, waits for the job, and checks its state and its metrics.jsonl.
set -u
nodes=$1 train=$2 fixture=$3 root=$4

source "$root/tests/slurm_common.sh"
slurm_enter "$nodes" "$0" "$@"

# The job: 2 ranks of a small CNN on fixture data, through the launcher a user submits.
"$fixture" "$work/data" 256 128 >/dev/null || fail "make_fixture"
cat >"$work/job.yaml" <<YAML
data: {dataset: fashion-mnist, dir: $work/data}
model: {type: cnn, widths: [8, 8, 8], head_hidden: 16, blocks: 4}
train: {epochs: 1, batch_size: 32}
runtime: {save_params: false}
YAML
cd "$work" || fail "cd"
job=$(BLL_TRAIN=$train BLL_ROOT=$root sbatch --parsable -N "$nodes" --ntasks=2 --ntasks-per-node=$((2 / nodes)) \
  --cpus-per-task=1 --output="$work/job-%j.out" "$root/launch/slurm.sbatch" "$work/job.yaml" \
  runtime.run_dir="$work/run") || fail "sbatch"
wait_job "$job"
exit_code=$(job_field "$job" ExitCode)
[ "$state" = COMPLETED ] && [ "$exit_code" = 0:0 ] || fail "job $job ended $state (exit $exit_code)"
grep -q '"test_top1"' "$work/run/metrics.jsonl" || fail "no metrics.jsonl with test_top1"
grep -q "2 ranks on $nodes node(s)" "$work/job-$job.out" || fail "the job did not run 2 ranks on $nodes node(s)"
echo "ok: job $job, 2 ranks on $nodes node(s), $(grep -o '"test_top1":[0-9.]*' "$work/run/metrics.jsonl")"
