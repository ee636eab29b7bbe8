#!/usr/bin/env bash
# Start a one-node SLURM cluster on this Debian machine (no systemd needed), for trying
# `lit-diffusion slurm submit|sweep` locally and for the tests (`pytest -m slurm`).
#
#   sudo slurm/start-local-cluster.sh [--cpus N] [--partition NAME]
#
# Installs slurmctld slurmd slurm-client munge with apt-get if they are missing, writes
# /etc/slurm/slurm.conf (only if absent or written by this script), starts munged, slurmctld and
# slurmd with pid files under $LIT_DIFFUSION_SLURM_DIR (default /tmp/lit-diffusion-slurm) and waits
# until the node is idle. Idempotent: a cluster that already answers is left as it is.
# Stop it with slurm/stop-local-cluster.sh.
set -euo pipefail

CPUS=8            # more than the real cores (config_overrides): lets several tiny array tasks run at once
PARTITION=debug
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpus) CPUS="$2"; shift 2 ;;
    --partition) PARTITION="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "start-local-cluster: unknown option $1 (use --cpus N, --partition NAME)" >&2; exit 2 ;;
  esac
done

DIR="${LIT_DIFFUSION_SLURM_DIR:-/tmp/lit-diffusion-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by lit_diffusion slurm/start-local-cluster.sh"

die() { echo "start-local-cluster: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"

# one start at a time (parallel test workers call this together); the lock is released on exit
mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9

if [[ -f "$DIR/slurmctld.pid" ]] && scontrol ping 2>/dev/null | grep -q "UP" \
   && [[ "$(sinfo -h -o %T 2>/dev/null | head -1)" =~ ^(idle|mixed|allocated) ]]; then
  echo "start-local-cluster: already running ($(sinfo -h -o '%P %D %c %T' | head -1))"
  exit 0
fi

missing=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  echo "start-local-cluster: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
    || die "apt-get install slurmctld slurmd slurm-client munge failed"
fi

mkdir -p "$DIR"/{state,spool,log}
HOST=$(hostname -s)

# munge: the authentication every SLURM daemon and client uses
if [[ ! -s /etc/munge/munge.key ]]; then
  head -c 1024 /dev/urandom > /etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1; then
  su -s /bin/sh munge -c /usr/sbin/munged 9>&- || die "munged did not start (see /var/log/munge/munged.log)"
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n >/dev/null 2>&1 || die "munged does not answer (see /var/log/munge/munged.log)"
  cp /run/munge/munged.pid "$DIR/munged.pid"  # munged writes its pid where the munge user may write
fi

if [[ -f "$CONF" ]] && ! head -1 "$CONF" | grep -qF "$MARK"; then
  die "$CONF exists and was not written by this script; refusing to overwrite it"
fi
cat > "$CONF" <<CONF
$MARK
ClusterName=litdiffusion
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# a requeued job may start again after ~5 s instead of ~120 s
AuthInfo=cred_expire=5
SchedulerParameters=bf_interval=1,sched_interval=1
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
KillWait=5
MinJobAge=600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

/usr/sbin/slurmctld -i 9>&- || die "slurmctld failed to start (see $DIR/log/slurmctld.log)"
/usr/sbin/slurmd 9>&- || die "slurmd failed to start (see $DIR/log/slurmd.log)"
for _ in $(seq 100); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  [[ "$state" == idle ]] && break
  sleep 0.2
done
[[ "$state" == idle ]] || die "node is '$state', not idle, after 20 s (see $DIR/log/)"
echo "start-local-cluster: up ($(sinfo -h -o 'partition %P, %D node, %c CPUs, %T' | head -1)); logs in $DIR/log"
