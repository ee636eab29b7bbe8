#!/usr/bin/env bash
# Start a local SLURM cluster on this Debian machine (no systemd needed), for trying
# `lit-diffusion slurm submit|sweep` locally and for the tests (`pytest -m slurm`).
#
#   sudo slurm/start-local-cluster.sh [--nodes N] [--cpus N] [--partition NAME]
#
# Installs slurmctld slurmd slurm-client munge with apt-get if they are missing, writes
# /etc/slurm/slurm.conf (only if absent or written by this script), starts munged, slurmctld and
# slurmd with pid files under $LIT_DIFFUSION_SLURM_DIR (default /tmp/lit-diffusion-slurm) and waits
# until the nodes are idle. Idempotent: a cluster of that size that already answers is left as it is.
# --nodes 1 (the default): one node, this machine, on 127.0.0.1. --nodes N >= 2: N nodes litd-n1..N,
# each slurmd in its own network and UTS namespace, slurmctld in a namespace of its own, joined by bridges
# (slurm/local-network.sh); the host's SLURM commands reach slurmctld through 127.0.0.1:6817.
# Stop it with slurm/stop-local-cluster.sh.
set -euo pipefail

NODES=1
CPUS=8            # more than the real cores (config_overrides): lets several tiny array tasks run at once
PARTITION=debug
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) NODES="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --partition) PARTITION="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "start-local-cluster: unknown option $1 (use --nodes N, --cpus N, --partition NAME)" >&2; exit 2 ;;
  esac
done

DIR="${LIT_DIFFUSION_SLURM_DIR:-/tmp/lit-diffusion-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by lit_diffusion slurm/start-local-cluster.sh"

die() { echo "start-local-cluster: $*" >&2; exit 1; }
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive integer, got '$NODES'"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/local-network.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"

# one start at a time (parallel test workers call this together); the lock is released on exit
mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9

if [[ -f "$DIR/slurmctld.pid" ]] && scontrol ping 2>/dev/null | grep -q "UP" \
   && [[ "$(sinfo -h -o %T 2>/dev/null | head -1)" =~ ^(idle|mixed|allocated) ]]; then
  running=$(cat "$DIR/nodes" 2>/dev/null || echo 1)
  [[ "$running" == "$NODES" ]] || die "a $running-node cluster is running; stop it first (slurm/stop-local-cluster.sh)"
  echo "start-local-cluster: already running ($(sinfo -h -o '%P %D %c %T' | head -1))"
  exit 0
fi
[[ -z "$(our_namespaces)" ]] || die "network namespaces of an earlier cluster are left ($(our_namespaces | xargs)); \
run slurm/stop-local-cluster.sh first"

missing=()
needed="slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge"
[[ "$NODES" == 1 ]] || needed+=" ip:iproute2 nsenter:util-linux"  # namespaces, veth pairs, bridges
for pair in $needed; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  echo "start-local-cluster: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
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

# slurm.conf with the controller at $1 (name(address)), then the node and partition lines
write_conf() {
  cat <<CONF
$MARK
ClusterName=litdiffusion
SlurmctldHost=$1
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
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
KillWait=5
MinJobAge=600
CONF
  if [[ "$NODES" == 1 ]]; then
    cat <<CONF
SlurmdSpoolDir=$DIR/spool
SlurmdPidFile=$DIR/slurmd.pid
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  else
    # one slurmd per node on the same file system: spool, pid and log per node name (%n)
    echo "SlurmdSpoolDir=$DIR/spool/%n"
    echo "SlurmdPidFile=$DIR/slurmd-%n.pid"
    echo "SlurmdLogFile=$DIR/log/slurmd-%n.log"
    for i in $(seq "$NODES"); do
      echo "NodeName=$(node_name "$i") NodeAddr=$MGMT.$((10 + i)) CPUs=$CPUS RealMemory=1000 State=UNKNOWN"
    done
    # LLN: a job goes to the least loaded node, so that the tasks of a sweep spread over the nodes
    echo "PartitionName=$PARTITION Nodes=$(node_name "[1-$NODES]") Default=YES MaxTime=INFINITE State=UP LLN=YES"
  fi
}

wait_idle() {
  local states=""
  for _ in $(seq 150); do
    states=$(sinfo -h -N -o %T 2>/dev/null | sort -u | xargs || true)
    [[ "$states" == idle && $(sinfo -h -N -o %N 2>/dev/null | sort -u | wc -l) -eq $NODES ]] && return 0
    sleep 0.2
  done
  die "nodes are '$states', not idle, after 30 s (see $DIR/log/)"
}

if [[ "$NODES" == 1 ]]; then
  write_conf "$HOST(127.0.0.1)" > "$CONF"
  /usr/sbin/slurmctld -i 9>&- || die "slurmctld failed to start (see $DIR/log/slurmctld.log)"
  /usr/sbin/slurmd 9>&- || die "slurmd failed to start (see $DIR/log/slurmd.log)"
else
  make_network "$NODES" || { remove_network; die "could not create the network namespaces (needs CAP_NET_ADMIN, veth and bridge)"; }
  write_hosts "$NODES"
  # the daemons (and the jobs, inside the nodes) read the cluster's address of slurmctld; the host's
  # commands read $CONF, which points at the forwarder on 127.0.0.1
  for ns in "$CTL_NS" $(for i in $(seq "$NODES"); do node_name "$i"; done); do
    mkdir -p "/etc/netns/$ns/slurm"
    write_conf "$CTL_NS($MGMT.1)" > "/etc/netns/$ns/slurm/slurm.conf"
  done
  write_conf "$CTL_NS(127.0.0.1)" > "$CONF"
  run_in "$CTL_NS" /usr/sbin/slurmctld -i 9>&- \
    || die "slurmctld failed to start in $CTL_NS (see $DIR/log/slurmctld.log)"
  "${PYTHON:-python3}" "$HERE/forward_port.py" 6817 "$CTL_NS" "$MGMT.1" 6817 \
    </dev/null >"$DIR/log/forward_port.log" 2>&1 9>&- &
  echo $! > "$DIR/forward_port.pid"
  for i in $(seq "$NODES"); do
    node=$(node_name "$i")
    mkdir -p "$DIR/spool/$node"
    run_in "$node" /usr/sbin/slurmd 9>&- \
      || die "slurmd failed to start in $node (see $DIR/log/slurmd-$node.log)"
  done
fi
echo "$NODES" > "$DIR/nodes"
wait_idle
echo "start-local-cluster: up ($(sinfo -h -o 'partition %P, %D node(s) %N, %c CPUs, %T' | head -1)); logs in $DIR/log"
