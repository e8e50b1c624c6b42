#!/usr/bin/env bash
# A private SLURM on this one machine, for a command to use, then gone:
#   scripts/local_slurm.sh NODES COMMAND [ARGS ...]
# Starts a munged with its own key and socket and slurmctld/slurmd from a configuration generated
# in a temporary folder (NODES slurmd on this host, each in a mount namespace of its own so that
# PMIx's per-step folders do not collide; $BLL_SLURM_CPUS CPUs each, default the machine's),
# runs COMMAND with SLURM_CONF set (sbatch, srun, sinfo reach this cluster), and stops exactly
# the daemons it started, by their pid files, whatever happens. Exits with COMMAND's code.
# Installs slurm-wlm and munge when missing; needs root (exit 77 otherwise). tests/slurm_test.sh
# and scripts/scaling.sh's SLURM runs use it; a real cluster needs none of this.
set -u
if [ $# -lt 2 ]; then
  echo "usage: scripts/local_slurm.sh NODES COMMAND [ARGS ...]" >&2
  exit 2
fi
nodes=$1; shift
cpus=${BLL_SLURM_CPUS:-$(nproc)}
work=$(mktemp -d /tmp/bll-slurm-XXXXXX)
chmod 700 "$work"
status=1
started=0

stop_daemons() {
  local f pid
  for f in "$work"/slurmd-*.pid "$work"/slurmctld.pid "$work"/munged.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
}
finish() {
  stop_daemons
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ "$started" -eq 0 ]; then
    for log in "$work"/*.log; do [ -f "$log" ] && { echo "--- $log"; tail -20 "$log"; }; done
  fi
  rm -rf "$work"
}
trap finish EXIT
fail() { echo "local_slurm.sh: $*" >&2; status=1; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then echo "slurm-wlm and munge are missing and this is not root: skipped"; status=77; exit 77; fi
  echo "installing slurm-wlm and munge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$work/apt.log" 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge >"$work/apt.log" 2>&1; } || fail "apt-get install slurm-wlm munge"
fi
if [ "$(id -u)" -ne 0 ]; then echo "slurmd needs root here: skipped"; status=77; exit 77; fi

# A private munged: its own key and socket, so a system munged is neither needed nor touched.
dd if=/dev/urandom bs=1 count=1024 of="$work/munge.key" 2>/dev/null
chmod 400 "$work/munge.key"
munged --force --socket="$work/munge.sock" --key-file="$work/munge.key" --pid-file="$work/munged.pid" \
  --log-file="$work/munged.log" --seed-file="$work/munged.seed" || fail "munged did not start"

host=$(hostname -s)
base=$((20000 + RANDOM % 20000))
{
  echo "ClusterName=blltest"
  echo "SlurmctldHost=$host"
  echo "SlurmUser=root"
  echo "AuthType=auth/munge"
  echo "AuthInfo=socket=$work/munge.sock"
  echo "CredType=cred/munge"
  echo "ProctrackType=proctrack/linuxproc"
  echo "TaskPlugin=task/none"
  echo "SelectType=select/cons_tres"
  echo "SelectTypeParameters=CR_CPU"
  echo "MpiDefault=pmix"
  echo "ReturnToService=2"
  echo "SlurmdParameters=config_overrides"  # nodes may claim more CPUs than the machine has
  echo "MinJobAge=600"
  echo "StateSaveLocation=$work/state"
  echo "SlurmctldPidFile=$work/slurmctld.pid"
  echo "SlurmctldLogFile=$work/slurmctld.log"
  echo "SlurmctldPort=$base"
  echo "SlurmdSpoolDir=$work/spool-%n"
  echo "SlurmdPidFile=$work/slurmd-%n.pid"
  echo "SlurmdLogFile=$work/slurmd-%n.log"
  if [ "$nodes" -eq 1 ]; then
    echo "SlurmdPort=$((base + 1))"
    echo "NodeName=$host CPUs=$cpus State=UNKNOWN"
    echo "PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE"
  else
    echo "NodeName=n[1-$nodes] NodeHostname=$host Port=$((base + 1))-$((base + nodes)) CPUs=$cpus State=UNKNOWN"
    echo "PartitionName=test Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE"
  fi
} >"$work/slurm.conf"
mkdir -p "$work/state"
export SLURM_CONF=$work/slurm.conf
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
if [ "$nodes" -eq 1 ]; then
  mkdir -p "$work/spool-$host"
  slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
else
  echo "PMIxCliTmpDirBase=/var/spool/pmixbase" >"$work/mpi.conf"
  mkdir -p /var/spool/pmixbase
  for k in $(seq "$nodes"); do
    mkdir -p "$work/spool-n$k" "$work/pmix-n$k"
    unshare -m bash -c "mount --bind '$work/pmix-n$k' /var/spool/pmixbase && exec slurmd -f '$SLURM_CONF' -N n$k" ||
      fail "slurmd n$k did not start"
  done
fi
for _ in $(seq 60); do
  [ "$(sinfo -h -o %t 2>/dev/null | grep -c idle)" -ge 1 ] && [ "$(sinfo -h -N -o %t 2>/dev/null | grep -c idle)" -eq "$nodes" ] && break
  sleep 1
done
[ "$(sinfo -h -N -o %t 2>/dev/null | grep -c idle)" -eq "$nodes" ] || fail "the $nodes node(s) did not come up: $(sinfo -h -N 2>&1)"


export SLURM_CONF BLL_SLURM_WORK=$work
started=1
"$@"
status=$?
exit "$status"
