# What the SLURM tests share; sourced with `root` (the repository) set.
#   slurm_enter NODES "$0" "$@"   outside the cluster: start one with NODES nodes
#                                 (scripts/local_slurm.sh) and run the script again inside it;
#                                 inside: set `work`, the cluster's folder
#   fail MESSAGE                  print it and the job's and daemons' logs; exit 1
#   wait_job JOB [RESTARTS]       until the job has ended, after at least RESTARTS requeues
#                                 (a requeued job is released 3 s later); sets `state`, `restarts`
#   job_field JOB FIELD           one field of `scontrol show job`

slurm_enter() {
  local nodes=$1
  shift
  if [ "${BLL_SLURM_WORK:-}" = "" ]; then
    BLL_SLURM_CPUS=2 exec bash "$root/scripts/local_slurm.sh" "$nodes" bash "$@"
  fi
  work=$BLL_SLURM_WORK
}

fail() {
  echo "FAIL: $*"
  for log in "$work"/*.log "$work"/job-*.out; do [ -f "$log" ] && { echo "--- $log"; tail -25 "$log"; }; done
  exit 1
}

job_field() { scontrol show job "$1" 2>/dev/null | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }

wait_job() {
  local job=$1 want=${2:-0}
  state="" restarts=0
  local released=0
  for _ in $(seq 600); do
    state=$(job_field "$job" JobState)
    restarts=$(job_field "$job" Restarts)
    [ "${restarts:-0}" -ge "$want" ] &&
      case "$state" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL) return ;; esac
    # SLURM holds a requeued job back for a while (its begin time); the test releases it 3 s
    # after the requeue. Not at once: slurmd refuses a start within the second the requeue
    # revoked the old credential ("Job credential revoked"), and the job then fails.
    if [ "$released" = 0 ] && [ "${restarts:-0}" -ge 1 ] && [ "$state" = PENDING ]; then
      released=$((SECONDS + 3))
    elif [ "$released" != 0 ] && [ "$released" != done ] && [ "$SECONDS" -ge "$released" ] && [ "$state" = PENDING ]; then
      scontrol update JobId="$job" StartTime=now 2>/dev/null && released=done
    fi
    sleep 0.5
  done
}
