#!/usr/bin/env bash
# Stop the local SLURM cluster that slurm/start-local-cluster.sh started, by the PIDs in its pid files
# (slurmd of every node, slurmctld, the port forwarder, munged), then remove the network namespaces, their
# links and /etc/netns/ files of a multi-node cluster. Leaves packages and /etc/slurm/slurm.conf in place.
#   sudo slurm/stop-local-cluster.sh [--purge]   (--purge also deletes its state, spool and logs)
set -uo pipefail
DIR="${LIT_DIFFUSION_SLURM_DIR:-/tmp/lit-diffusion-slurm}"
source "$(cd "$(dirname "$0")" && pwd)/local-network.sh"

stop_pidfile() {  # stop_pidfile NAME FILE
  local pid
  pid=$(cat "$2" 2>/dev/null)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    # PID 1 here may not reap: a killed daemon stays a zombie, so stop waiting once it is one
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break; sleep 0.1; done
  fi
  rm -f "$2"
  echo "stop-local-cluster: stopped $1 ($pid)"
}

for pidfile in "$DIR"/slurmd.pid "$DIR"/slurmd-*.pid; do
  [[ -f "$pidfile" ]] && stop_pidfile "$(basename "$pidfile" .pid)" "$pidfile"
done
for name in slurmctld forward_port munged; do
  [[ -f "$DIR/$name.pid" ]] && stop_pidfile "$name" "$DIR/$name.pid"
done
remove_network
rm -f "$DIR/nodes"
[[ "${1:-}" == "--purge" ]] && rm -rf "$DIR" && echo "stop-local-cluster: removed $DIR"
exit 0
